"""What a prune run shows: the accuracy-vs-sparsity plot of every ticket of its dense run, the same in W&B,
and the closing console line."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from gnnzoo.pruning.context import PruningContext
from gnnzoo.utils.logging import close_loggers, console, instantiate_loggers
from gnnzoo.utils.plots import png

log = logging.getLogger("gnnzoo")


def plot_tickets(ctx: PruningContext, out_dir: str | None) -> Path | None:
    """Test accuracy vs weight and graph sparsity of every ticket of this dense run (all methods), PNG."""
    if not out_dir:
        return None
    df = ctx.zoo.df(kind="pruned", parent=ctx.dense["run_id"])
    df = df[df.status == "completed"] if len(df) else df
    path = Path(out_dir) / f"prune_{ctx.p.method}.png"
    dense = 100 * float(ctx.dense["test/acc"])
    with png(path, "accuracy-vs-sparsity plot", figsize=(9, 3.6), ncols=2, sharey=True) as axes:
        for ax, col, label in (
            (axes[0], "prune/weight_sparsity", "weight sparsity (%)"),
            (axes[1], "prune/graph_sparsity", "graph sparsity (%)"),
        ):
            for i, (method, g) in enumerate(df.groupby("prune/method") if len(df) else []):
                g = g.sort_values(col)
                ax.plot(100 * g[col], 100 * g["test/acc"], "o-", color=f"C{i}", label=method, ms=4)
            ax.axhline(dense, color="k", ls="--", lw=1, label="dense")
            ax.axhline(dense - 1, color="k", ls=":", lw=1, label="dense - 1 pt")
            ax.set_xlabel(label)
        axes[0].set_ylabel("test accuracy (%)")
        axes[1].legend(fontsize=7)
        axes[0].figure.suptitle(f"tickets of {ctx.cfg.backbone.name} on {ctx.cfg.dataset.name} (seed {ctx.cfg.seed})")
    return path if path.is_file() else None


def log_to_wandb(cfg: DictConfig, path: Path | None, results: list[dict]) -> None:
    """The plot and the per-round figures in W&B when W&B is the logger (the tickets' own runs have their
    curves; this is the search's summary run)."""
    if path is None or not any(
        "wandb" in str(v.get("_target_", "")).lower() for v in (cfg.get("logger") or {}).values() if v
    ):
        return
    loggers = instantiate_loggers(cfg)
    try:
        for lg in loggers:
            if type(lg).__name__ == "WandbLogger":
                import wandb

                for i, r in enumerate(results):
                    info = r.get("pruning", {})
                    lg.log_metrics(
                        {
                            "prune/weight_sparsity": info.get("weight_sparsity"),
                            "prune/graph_sparsity": info.get("graph_sparsity"),
                            "prune/test_acc": r.get("test/acc"),
                        },
                        step=i,
                    )
                lg.experiment.log({"prune/accuracy_vs_sparsity": wandb.Image(str(path))})
    finally:
        close_loggers(loggers)


def print_ticket(cfg: DictConfig, final: dict, info: dict, dense: dict) -> None:
    tag = "[yellow]skipped (already in zoo)[/]" if final.get("skipped") else "[green]pruned[/]"
    console.print(
        f"{tag} {cfg.backbone.name} on {cfg.dataset.name} ({cfg.pruning.method}): weight sparsity "
        f"{100 * info['weight_sparsity']:.1f}% of {info['weights_total']} weights, graph sparsity "
        f"{100 * info['graph_sparsity']:.1f}% of {info['edges_total']} {info['edge_unit'] or ''} edges, "
        f"test {100 * final['test/acc']:.2f}% (dense {100 * dense['test/acc']:.2f}%), MACs "
        f"-{100 * info['mac_saving']:.1f}%; run_id={final['run_id']}"
    )
