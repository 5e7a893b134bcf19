"""Figures the tasks draw: written as PNG next to the run, logged to W&B when it is a logger; a plot that
fails is a warning, never a failed run."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

log = logging.getLogger("gnnzoo")


@contextmanager
def png(path: str | Path, what: str, figsize: tuple[float, float] = (5, 3.5), **subplots) -> Iterator:
    """``with png(path, "encoder scatter plot") as ax: ax.plot(...)``: one axes (or the array of axes that
    ``subplots`` such as ``ncols=2`` ask ``plt.subplots`` for), saved to ``path`` (folders made) and closed; any
    error while drawing or saving is logged and swallowed."""
    fig = None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=figsize, **subplots)
        yield ax
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except Exception as e:  # a plot never fails the run
        log.warning("%s not written: %s", what, e)
    finally:
        if fig is not None:
            import matplotlib.pyplot as plt

            plt.close(fig)


def log_image(loggers: Sequence, key: str, path: str | Path) -> None:
    """Log the PNG at ``path`` as ``key`` to every W&B logger among ``loggers`` (others have no image API)."""
    if not Path(path).is_file():
        return
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            lg.experiment.log({key: wandb.Image(str(path))})
