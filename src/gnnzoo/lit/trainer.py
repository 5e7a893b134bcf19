"""One Trainer builder for every LightningModule task (backbone runs, the encoder, the generator's stages)."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

# On a machine with SLURM installed Lightning warns, outside jobs, that `srun` "is available but not used" and hints
# at `srun python ...` for every Trainer. gnnzoo's SLURM launchers start their jobs with srun (submitit) and local
# runs are meant to be local, so the hint only misleads.
warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")


def build_trainer(
    cfg: DictConfig, *, callbacks: Sequence[pl.Callback] = (), loggers: Sequence[Any] = (), **overrides: Any
) -> pl.Trainer:
    """The ``pl.Trainer`` of ``cfg.trainer`` (accelerator, devices, strategy, progress bar, determinism, …) with
    ``callbacks`` and ``loggers`` (none: ``logger=False``); ``overrides`` replace config keys with what the task
    decides itself (its epoch or step budget, validation cadence, gradient clipping)."""
    from hydra.utils import instantiate

    node = OmegaConf.to_container(cfg.trainer, resolve=True)
    node.update(overrides)
    return instantiate(node, callbacks=list(callbacks), logger=list(loggers) or False, _convert_="all")
