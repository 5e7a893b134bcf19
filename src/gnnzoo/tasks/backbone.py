"""``task=backbone`` (the default): train one backbone (or ``zoo.parallel_models`` seeds of it, batched)
and write each run into the zoo.

:func:`train` is the single-model (Lightning) path that the other tasks reuse to train ingredients;
:func:`run` is the task the wrapper calls."""

from __future__ import annotations

import logging
import statistics
import time
import traceback
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
from hydra.utils import instantiate
from lightning_fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks.progress import ProgressBar
from torch import nn

from gnnzoo.backbones.build import build_backbone
from gnnzoo.batched.trainer import seed_configs, train_batched
from gnnzoo.data.datamodule import GraphSetDataModule
from gnnzoo.data.graph import load_graph
from gnnzoo.data.problems import problem_of
from gnnzoo.lit.backbone_module import BackboneModule
from gnnzoo.lit.metrics import make_metric
from gnnzoo.lit.problems import GraphModule, LinkModule
from gnnzoo.lit.progress import EpochProgressBar
from gnnzoo.lit.trainer import build_trainer
from gnnzoo.tasks.resume import TrainingState, record_resume, resume_point
from gnnzoo.utils.config import check_config, check_one_method
from gnnzoo.utils.errors import ConfigError, RunInterrupted, mark_recorded
from gnnzoo.utils.io import clean_stale_tmp
from gnnzoo.utils.logging import close_loggers, console, instantiate_loggers, print_result
from gnnzoo.utils.seed import seed_everything
from gnnzoo.zoo.ids import init_id, resumable_run_id, run_id
from gnnzoo.zoo.record import build_record, now_iso
from gnnzoo.zoo.recorder import ZooRecorder
from gnnzoo.zoo.store import Zoo

log = logging.getLogger("gnnzoo")


def _instantiate_dict(node: DictConfig | None) -> list:
    if not node:
        return []
    return [instantiate(v) for v in node.values() if v is not None and "_target_" in v]


def _skip_or_resume(
    cfg: DictConfig, zoo: Zoo, rid: str, resumable: bool
) -> tuple[dict[str, Any] | None, tuple[int, dict, dict] | None]:
    """(the result of a run already completed, to skip; else None) and (the point a resumable run trained to
    fewer epochs than asked continues from; else None)."""
    if not cfg.zoo.skip_completed:
        return None, None
    done = zoo.completed(rid)
    if done is None:
        return None, None
    if (
        resumable
        and not done.record.get("stopped_early")
        and int(done.record.get("epochs_trained") or 0) < int(cfg.trainer.max_epochs)
    ):
        prior = resume_point(done)
        console.print(f"continue run {rid} from epoch {prior[0]} to {cfg.trainer.max_epochs}")
        return None, prior
    console.print(f"[yellow]skip[/] run {rid}: already completed in {zoo.root}")
    return {
        **done.record.get("metrics", {}),
        "run_id": rid,
        "skipped": True,
        "entry_dir": str(done.path),
        "epochs_trained": done.record.get("epochs_trained"),
    }, None


def _module(cfg: DictConfig, graph, backbone: nn.Module, masker: nn.Module | None) -> tuple[BackboneModule, Any, bool]:
    """The LightningModule of the run's problem, the datamodule, and whether evaluation is fused into the
    training step (full-batch training on one graph)."""
    problem = problem_of(cfg)
    data_cfg = OmegaConf.to_container(cfg.data)
    fused = bool(data_cfg.pop("fused_eval", True)) and data_cfg.get("batch_size") is None
    common = dict(
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        metric=make_metric(graph.metric, graph.num_classes, graph.ogb_name),
        monitor=cfg.monitor.metric,
        masker=masker,
    )
    if problem["name"] == "graph":
        datamodule = GraphSetDataModule(graph, batch_size=int(problem.get("batch_size", 32)))
        return GraphModule(backbone, fused_eval=False, **common), datamodule, False
    datamodule = instantiate(data_cfg, graph=graph)
    if problem["name"] == "link":
        module = LinkModule(
            backbone, fused_eval=fused, hits_k=int(problem["hits_k"]), neg_ratio=float(problem["neg_ratio"]), **common
        )
        return module, datamodule, fused
    return BackboneModule(backbone, fused_eval=fused, **common), datamodule, fused


