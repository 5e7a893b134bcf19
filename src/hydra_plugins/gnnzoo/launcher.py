"""Hydra launcher ``hydra/launcher=batched``: packs a sweep's jobs into batched trainings.

    python train.py -m hydra/launcher=batched hydra.launcher.max_models=64 \
        optimizer=sgd,adam optimizer.lr=0.01,0.1 backbone.dropout=0.1,0.5 seed=0,1

Jobs are composed exactly as the basic launcher composes them; those that differ only in per-model
settings (seed, init_seed, optimizer, dropout) are trained together, up to ``max_models`` per batch
(see ``gnnzoo.batched.trainer``). Each job still gets its output folder, its zoo entry and its
return value; jobs that cannot be batched (different shapes, mini-batches, schedulers) run in the
groups they form, and a group that cannot be batched at all runs job by job through ``train.py``'s task.
Only ``task=backbone`` jobs (one model each) are batched: a job of any other task (``soup=...``) or with
``zoo.parallel_models`` > 1 runs on its own, through the task it names.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.gnnzoo.launcher.BatchedLauncher"
    # most models trained together in one process
    max_models: int = 64
    # show a progress bar per batch
    progress: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="gnnzoo")


class BatchedLauncher(Launcher):
    def __init__(self, max_models: int = 64, progress: bool = True) -> None:
        if int(max_models) < 1:
            raise ValueError(f"hydra.launcher.max_models must be >= 1, got {max_models}")
        self.max_models = int(max_models)
        self.progress = progress
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _job_configs(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[DictConfig]:
        """Every job's sweep config as Hydra composes it (see ``gnnzoo.utils.compose``): taken from the
        gnnzoo sweeper's validation when it ran, else composed here."""
        from gnnzoo.utils.compose import SweepComposer, take_composed

        composer = SweepComposer(self.hydra_context.config_loader, self.config)
        out = []
        for k, overrides in enumerate(job_overrides):
            sc = take_composed(overrides)
            out.append(self._job_config(sc if sc is not None else composer.compose(overrides), initial_job_idx + k))
        return out

    def _job_config(self, sweep_config: DictConfig, idx: int) -> DictConfig:
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
            out = Path(sweep_config.hydra.sweep.dir) / str(sweep_config.hydra.sweep.subdir)
            sweep_config.hydra.runtime.output_dir = str(out.resolve())
        return sweep_config

    def _prepare(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> tuple[List[DictConfig], List[DictConfig]]:
        """Every job's sweep config (with its ``hydra`` node) and task config (resolved, output folder made)."""
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        sweep_cfgs, task_cfgs = [], []
        for sc in self._job_configs(job_overrides, initial_job_idx):
            HydraConfig.instance().set_config(sc)
            tc = OmegaConf.create({k: v for k, v in OmegaConf.to_container(sc, resolve=False).items() if k != "hydra"})
            with open_dict(tc):
                tc.paths.output_dir = sc.hydra.runtime.output_dir
            OmegaConf.resolve(tc)
            Path(tc.paths.output_dir).mkdir(parents=True, exist_ok=True)
            sweep_cfgs.append(sc)
            task_cfgs.append(tc)
        return sweep_cfgs, task_cfgs

    def _plan(self, task_cfgs: Sequence[DictConfig]) -> tuple[List[int], List[List[int]]]:
        """(jobs that run one by one, batches of job indices): only single backbone trainings are batched."""
        from gnnzoo.batched.trainer import group_configs, is_batchable_task

        batchable = [idx for idx, tc in enumerate(task_cfgs) if is_batchable_task(tc)]
        others = sorted(set(range(len(task_cfgs))) - set(batchable))
        if others:
            log.warning(
                f"{len(others)} job(s) are not single backbone trainings (task="
                f"{task_cfgs[others[0]].task._target_}, or zoo.parallel_models > 1, or zoo.resumable); "
                "they run one by one"
            )
        groups = [
            [batchable[j] for j in g] for g in group_configs([task_cfgs[idx] for idx in batchable], self.max_models)
        ]
        log.info(f"batched launcher: {len(batchable)} jobs in {len(groups)} batch(es) of <= {self.max_models}")
        return others, groups

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.hydra_context is not None and self.task_function is not None
        sweep_cfgs, task_cfgs = self._prepare(job_overrides, initial_job_idx)
        jobs = [Job(list(o), sc, tc) for o, sc, tc in zip(job_overrides, sweep_cfgs, task_cfgs)]
        returns: List[Optional[JobReturn]] = [None] * len(jobs)
        others, groups = self._plan(task_cfgs)
        for idx in others:
            returns[idx] = run_one(self.hydra_context, self.task_function, jobs[idx])
        for g in groups:
            rets = run_group(self.hydra_context, self.task_function, [jobs[idx] for idx in g], self.progress)
            for idx, ret in zip(g, rets):
                returns[idx] = ret
        return returns  # type: ignore[return-value]


@dataclass
class Job:
    """One job of a sweep as the launchers run it: its overrides, sweep config (with ``hydra``) and task config."""

    overrides: List[str]
    sweep_cfg: DictConfig
    task_cfg: DictConfig


def run_one(hydra_context: HydraContext, task_function: TaskFunction, job: Job) -> JobReturn:
    """One job through ``train.py``'s task, as Hydra's basic launcher runs it."""
    HydraConfig.instance().set_config(job.sweep_cfg)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=job.sweep_cfg,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def _trained_since(res: dict, zoo_dir: str, since: Optional[str]) -> bool:
    """A run found completed in the zoo that this sweep trained itself before an interruption (its record
    finished after ``since``, the sweep's start): after a requeue it counts as done, not as skipped."""
    if since is None or not res.get("skipped") or res.get("status") != "completed":
        return False
    from gnnzoo.zoo.store import Zoo

    entry = Zoo(zoo_dir).get(res["run_id"])
    return entry is not None and str(entry.record.get("finished_at") or "") >= since


def run_group(
    hydra_context: HydraContext,
    task_function: TaskFunction,
    jobs: Sequence[Job],
    progress: bool = True,
    since: Optional[str] = None,
) -> List[JobReturn]:
    """Train ``jobs`` as one batch (``gnnzoo.batched.trainer``), or one by one when they cannot be batched; each
    job gets its status file and its return value. ``since``: see :func:`_trained_since`."""
    from gnnzoo.batched.trainer import train_batched
    from gnnzoo.utils.sweep import write_job_status

    HydraConfig.instance().set_config(jobs[-1].sweep_cfg)
    try:
        results = train_batched([j.task_cfg for j in jobs], progress=progress)
    except NotImplementedError as e:
        log.warning(f"{len(jobs)} jobs cannot be batched ({e}); running them one by one")
        return [run_one(hydra_context, task_function, j) for j in jobs]
    out = []
    for job, res in zip(jobs, results):
        tc = job.task_cfg
        value = res.get(tc.monitor.metric)
        failed = res.get("status") == "failed"
        zoo_dir = str(Path(tc.paths.zoo_dir).resolve())
        if failed:
            status = "failed"
        elif res.get("skipped") and not _trained_since(res, zoo_dir, since):
            status = "skipped"
        else:
            status = "done"
        info: Any = {"run_id": res["run_id"], "zoo_dir": zoo_dir}
        if failed:
            info["error"] = (res.get("error") or "")[:500]
        else:
            info["value"] = value
        write_job_status(tc.paths.output_dir, status, **info)
        out.append(job_return(job, float("nan") if failed or value is None else float(value)))
    return out


def job_return(job: Job, value: float) -> JobReturn:
    """The return of a job a launcher ran outside Hydra's ``run_job`` (its status file says how it ended; a failed
    job returns nan, as sweepers expect)."""
    return JobReturn(
        overrides=list(job.overrides),
        cfg=job.task_cfg,
        hydra_cfg=job.sweep_cfg,
        working_dir=os.getcwd(),
        task_name=job.sweep_cfg.hydra.job.name,
        status=JobStatus.COMPLETED,
        _return_value=value,
    )
