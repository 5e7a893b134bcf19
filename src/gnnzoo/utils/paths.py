"""Relative paths are resolved once, against the directory the command was started in.

``train.py`` records that directory in ``$GNNZOO_LAUNCH_DIR`` before anything else, so every job of a
sweep, every launcher subprocess and every SLURM job (which inherits the environment) resolves
``paths.*`` to the same absolute folders, wherever its working directory is. The configs use it as
``${gnnzoo.abspath:<path>}``."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

LAUNCH_DIR_ENV = "GNNZOO_LAUNCH_DIR"


def launch_dir() -> Path:
    return Path(os.environ.get(LAUNCH_DIR_ENV) or os.getcwd())


def mark_launch_dir() -> None:
    """Remember where this command started (kept if a parent gnnzoo process already set it)."""
    os.environ.setdefault(LAUNCH_DIR_ENV, os.getcwd())


def abspath(path: str) -> str:
    p = Path(str(path)).expanduser()
    return str(p if p.is_absolute() else (launch_dir() / p).resolve())


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("gnnzoo.abspath"):
        OmegaConf.register_new_resolver("gnnzoo.abspath", abspath)