def _trainer(
    cfg: DictConfig, loggers: list, method_callbacks: list, extra_callbacks: list, **overrides
) -> tuple[pl.Trainer, bool, bool]:
    """The run's Trainer: configured callbacks, the method's, the recorder, and gnnzoo's epoch bar unless a
    configured callback is a progress bar (then Lightning uses that); whether gnnzoo's bar is on, and whether
    any callback is configured."""
    callbacks = _instantiate_dict(cfg.get("callbacks"))
    own_bar = []
    if cfg.trainer.get("enable_progress_bar", True) and not any(isinstance(c, ProgressBar) for c in callbacks):
        own_bar = [EpochProgressBar()]  # after the recorder: its epoch-end postfix shows the best value so far
    trainer = build_trainer(
        cfg, callbacks=callbacks + method_callbacks + extra_callbacks + own_bar, loggers=loggers, **overrides
    )
    return trainer, bool(own_bar), bool(callbacks)


def train(
    cfg: DictConfig,
    *,
    kind: str = "run",
    rid: str | None = None,
    parents: Sequence[str] = (),
    prepare: Callable[[nn.Module], list[pl.Callback]] | None = None,
    fields: dict | None = None,
    files: Callable[[], dict[str, dict]] | None = None,
    masker: nn.Module | None = None,
) -> dict[str, Any]:
    """Train one backbone as configured; write its zoo entry; return its metrics.

    A run whose id is already ``completed`` in the zoo is skipped (its recorded metrics are returned
    with ``skipped=True``). A run that raises is recorded as ``failed`` and the error re-raised (the
    error says whether the record was written). An interrupted run (SIGINT/SIGTERM) is not recorded.

    Methods that train a backbone their own way reuse this loop: ``kind``, ``rid`` and ``parents`` of the
    entry; ``prepare(backbone) -> callbacks`` runs on the freshly initialised backbone (load other weights,
    attach masks) and returns callbacks for the fit; ``fields`` go into the record; ``files()`` returns
    extra tensor files (``{file name: state dict}``) written into the entry with the weights; ``masker`` is
    the module's (see :class:`BackboneModule`), and is left in its best-val state after the fit, as the
    backbone is.
    """
    check_config(cfg)
    zoo = Zoo(cfg.paths.zoo_dir)
    plain = OmegaConf.to_container(cfg, resolve=True)  # resolved once: run id and record both read it
    resumable = bool(cfg.zoo.get("resumable", False))
    if resumable and (kind != "run" or rid is not None or masker is not None):
        raise ConfigError("zoo.resumable=true is for plain backbone runs (task=backbone), not for a method's runs")
    rid = rid or (resumable_run_id(plain) if resumable else run_id(plain))
    skipped, prior = _skip_or_resume(cfg, zoo, rid, resumable)
    if skipped is not None:
        return skipped
    if cfg.zoo.enabled:
        zoo.check_writable()
        clean_stale_tmp(zoo.entry_dir(rid))  # left by a job killed mid-write

    rec = build_record(cfg, kind, rid, plain=plain, parents=parents, **(fields or {}))
    t0 = time.perf_counter()
    recorder, state_cb = _recorder(cfg, zoo, rid, rec, prior)
    loggers: list = []
    interrupted = False
    try:
        metrics = _fit(cfg, zoo, rid, plain, rec, (recorder, state_cb), prior, prepare, masker, loggers, t0)
    except (RunInterrupted, KeyboardInterrupt):
        interrupted = True  # left unrecorded: a relaunch (or a requeued job) runs it again
        raise
    except BaseException as e:
        _record_failure(cfg, zoo, rid, rec, recorder, t0, e)
        raise
    finally:
        close_loggers(loggers, "success" if rec["status"] == "completed" else ("aborted" if interrupted else "failed"))
    entry = (
        _write(zoo, rec, recorder, t0, files() if files else None)
        if cfg.zoo.enabled and rank_zero_only.rank == 0
        else None
    )  # DDP: one writer
    out = {**metrics, "run_id": rid, "skipped": False, "entry_dir": str(entry) if entry else None}
    if prior is not None:
        out["continued_from"] = int(prior[0])  # a resumable run continued from this epoch (an FMS continuation)
    return out


