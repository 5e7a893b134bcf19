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

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from gnnzoo.batched.trainer import group_configs, is_batchable_task, train_batched
        from gnnzoo.utils.sweep import write_job_status

        setup_globals()
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

        returns: List[Optional[JobReturn]] = [None] * len(task_cfgs)

        def one_by_one(idxs: Sequence[int]) -> None:
            for idx in idxs:
                HydraConfig.instance().set_config(sweep_cfgs[idx])
                returns[idx] = run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=sweep_cfgs[idx],
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )

        batchable = [idx for idx, tc in enumerate(task_cfgs) if is_batchable_task(tc)]
        others = sorted(set(range(len(task_cfgs))) - set(batchable))
        if others:
            log.warning(
                f"batched launcher: {len(others)} job(s) are not single backbone trainings (task="
                f"{task_cfgs[others[0]].task._target_}, or zoo.parallel_models > 1); they run one by one"
            )
            one_by_one(others)
        groups = [
            [batchable[j] for j in g] for g in group_configs([task_cfgs[idx] for idx in batchable], self.max_models)
        ]
        log.info(f"batched launcher: {len(batchable)} jobs in {len(groups)} batch(es) of <= {self.max_models}")
        for g in groups:
            cfgs = [task_cfgs[idx] for idx in g]
            try:
                results = train_batched(cfgs, progress=self.progress)
            except NotImplementedError as e:
                log.warning(f"jobs {g} cannot be batched ({e}); running them one by one")
                one_by_one(g)
                continue
            for idx, res in zip(g, results):
                tc = task_cfgs[idx]
                mon = tc.monitor.metric
                value = res.get(mon)
                failed = res.get("status") == "failed"
                status = "failed" if failed else ("skipped" if res.get("skipped") else "done")
                info: Any = {"run_id": res["run_id"], "zoo_dir": str(Path(tc.paths.zoo_dir).resolve())}
                if failed:
                    info["error"] = (res.get("error") or "")[:500]
                else:
                    info["value"] = value
                write_job_status(tc.paths.output_dir, status, **info)
                ret = JobReturn(
                    overrides=list(job_overrides[idx]),
                    cfg=tc,
                    hydra_cfg=sweep_cfgs[idx],
                    working_dir=os.getcwd(),
                    task_name=sweep_cfgs[idx].hydra.job.name,
                    status=JobStatus.COMPLETED,
                    _return_value=float("nan") if failed or value is None else float(value),
                )
                returns[idx] = ret
        return returns  # type: ignore[return-value]
