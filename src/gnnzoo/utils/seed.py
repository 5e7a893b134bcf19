"""Randomness is seeded here and nowhere else."""

from __future__ import annotations

import pytorch_lightning as pl


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for this process."""
    pl.seed_everything(int(seed), workers=True, verbose=False)