def _fit(
    cfg: DictConfig,
    zoo: Zoo,
    rid: str,
    plain: dict,
    rec: dict,
    callbacks: tuple,
    prior,
    prepare,
    masker: nn.Module | None,
    loggers: list,
    t0: float,
) -> dict[str, Any]:
    """Build the backbone and its module, fit, select the best-val epoch and test it; ``loggers`` is filled with
    the run's loggers (the caller closes them)."""
    recorder, state_cb = callbacks
    resumable = bool(cfg.zoo.get("resumable", False))
    graph = load_graph(cfg)
    backbone = build_backbone(cfg)
    rec["init_id"] = init_id(backbone.state_dict())
    if prior is not None:
        backbone.load_state_dict(prior[1])  # the weights of its last epoch
    method_callbacks = prepare(backbone) if prepare else []
    seed_everything(cfg.seed)
    module, datamodule, fused = _module(cfg, graph, backbone, masker)
    loggers.extend(instantiate_loggers(cfg))
    for lg in loggers:
        lg.log_hyperparams({**plain, "run_id": rid, "init_id": rec["init_id"]})
    extra = {"limit_val_batches": 0} if fused else {}
    if prior is not None:
        module.epoch_offset = prior[0]
        extra["max_epochs"] = int(cfg.trainer.max_epochs) - prior[0]
    trainer, own_bar, configured = _trainer(
        cfg, loggers, method_callbacks, ([state_cb] if resumable else []) + [recorder], **extra
    )
    # EpochProgressBar reads the module directly; anything else may read Lightning's logged metrics
    module.log_to_lightning = bool(
        configured or module.scheduler_factory or (trainer.progress_bar_callback is not None and not own_bar)
    )
    trainer.fit(module, datamodule=datamodule)
    metrics = _best_metrics(cfg, trainer, module, datamodule, backbone, masker, recorder, loggers, rec)
    if resumable:
        record_resume(cfg, zoo, rid, rec, recorder, state_cb, prior, trainer, metrics, t0)
    return metrics


def _recorder(cfg: DictConfig, zoo: Zoo, rid: str, rec: dict, prior) -> tuple[ZooRecorder, TrainingState]:
    """The zoo recorder of the run and the training-state callback (a continued run's, restored from ``prior``)."""
    recorder = ZooRecorder(
        cfg.monitor.metric,
        cfg.monitor.mode,
        cfg.zoo.snapshot_every,
        zoo.entry_dir(rid) if cfg.zoo.enabled else None,
        cfg.monitor.get("patience"),
    )
    if prior is None:
        return recorder, TrainingState(None)
    old = zoo[rid]
    recorder.resume_from(old.record, old.state_dict(), prior[0])
    rec["stages"] = list(old.record.get("stages") or [])
    rec["started_at"] = old.record.get("started_at", rec["started_at"])
    return recorder, TrainingState(prior[2])


def _record_failure(
    cfg: DictConfig, zoo: Zoo, rid: str, rec: dict, recorder: ZooRecorder, t0: float, error: BaseException
) -> None:
    """Write the failed run's record (its error and traceback); the error says whether that worked."""
    rec["error"] = f"{type(error).__name__}: {error}"
    rec["traceback"] = traceback.format_exc(limit=20)
    if cfg.zoo.enabled and rank_zero_only.rank == 0:
        try:
            mark_recorded(error, _write(zoo, rec, recorder, t0, None))
        except Exception as write_error:  # the run's own error is the one to report
            log.warning("the failed run %s could not be recorded in the zoo: %s", rid, write_error)


