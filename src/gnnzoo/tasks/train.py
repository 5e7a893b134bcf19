"""The training task: config -> trained backbone -> zoo entry -> monitored metric."""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks.progress import ProgressBar
import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gnnzoo.data.datasets import GraphData
from gnnzoo.lit.backbone_module import BackboneModule
from gnnzoo.lit.metrics import make_metric
from gnnzoo.lit.progress import EpochProgressBar
from gnnzoo.utils.config import check_config, instantiate_clean, is_multirun
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import close_loggers, console, print_config, print_result
from gnnzoo.utils.sweep import threads_for_job, write_job_status
from gnnzoo.zoo.ids import identity_config, init_id, run_id
from gnnzoo.zoo.record import SCHEMA, host_info, now_iso, package_versions
from gnnzoo.zoo.recorder import ZooRecorder
from gnnzoo.zoo.store import Zoo, clean_stale_tmp

log = logging.getLogger("gnnzoo")


def seed_everything(seed: int) -> None:
    pl.seed_everything(int(seed), workers=True, verbose=False)


# The last graph loaded in this process, keyed by its resolved loader config and roots: sweeps that run
# many jobs in one process (joblib workers, the batched launcher, soups) load and preprocess it once.
_GRAPH_CACHE: dict[str, GraphData] = {}


def load_graph(cfg: DictConfig) -> GraphData:
    """Instantiate ``cfg.dataset.loader`` with the data/cache roots and check its declared dims.

    The graph is cached in-process (one entry); each call gets its own shallow copy (new ``Data``
    stores over the same tensors), so moving a copy to a device or setting attributes on it does not
    touch the cached one. Tensors are shared: nothing in gnnzoo writes into them in place."""
    key = json.dumps([OmegaConf.to_container(cfg.dataset.loader, resolve=True), str(cfg.paths.data_dir),
                      str(cfg.paths.cache_dir)], sort_keys=True, default=str)
    cached = _GRAPH_CACHE.get(key)
    if cached is None:
        cached = instantiate_clean(cfg.dataset.loader, data_dir=cfg.paths.data_dir, cache_dir=cfg.paths.cache_dir)
        _GRAPH_CACHE.clear()
        _GRAPH_CACHE[key] = cached
    graph = dataclasses.replace(cached, data=copy.copy(cached.data), info=dict(cached.info))
    for key in ("num_features", "num_classes"):
        declared, actual = cfg.dataset.get(key), getattr(graph, key)
        if declared is not None and int(declared) != int(actual):
            raise ConfigError(f"dataset/{cfg.dataset.name}.yaml declares {key}={declared} but the data has "
                              f"{actual}; fix the yaml (backbone dims are interpolated from it)")
    return graph


def build_backbone(cfg: DictConfig) -> torch.nn.Module:
    seed_everything(cfg.init_seed)
    return instantiate_clean(cfg.backbone)


def _instantiate_dict(node: DictConfig | None) -> list:
    if not node:
        return []
    return [instantiate(v) for v in node.values() if v is not None and "_target_" in v]


