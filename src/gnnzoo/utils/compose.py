"""Compose a sweep's job configs without paying Hydra's full composition for every job.

Hydra builds a job's config in two stages: the defaults list (from the config-group overrides such as
``optimizer=sgd``) is composed into a config, then the plain value overrides (``optimizer.lr=0.1``)
are applied onto it in order. A grid of 540 jobs usually has only a handful of distinct group
selections, yet Hydra runs the whole composition (~0.3 s on a 2-core machine) for every job, twice in a
multirun: once when the sweeper validates the batch, once when the launcher composes it. That was
~5 minutes of a 540-job grid.

:class:`SweepComposer` composes each distinct set of structural overrides once and applies the value
overrides with Hydra's own routine. For every template it also composes one job in full and checks
the two configs are equal; if they ever differ (a Hydra version with other semantics, interpolated
defaults), it composes every job in full. Overrides that are not plain ``key=value`` pairs
(``+key``, ``~key``, ``hydra.*``, package overrides, lists/dicts) always go through full composition.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

# configs composed while the sweeper validated a batch, taken by the launcher (same process, same batch)
_composed: dict[tuple[str, ...], DictConfig] = {}


def take_composed(overrides: Sequence[str]) -> Optional[DictConfig]:
    return _composed.pop(tuple(overrides), None)


class SweepComposer:
    def __init__(self, config_loader: Any, master_config: DictConfig):
        self.loader = config_loader
        self.master = master_config
        self.templates: dict[tuple[str, ...], DictConfig] = {}
        self.checked: set[tuple[str, ...]] = set()
        self.full_only = False
        try:
            from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
            from hydra.core.override_parser.overrides_parser import OverridesParser

            self._apply = ConfigLoaderImpl._apply_overrides_to_config
            self._dirname = get_overrides_dirname
            self._parser = OverridesParser.create()
            self._repo = getattr(config_loader, "repository", None)
        except (ImportError, AttributeError):  # Hydra internals moved: compose everything in full
            self.full_only = True
        if getattr(self, "_repo", None) is None:
            self.full_only = True

    def full(self, overrides: Sequence[str]) -> DictConfig:
        return self.loader.load_sweep_config(self.master, list(overrides))

    def _split(self, parsed: list) -> Optional[tuple[tuple[str, ...], list]]:
        structural, values = [], []
        for o in parsed:
            key = o.key_or_group
            if o.is_hydra_override() or key.startswith("hydra"):
                return None
            plain = (
                not (o.is_delete() or o.is_add() or o.is_force_add())
                and o.package is None
                and "/" not in key
                and not self._repo.group_exists(key)
                and isinstance(o.value(), (int, float, str, bool, type(None)))
            )
            if plain:
                values.append(o)
            else:
                structural.append(o.input_line)
        return tuple(structural), values

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The job's sweep config, equal to ``config_loader.load_sweep_config(master, overrides)``."""
        parsed = None if self.full_only else self._parser.parse_overrides(list(overrides))
        split = None if parsed is None else self._split(parsed)
        if split is None:
            return self.full(overrides)
        structural, values = split
        if structural not in self.templates:
            self.templates[structural] = self.full(structural)
        cfg = copy.deepcopy(self.templates[structural])
        with open_dict(cfg):
            self._apply(values, cfg)
            cfg.hydra.overrides.task = list(overrides)
            dn = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = self._dirname(
                overrides=parsed, kv_sep=dn.kv_sep, item_sep=dn.item_sep, exclude_keys=dn.exclude_keys
            )
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        if values and structural not in self.checked:
            self.checked.add(structural)
            ref = self.full(overrides)
            if OmegaConf.to_container(cfg, resolve=False) != OmegaConf.to_container(ref, resolve=False):
                log.warning(
                    "fast sweep composition differs from Hydra's for %s; composing every job in full", list(overrides)
                )
                self.full_only = True
                return ref
        return cfg

    def compose_all(self, batch: Sequence[Sequence[str]], keep: bool = False) -> list[DictConfig]:
        out = [self.compose(o) for o in batch]
        if keep:
            _composed.clear()
            _composed.update({tuple(o): c for o, c in zip(batch, out)})
        return out
