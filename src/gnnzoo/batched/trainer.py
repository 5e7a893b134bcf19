"""Train many single-run configs as one batched model; each gets its own zoo entry.

``train_batched(cfgs)`` takes fully composed train configs (exactly what ``train.py`` would run one
by one) that differ only in per-model settings (seed, init_seed, optimizer and its hyperparameters,
dropout rates, training length), and trains them together:

* initial weights: each model is built by the single path (``build_backbone``, seeded with its
  ``init_seed``), so init ids equal those of single runs;
* one forward/backward for all models per epoch; per-model losses are summed, so every model gets
  exactly its own gradient; a vectorised optimizer applies each model's own update rule;
* evaluation (val and test, one eval-mode forward) after each step; best-val weights, early stopping
  (``monitor.patience``) and NaN divergence are tracked per model;
* each model draws its dropout masks from a generator seeded by its own seed, so its result depends on
  its own config and seed only (not on the rest of the batch);
* every model is written to the zoo with the record schema of a single run. The masks differ from
  Lightning's (single-run) ones, so a batched run's id hashes ``engine: batched`` too: batched sweeps
  resume batched runs, single sweeps single runs.

Limits (each raises ``NotImplementedError``, and the callers then train one by one): full-batch data
only, no LR schedulers, optimizers SGD / Adam / AdamW, the CPU only (``trainer=gpu`` and DDP runs go
through Lightning), and the batched backbone's own limits (``gnnzoo.batched.models``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from gnnzoo.backbones.build import build_backbone
from gnnzoo.batched.fit import BatchTracker, fit_batch
from gnnzoo.batched.models import BatchedBackbone
from gnnzoo.batched.optim import BatchedOptimizer, optimizer_kind
from gnnzoo.data.datasets import GraphData
from gnnzoo.data.graph import load_graph
from gnnzoo.utils.config import active_methods, check_config
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.io import clean_stale_tmp
from gnnzoo.utils.logging import close_loggers, instantiate_loggers
from gnnzoo.zoo.ids import identity_config, init_id, run_id
from gnnzoo.zoo.record import build_record, now_iso
from gnnzoo.zoo.store import Zoo


# per-model settings: may differ inside one batch
@dataclass
class BatchedJob:
    """What a method asks of one model in a batch (the default: an ordinary run). ``masks``: bool weight masks
    (True = kept) kept exact through training (gradients masked, weights re-masked after every step);
    ``start``: weights to start from instead of the initialization; ``files``: extra tensor files of the entry."""

    kind: str = "run"
    rid: str | None = None
    parents: Sequence[str] = ()
    fields: dict = field(default_factory=dict)
    masks: dict[str, torch.Tensor] | None = None
    start: dict[str, torch.Tensor] | None = None
    files: dict[str, dict] | None = None


PER_MODEL = ("seed", "init_seed", "optimizer", "backbone.dropout", "backbone.attn_dropout", "trainer.max_epochs")


def batch_key(cfg: DictConfig, plain: dict | None = None) -> str:
    """Configs with equal keys can train in one batch (same data, architecture, monitor; each model stops at its
    own ``trainer.max_epochs``).
    ``plain``: the config already resolved to containers (resolving costs ~17 ms per config)."""
    ident = identity_config(cfg if plain is None else plain)
    for key in PER_MODEL:
        node, _, leaf = key.rpartition(".")
        (ident.get(node, {}) if node else ident).pop(leaf, None)
    return json.dumps(ident, sort_keys=True, default=str)


BACKBONE_TASK = "gnnzoo.tasks.backbone.run"


def is_batchable_task(cfg: DictConfig) -> bool:
    """A job the batched launcher may train in a batch: the backbone task, one model (parallel_models 1), no
    method group set (such a job goes through its task, which runs the method or refuses the mix)."""
    task = cfg.get("task")
    return (
        (task is None or task.get("_target_") == BACKBONE_TASK)
        and int(cfg.zoo.get("parallel_models", 1)) == 1
        and not active_methods(cfg)
        and not cfg.zoo.get("resumable", False)
    )


def _check_batchable(cfg: DictConfig) -> None:
    problem = (cfg.get("problem") or {}).get("name", "node")
    if problem == "graph":
        raise NotImplementedError("graph classification trains on mini-batches of graphs: its runs train one by one")
    if problem == "link" and cfg.problem.get("decoder", "dot") != "dot":
        raise NotImplementedError(
            f"batched link prediction has the inner-product decoder only; problem.decoder={cfg.problem.decoder} "
            "runs train one by one"
        )
    if cfg.data.get("batch_size") is not None:
        raise NotImplementedError(
            "batched training is full-batch only (data.batch_size=null); neighbour-sampled runs train one by one"
        )
    if cfg.get("scheduler"):
        raise NotImplementedError("batched training has no LR schedulers (scheduler=none)")
    t = cfg.trainer
    if (
        str(t.get("accelerator", "cpu")) != "cpu"
        or t.get("strategy") not in (None, "auto")
        or t.get("devices", 1) not in (1, "1")
    ):
        raise NotImplementedError(
            f"batched training runs on one CPU process (trainer.accelerator={t.get('accelerator')}, "
            f"strategy={t.get('strategy')}, devices={t.get('devices')}): these runs train one by one "
            "through Lightning"
        )
    optimizer_kind(cfg.optimizer._target_)
    if cfg.get("callbacks"):
        raise NotImplementedError("batched training runs no extra Lightning callbacks (callbacks=default is empty)")


def _replay_to_loggers(cfg: DictConfig, rec: dict) -> None:
    """Give each model its own logger run: hyperparameters, per-epoch curves, best metrics."""
    loggers = instantiate_loggers(cfg)
    if not loggers:
        return
    try:
        curves = rec["curves"]
        for lg in loggers:
            lg.log_hyperparams({**rec["config"], "run_id": rec["run_id"], "init_id": rec["init_id"]})
            for j, epoch in enumerate(curves["epoch"]):
                lg.log_metrics(
                    {k: v[j] for k, v in curves.items() if k != "epoch" and not k.startswith("test/")}, step=epoch
                )
            if rec["status"] == "completed":
                best = {
                    f"best/{k.replace('/', '_')}": v
                    for k, v in rec["metrics"].items()
                    if k.startswith(("val/", "test/")) and not k.endswith("/loss")
                }
                lg.log_metrics({**best, "best/epoch": rec["best_epoch"]})
    finally:
        close_loggers(loggers)


def _plan(
    cfgs: Sequence[DictConfig], jobs: list[BatchedJob], plains: list[dict]
) -> tuple[list[dict[str, Any] | None], list[tuple[int, str]]]:
    """Check every config; the results of those already in the zoo (or repeated in the batch) and the
    (index, run id) of those to train."""
    results: list[dict[str, Any] | None] = [None] * len(cfgs)
    todo: list[tuple[int, str]] = []
    for i, cfg in enumerate(cfgs):
        check_config(cfg)
        _check_batchable(cfg)
        rid = jobs[i].rid or run_id(plains[i], engine="batched")
        done = Zoo(cfg.paths.zoo_dir).completed(rid, engine="batched") if cfg.zoo.skip_completed else None
        if done is not None:
            results[i] = {
                **done.record.get("metrics", {}),
                "run_id": rid,
                "skipped": True,
                "entry_dir": str(done.path),
                "status": "completed",
            }
        elif rid in {r for _, r in todo}:
            results[i] = {"run_id": rid, "skipped": True, "duplicate": True, "status": "duplicate"}
        else:
            todo.append((i, rid))
    return results, todo


def _build(
    cfgs: Sequence[DictConfig], jobs: list[BatchedJob], plains: list[dict], todo: list[tuple[int, str]]
) -> tuple[BatchedBackbone, list[dict], dict[str, torch.Tensor], BatchedOptimizer]:
    """The batched model (each model built by the single path, from its job's start weights and masks), the
    records, the stacked weight masks and the vectorised optimizer."""
    recs, singles = [], []
    for i, rid in todo:
        job = jobs[i]
        rec = build_record(cfgs[i], job.kind, rid, plain=plains[i], engine="batched", parents=job.parents, **job.fields)
        single = build_backbone(cfgs[i])
        rec["init_id"] = init_id(single.state_dict())
        if job.start is not None:
            single.load_state_dict(job.start)
        if hasattr(single, "gnn"):  # a link predictor with the parameter-free dot decoder: batch its backbone
            if job.masks:
                raise NotImplementedError("batched link prediction trains no ticket masks: these run one by one")
            single = single.gnn
        if job.masks:
            params = dict(single.named_parameters())
            with torch.no_grad():
                for name, m in job.masks.items():
                    params[name].mul_(m)
        singles.append(single)
        recs.append(rec)
    model = BatchedBackbone.from_singles(singles)
    masked = sorted({n for i, _ in todo for n in (jobs[i].masks or {})})
    ones = {n: torch.ones_like(singles[0].state_dict()[n], dtype=torch.bool) for n in masked}
    stacked_masks = {n: torch.stack([(jobs[i].masks or {}).get(n, ones[n]) for i, _ in todo]).float() for n in masked}
    opts = [cfgs[i].optimizer for i, _ in todo]
    opt = BatchedOptimizer(
        model.parameters_by_name(),
        [optimizer_kind(o._target_) for o in opts],
        [o.lr for o in opts],
        [o.get("weight_decay", 0.0) for o in opts],
        [o.get("momentum", 0.0) for o in opts],
        [tuple(o.get("betas", (0.9, 0.999))) for o in opts],
        [o.get("eps", 1e-8) for o in opts],
    )
    # each model draws its dropout masks from its own generator, seeded by its own seed only: a run's
    # result does not depend on which other runs share its batch
    model.generators = [torch.Generator().manual_seed(int(cfgs[i].seed)) for i, _ in todo]
    return model, recs, stacked_masks, opt


def _write(
    cfgs: Sequence[DictConfig],
    jobs: list[BatchedJob],
    todo: list[tuple[int, str]],
    recs: list[dict],
    model: BatchedBackbone,
    tracker: BatchTracker,
    wall: float,
    results: list,
) -> None:
    """Each model's record (completed with its best-val weights, or failed with its error) into its zoo."""
    n_models, mon = len(todo), cfgs[todo[0][0]].monitor.metric
    link = (cfgs[todo[0][0]].get("problem") or {}).get("name", "node") == "link"
    buffers = {name: model.p(name) for name in model.names if name not in tracker.best_state}
    for m, ((index, rid), rec) in enumerate(zip(todo, recs)):
        cfg, curve, best = cfgs[index], tracker.curves[m], tracker.best_epoch[m]
        rec.update(
            wall_time_s=wall / n_models,
            finished_at=now_iso(),
            curves=curve,
            snapshots=tracker.snapshots[m],
            batch={"size": n_models, "index": m, "wall_time_s": wall},
        )
        state = None
        if tracker.errors[m] is None and best is not None:
            at = curve["epoch"].index(best)
            metrics = {
                mon: curve[mon][at],
                # val/acc (and link prediction's val/auc, val/ap, val/hits@K), every test metric
                **{k: v[at] for k, v in curve.items() if k.startswith("val/") and k not in (mon, "val/loss")},
                **{k: v[at] for k, v in curve.items() if k.startswith("test/")},
                "best_epoch": best,
            }
            rec.update(
                status="completed",
                best_epoch=best,
                best_val=curve[mon][at],
                test_at_best_val=metrics["test/auc" if "test/auc" in metrics else "test/acc"],
                metrics=metrics,
            )
            prefix = "gnn." if link else ""  # a link predictor's checkpoint: its backbone under gnn.
            state = {
                prefix + name: (tracker.best_state[name][m] if name in tracker.best_state else buffers[name][m])
                .detach()
                .clone()
                for name in model.names
            }
        else:
            rec["error"] = tracker.errors[m] or "RuntimeError: no evaluated epoch"
        entry_dir = None
        if cfg.zoo.enabled:
            zoo = Zoo(cfg.paths.zoo_dir)
            clean_stale_tmp(zoo.entry_dir(rid))
            entry_dir = str(zoo.write(rec, state, files=jobs[index].files if state is not None else None))
        _replay_to_loggers(cfg, rec)
        results[index] = {
            **(rec.get("metrics") or {}),
            "run_id": rid,
            "skipped": False,
            "entry_dir": entry_dir,
            "status": rec["status"],
            "error": rec["error"],
        }


def train_batched(
    cfgs: Sequence[DictConfig],
    graph: GraphData | None = None,
    progress: bool = True,
    jobs: Sequence[BatchedJob | None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``cfgs`` together; return one result dict per config (same keys as ``train()``). ``jobs`` (one per
    config, optional): what a method trains instead of an ordinary run (see :class:`BatchedJob`)."""
    if not cfgs:
        return []
    jobs = [j or BatchedJob() for j in (jobs or [None] * len(cfgs))]
    if len(jobs) != len(cfgs):
        raise ValueError(f"{len(jobs)} jobs for {len(cfgs)} configs")
    plains = [OmegaConf.to_container(c, resolve=True) for c in cfgs]  # resolved once per config
    if len({batch_key(c, p) for c, p in zip(cfgs, plains)}) > 1:
        raise ConfigError(
            "configs in one batch must differ only in seed, init_seed, optimizer, dropout and max_epochs; "
            "group them with gnnzoo.batched.trainer.group_configs"
        )
    results, todo = _plan(cfgs, jobs, plains)
    if not todo:
        return results  # type: ignore[return-value]
    for zoo_dir in {str(cfgs[i].paths.zoo_dir) for i, _ in todo if cfgs[i].zoo.enabled}:
        Zoo(zoo_dir).check_writable()  # before any training
    # models of one optimizer type side by side: the optimizer updates each type through one slice
    todo.sort(key=lambda t: optimizer_kind(cfgs[t[0]].optimizer._target_))
    t0 = time.perf_counter()
    graph = graph or load_graph(cfgs[todo[0][0]])
    model, recs, stacked_masks, opt = _build(cfgs, jobs, plains, todo)
    tracker = fit_batch(cfgs, todo, model, opt, stacked_masks, graph, progress)
    _write(cfgs, jobs, todo, recs, model, tracker, time.perf_counter() - t0, results)
    return results  # type: ignore[return-value]


def group_configs(cfgs: Sequence[DictConfig], max_models: int) -> list[list[int]]:
    """Indices of ``cfgs`` grouped into batchable chunks of at most ``max_models``."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(batch_key(c), []).append(i)
    out = []
    for idxs in groups.values():
        for s in range(0, len(idxs), max_models):
            out.append(idxs[s : s + max_models])
    return out


def seed_configs(cfg: DictConfig, n: int) -> list[DictConfig]:
    """``n`` copies of ``cfg`` with seeds ``seed, seed+1, ...`` (``zoo.parallel_models=n``)."""
    out = []
    for k in range(n):
        c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        c.seed = int(cfg.seed) + k
        c.zoo.parallel_models = 1
        out.append(c)
    return out
