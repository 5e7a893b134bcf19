"""Hydra sweeper ``hydra/sweeper=gnnzoo`` (the default, set in ``conf/hydra/default.yaml``): Hydra's
basic sweeper with a faster batch validation.

The basic sweeper composes every job of a batch before launching it, to fail before any job runs;
for a 540-job grid that is ~540 full compositions. This sweeper validates with
:class:`gnnzoo.utils.compose.SweepComposer` (each distinct set of group overrides composed once,
checked against Hydra's full composition) and, when the launcher is the batched one, hands it the
composed configs (other launchers compose each job themselves, so nothing is kept for them).
Sweep semantics (grid expansion, ``max_batch_size``, ``params``) are the basic sweeper's.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class GnnzooSweeperConf:
    _target_: str = "hydra_plugins.gnnzoo.sweeper.GnnzooSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="gnnzoo", node=GnnzooSweeperConf, provider="gnnzoo")


class GnnzooSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from gnnzoo.utils.compose import SweepComposer
        from hydra_plugins.gnnzoo.launcher import BatchedLauncher

        assert self.hydra_context is not None and self.config is not None
        keep = isinstance(self.launcher, BatchedLauncher)
        SweepComposer(self.hydra_context.config_loader, self.config).compose_all(batch, keep=keep)
