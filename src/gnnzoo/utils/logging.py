"""Console output (rich) and logger lifecycle."""

from __future__ import annotations

from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

# soft_wrap: a line is never cut at the terminal width (piped output would otherwise wrap at 80 columns,
# splitting the closing `done ... run_id=...` line that people grep in logs)
console = Console(highlight=False, soft_wrap=True)

_ORDER = ("dataset", "backbone", "optimizer", "scheduler", "data", "trainer", "callbacks", "logger", "zoo", "paths")


def print_config(cfg: DictConfig, order: Sequence[str] = _ORDER, resolve: bool = True) -> None:
    """Print the composed config as a rich tree, main groups first."""
    tree = Tree("[bold]config[/]", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(f"[bold cyan]{key}[/]")
        node = cfg[key]
        if isinstance(node, DictConfig):
            text = OmegaConf.to_yaml(node, resolve=resolve)
        else:
            text = str(node)
        branch.add(Syntax(text.rstrip() or "null", "yaml", theme="ansi_dark", background_color="default"))
    console.print(tree)


def print_result(cfg: DictConfig, result: dict[str, Any]) -> None:
    """The closing ``done ... run_id=... zoo=...`` line of a run: accuracy, and the monitored metric when it is
    another (e.g. link prediction's val/auc, shown with its test counterpart)."""
    tag = "[yellow]skipped (already in zoo)[/]" if result.get("skipped") else "[green]done[/]"
    fmt = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    keys = ["val/acc", "test/acc"]
    monitor = str(cfg.monitor.metric)
    if monitor not in keys and monitor != "val/loss":
        keys = [monitor, "test/" + monitor.split("/", 1)[1], *keys]
    shown = " ".join(f"{k}={fmt(result.get(k))}" for k in keys)
    console.print(
        f"{tag} {cfg.backbone.name} on {cfg.dataset.name} seed={cfg.seed}: {shown} "
        f"(best epoch {result.get('best_epoch')}) "
        f"run_id={result.get('run_id')} zoo={result.get('entry_dir') or cfg.paths.zoo_dir}"
    )


def instantiate_loggers(cfg: DictConfig) -> list:
    """The experiment loggers of ``cfg.logger`` (name: {_target_: ...}); none for ``logger=none``."""
    from hydra.utils import instantiate

    return [instantiate(v) for v in (cfg.get("logger") or {}).values() if v is not None and "_target_" in v]


def close_loggers(loggers: Sequence[Any], status: str = "success") -> None:
    """Finish every logger; always end the W&B run so multirun jobs never share one."""
    for lg in loggers:
        try:
            lg.finalize(status)
        except Exception:
            pass
    try:
        import sys

        if "wandb" in sys.modules:
            import wandb

            if wandb.run is not None:
                wandb.finish()
    except Exception:
        pass
