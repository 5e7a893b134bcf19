"""``zoo.parallel_models=n`` for ``task=prune``: seeds ``seed .. seed+n-1`` of one pruning config, their dense
runs and tickets trained in the batched trainer where the method allows it, else one by one."""

from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig

from gnnzoo.batched.trainer import BatchedJob, seed_configs, train_batched
from gnnzoo.pruning.context import PruningContext
from gnnzoo.tasks.backbone import seed_summary
from gnnzoo.utils.config import backbone_config
from gnnzoo.utils.logging import console


def batchable(cfg: DictConfig) -> str | None:
    """None if the seeds of this pruning config can train together in the batched trainer, else why not."""
    p = cfg.pruning
    if p.method != "one_shot":
        return (
            f"pruning.method={p.method} changes its masks while training (trainable scores, drop-and-regrow), "
            "which the batched trainer does not model"
        )
    if float(p.graph_sparsity) > 0:
        return "each seed's ticket prunes its own edges, and the batched trainer shares one graph across models"
    return None


def one_shot_batched(cfgs: list[DictConfig]) -> list[dict]:
    """``one_shot`` on weights for several seeds: dense runs batched, then the tickets batched."""
    show = bool(cfgs[0].trainer.get("enable_progress_bar", True))
    dense_cfgs = []
    for c in cfgs:
        d = backbone_config(c)
        d.zoo.enabled = True
        dense_cfgs.append(d)
    dense = train_batched(dense_cfgs, progress=show)
    todo, jobs, out = [], [], [None] * len(cfgs)
    for i, (c, d) in enumerate(zip(cfgs, dense)):
        if d.get("status") not in ("completed", None) or d.get("duplicate"):
            out[i] = {"run_id": None, "status": "failed", "error": f"dense run {d['run_id']}: {d.get('error')}"}
            continue
        ctx = PruningContext(c)
        ctx.dense = d
        entry = ctx.zoo[d["run_id"]]
        state = entry.state_dict()
        wmasks = ctx.magnitude(state, float(c.pruning.weight_sparsity))
        info = ctx.info(wmasks, None, float(entry.record.get("wall_time_s") or 0.0))
        jobs.append(
            BatchedJob(
                kind="pruned",
                rid=ctx.ticket_id(engine="batched"),
                parents=[d["run_id"]],
                fields={"pruning": info},
                masks=wmasks,
                start=state if c.pruning.rewind == "dense" else None,
                files=ctx.files(wmasks, None),
            )
        )
        todo.append(i)
    for i, r in zip(todo, train_batched([cfgs[i] for i in todo], progress=show, jobs=jobs)):
        out[i] = {**r, "dense_run_id": dense[i]["run_id"], "prune/dense_test_acc": dense[i].get("test/acc")}
    return out


def run_seeds(cfg: DictConfig, n: int, run_one: Callable[[DictConfig], dict]) -> dict[str, Any]:
    """Seeds ``seed .. seed+n-1`` of this pruning config, batched where possible, else each through ``run_one``
    (the single-seed task); a failed seed is reported and the others go on."""
    cfgs = seed_configs(cfg, n)
    why = batchable(cfg)
    results = None
    if why is None:
        try:
            results = one_shot_batched(cfgs)
        except NotImplementedError as e:
            why = str(e)
    if results is None:
        console.print(
            f"[yellow]zoo.parallel_models={n}: these tickets cannot be batched ({why}); training them one by one[/]"
        )
        results = []
        for c in cfgs:
            try:
                results.append({**run_one(c), "status": "completed"})
            except Exception as err:  # recorded by train(); the other seeds go on
                results.append({"run_id": None, "status": "failed", "error": f"{type(err).__name__}: {err}"})

    def show(c: DictConfig, r: dict) -> None:
        console.print(
            f"seed={c.seed}: ticket {r['run_id']} {cfg.monitor.metric}={float(r[cfg.monitor.metric]):.4f} "
            f"test/acc={r['test/acc']:.4f}"
        )

    values, failed = seed_summary(cfg, cfgs, results, show)
    mean = sum(values) / len(values)
    console.print(f"{len(values)}/{n} tickets completed; mean {cfg.monitor.metric} = {mean:.4f}")
    return {
        "value": mean,
        "tickets": [r.get("run_id") for r in results],
        "failed_runs": failed,
        "skipped": all(r.get("skipped") for r in results),
        "results": results,
    }