def _best_metrics(
    cfg: DictConfig,
    trainer: pl.Trainer,
    module: BackboneModule,
    datamodule,
    backbone: nn.Module,
    masker: nn.Module | None,
    recorder: ZooRecorder,
    loggers: list,
    rec: dict,
) -> dict[str, Any]:
    """Set the backbone (and masker) to the best-val epoch, test it, and complete the record."""
    if recorder.best_state is None:
        raise RuntimeError("training produced no validation epoch; nothing to select (check trainer.max_epochs)")
    backbone.load_state_dict(recorder.best_state)
    if masker is not None and recorder.best_masker_state is not None:
        masker.load_state_dict(recorder.best_masker_state)
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    metrics = {
        cfg.monitor.metric: recorder.best_value,
        # val/acc for node and graph classification; link prediction adds val/auc, val/ap, val/hits@K
        **{
            k: recorder.metric_at_best(k)
            for k in module.last_eval
            if k.startswith("val/") and k not in (cfg.monitor.metric, "val/loss")
        },
        **{k: float(v) for k, v in test.items() if k.startswith("test/")},
        "best_epoch": recorder.best_epoch,
    }
    best = {
        f"best/{k.replace('/', '_')}": v
        for k, v in metrics.items()
        if k.startswith(("val/", "test/")) and not k.endswith("/loss")
    }
    for lg in loggers:
        lg.log_metrics({**best, "best/epoch": recorder.best_epoch})
    rec.update(
        status="completed",
        best_epoch=recorder.best_epoch,
        best_val=recorder.best_value,
        # the problem's headline test metric at the selected epoch: accuracy, or AUC for link prediction
        test_at_best_val=metrics["test/auc" if "test/auc" in metrics else "test/acc"],
        metrics=metrics,
    )
    return metrics


def _write(zoo: Zoo, rec: dict, recorder: ZooRecorder, t0: float, files: dict | None):
    stages = rec.get("stages") or []
    prior_wall = sum(s["wall_time_s"] for s in stages[:-1]) if rec.get("resume") else 0.0
    rec.update(
        wall_time_s=prior_wall + time.perf_counter() - t0,
        finished_at=now_iso(),
        curves=recorder.curves,
        snapshots=recorder.snapshots,
    )
    return zoo.write(rec, recorder.best_state if rec["status"] == "completed" else None, files=files)


def seed_summary(
    cfg: DictConfig, cfgs: Sequence[DictConfig], results: Sequence[dict], show: Callable[[DictConfig, dict], None]
) -> tuple[list[float], list[str]]:
    """The monitored values of the seeds that completed (each shown with ``show``) and a line per failed seed;
    every seed failing is an error (``zoo.parallel_models``: the other seeds go on when one fails)."""
    values, failed = [], []
    for c, r in zip(cfgs, results):
        if r.get("status") == "failed":
            console.print(f"[red]failed[/] seed={c.seed}: {r.get('error')}")
            failed.append(f"seed={c.seed}: {r.get('error')}")
            continue
        show(c, r)
        values.append(float(r[cfg.monitor.metric]))
    if not values:
        raise RuntimeError(f"all {len(cfgs)} seeds failed; first: {failed[0]}")
    return values, failed


def run(cfg: DictConfig) -> dict[str, Any]:
    """The backbone task: one run, or ``zoo.parallel_models`` seeds of it trained together (batched).
    Returns the run's metrics with ``value`` (the monitored metric; for several seeds, their mean)."""
    check_one_method(cfg, "backbone")
    n = int(cfg.zoo.get("parallel_models", 1))
    if n > 1 and cfg.zoo.get("resumable"):
        raise ConfigError(
            "zoo.resumable=true trains one model per run; it cannot be combined with "
            f"zoo.parallel_models={n} (batched runs keep no optimizer state to continue from)"
        )
    if n == 1:
        result = train(cfg)
        print_result(cfg, result)
        return {**result, "value": result.get(cfg.monitor.metric)}
    cfgs = seed_configs(cfg, n)
    try:
        results = train_batched(cfgs, progress=bool(cfg.trainer.get("enable_progress_bar", True)))
    except NotImplementedError as e:
        console.print(
            f"[yellow]zoo.parallel_models={n}: these seeds cannot be batched ({e}); training them one by one[/]"
        )
        results = []
        for c in cfgs:
            try:
                results.append({**train(c), "status": "completed"})
            except Exception as err:  # recorded by train(); the other seeds go on
                results.append({"run_id": run_id(c), "status": "failed", "error": f"{type(err).__name__}: {err}"})
    values, failed = seed_summary(cfg, cfgs, results, print_result)
    mean = statistics.fmean(values)
    console.print(f"{len(values)}/{n} seeds completed; mean {cfg.monitor.metric} = {mean:.4f}")
    return {
        "value": mean,
        "run_ids": [r["run_id"] for r in results],
        "failed_runs": failed,
        "skipped": all(r.get("skipped") for r in results),
    }