def base_record(cfg: DictConfig, rid: str, plain: dict | None = None) -> dict[str, Any]:
    """The record skeleton every run writes (single or batched); filled in as the run goes.
    ``plain``: ``cfg`` already resolved to containers, if the caller has it."""
    plain = OmegaConf.to_container(cfg, resolve=True) if plain is None else plain
    return {
        "schema": SCHEMA, "kind": "run", "run_id": rid, "status": "failed", "error": None,
        "dataset": cfg.dataset.name, "backbone": cfg.backbone.name,
        "seed": int(cfg.seed), "init_seed": int(cfg.init_seed), "init_id": None,
        "config": plain,
        "identity": sorted(identity_config(plain, cfg.zoo.id_ignore)),
        "monitor": OmegaConf.to_container(cfg.monitor),
        "started_at": now_iso(), "versions": package_versions(), "host": host_info(),
        "batch": None,  # batched runs: {"size", "index", "wall_time_s"} of the batch they trained in
    }


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one backbone as configured; write its zoo entry; return its metrics.

    A run whose id is already ``completed`` in the zoo is skipped (its recorded metrics are returned
    with ``skipped=True``). A run that raises is recorded as ``failed`` and the error re-raised.
    """
    check_config(cfg)
    zoo = Zoo(cfg.paths.zoo_dir)
    plain = OmegaConf.to_container(cfg, resolve=True)  # resolved once: run id and record both read it
    rid = run_id(plain, cfg.zoo.id_ignore)
    if cfg.zoo.skip_completed:
        done = zoo.get(rid)
        if done is not None and done.status == "completed":
            console.print(f"[yellow]skip[/] run {rid}: already completed in {zoo.root}")
            return {**done.record.get("metrics", {}), "run_id": rid, "skipped": True}

    rec = base_record(cfg, rid, plain)
    if cfg.zoo.enabled:
        clean_stale_tmp(zoo.entry_dir(rid))  # left by a job killed mid-write
    t0 = time.perf_counter()
    recorder = ZooRecorder(cfg.monitor.metric, cfg.monitor.mode, cfg.zoo.snapshot_every,
                           zoo.entry_dir(rid) if cfg.zoo.enabled else None, cfg.monitor.get("patience"))
    loggers: list = []
    try:
        graph = load_graph(cfg)
        backbone = build_backbone(cfg)
        rec["init_id"] = init_id(backbone.state_dict())
        seed_everything(cfg.seed)
        data_cfg = OmegaConf.to_container(cfg.data)
        fused = bool(data_cfg.pop("fused_eval", True)) and data_cfg.get("batch_size") is None
        datamodule = instantiate(data_cfg, graph=graph)
        module = BackboneModule(
            backbone,
            optimizer=instantiate(cfg.optimizer),
            scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
            metric=make_metric(graph.metric, graph.num_classes, graph.ogb_name),
            monitor=cfg.monitor.metric,
            fused_eval=fused,
        )
        loggers = _instantiate_dict(cfg.get("logger"))
        for lg in loggers:
            lg.log_hyperparams({**plain, "run_id": rid, "init_id": rec["init_id"]})
        extra = {"limit_val_batches": 0} if fused else {}
        callbacks = _instantiate_dict(cfg.get("callbacks"))
        # gnnzoo's bar unless a configured callback is a progress bar (then Lightning uses that); after the
        # recorder, so its epoch-end postfix shows the best value including this epoch
        own_bar = []
        if cfg.trainer.get("enable_progress_bar", True) and not any(isinstance(c, ProgressBar) for c in callbacks):
            own_bar = [EpochProgressBar()]
        trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks + [recorder] + own_bar,
                                          logger=loggers or False, **extra)
        # EpochProgressBar reads the module directly; anything else may read Lightning's logged metrics
        module.log_to_lightning = bool(callbacks or module.scheduler_factory
                                       or (trainer.progress_bar_callback is not None and not own_bar))
        trainer.fit(module, datamodule=datamodule)
        if recorder.best_state is None:
            raise RuntimeError("training produced no validation epoch; nothing to select (check trainer.max_epochs)")
        backbone.load_state_dict(recorder.best_state)
        test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        metrics = {
            cfg.monitor.metric: recorder.best_value,
            "val/acc": recorder.metric_at_best("val/acc"),
            "test/acc": float(test["test/acc"]),
            "test/loss": float(test["test/loss"]),
            "best_epoch": recorder.best_epoch,
        }
        for lg in loggers:
            lg.log_metrics({"best/val_acc": metrics["val/acc"], "best/test_acc": metrics["test/acc"],
                            "best/epoch": recorder.best_epoch})
        rec.update(status="completed", best_epoch=recorder.best_epoch, best_val=recorder.best_value,
                   test_at_best_val=metrics["test/acc"], metrics=metrics)
        return_value = {**metrics, "run_id": rid, "skipped": False}
    except BaseException as e:
        rec["error"] = f"{type(e).__name__}: {e}"
        rec["traceback"] = traceback.format_exc(limit=20)
        raise
    finally:
        rec.update(wall_time_s=time.perf_counter() - t0, finished_at=now_iso(),
                   curves=recorder.curves, snapshots=recorder.snapshots)
        if cfg.zoo.enabled and rank_zero_only.rank == 0:  # DDP: one writer
            entry = zoo.write(rec, recorder.best_state if rec["status"] == "completed" else None)
            rec["entry_dir"] = str(entry)
        close_loggers(loggers, "success" if rec["status"] == "completed" else "failed")
    return_value["entry_dir"] = rec.get("entry_dir")
    return return_value


def _set_threads(cfg: DictConfig) -> None:
    threads = cfg.get("threads")
    if threads is None and is_multirun():
        from hydra.core.hydra_config import HydraConfig

        threads = threads_for_job(HydraConfig.get().launcher.get("n_jobs"))
    if threads:
        torch.set_num_threads(int(threads))


def run(cfg: DictConfig) -> float:
    """``train.py``'s body: print config, train, print the result, return the monitored metric.

    In a multirun (or with ``fail_fast=false``) a failed run is recorded and NaN is returned so the
    sweep goes on; otherwise the error propagates. In a multirun each job also leaves
    ``gnnzoo_job.json`` (done / skipped / failed) in its output folder for the sweep summary.
    """
    multirun = is_multirun()
    _set_threads(cfg)
    if cfg.extras.print_config:
        print_config(cfg)
    fail_fast = cfg.get("fail_fast")
    if fail_fast is None:
        fail_fast = not multirun
    if cfg.get("soup") and cfg.soup.get("strategy"):
        return _run_soup(cfg, multirun, fail_fast)
    if int(cfg.zoo.get("parallel_models", 1)) > 1:
        return _run_parallel_seeds(cfg)
    try:
        result = train(cfg)
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        if multirun:
            write_job_status(cfg.paths.output_dir, "failed", error=err.splitlines()[0][:500],
                             run_id=run_id(cfg, cfg.zoo.id_ignore), zoo_dir=str(Path(cfg.paths.zoo_dir).resolve()))
        if fail_fast:
            raise
        log.error("run failed and was recorded in the zoo: %s", err)
        console.print(f"[red]failed[/] {cfg.dataset.name}/{cfg.backbone.name} seed={cfg.seed}: {err}")
        return float("nan")
    print_result(cfg, result)
    value = result.get(cfg.monitor.metric)
    value = float(value) if value is not None else float("nan")
    if multirun:
        write_job_status(cfg.paths.output_dir, "skipped" if result.get("skipped") else "done",
                         run_id=result["run_id"], value=value, zoo_dir=str(Path(cfg.paths.zoo_dir).resolve()))
    return value


def _run_soup(cfg: DictConfig, multirun: bool, fail_fast: bool) -> float:
    from gnnzoo.soups.task import run_soup

    try:
        res = run_soup(cfg)
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        if multirun:
            write_job_status(cfg.paths.output_dir, "failed", error=err.splitlines()[0][:500])
        if fail_fast:
            raise
        console.print(f"[red]soup failed[/]: {err}")
        return float("nan")
    if multirun:
        write_job_status(cfg.paths.output_dir, "done", run_id=res["run_id"], value=res["soup/val_acc"],
                         zoo_dir=str(Path(cfg.paths.zoo_dir).resolve()))
    return float(res["soup/val_acc"])


def _run_parallel_seeds(cfg: DictConfig) -> float:
    """``zoo.parallel_models=N``: N seeds of this config as one batched training."""
    import statistics

    from gnnzoo.batched.trainer import seed_configs, train_batched

    cfgs = seed_configs(cfg, int(cfg.zoo.parallel_models))
    results = train_batched(cfgs, progress=bool(cfg.trainer.get("enable_progress_bar", True)))
    values = []
    for c, r in zip(cfgs, results):
        if r.get("status") == "failed":
            console.print(f"[red]failed[/] seed={c.seed}: {r.get('error')}")
            continue
        print_result(c, r)
        values.append(float(r[cfg.monitor.metric]))
    if not values:
        return float("nan")
    mean = statistics.fmean(values)
    console.print(f"{len(values)}/{len(cfgs)} seeds completed; mean {cfg.monitor.metric} = {mean:.4f}")
    return mean

