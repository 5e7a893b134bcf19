"""Hydra launchers ``hydra/launcher=slurm`` and ``hydra/launcher=slurm_batched``: a sweep as SLURM jobs.

    python train.py -m hydra/launcher=slurm seed=0,1,2                      # one SLURM job per run
    python train.py -m hydra/launcher=slurm_batched hydra.launcher.max_models=64 \\
        optimizer.lr=0.01,0.1 backbone.dropout=0.1,0.5 seed=0,1,2          # one SLURM job per batch

Jobs are composed on the submitting machine exactly as the local launchers compose them (so the run ids and the
zoo are the same); what runs where:

* ``batched: false`` (``slurm``): one array task per run, through ``train.py``'s task (hydra-submitit-launcher's
  behaviour, with the resources below);
* ``batched: true`` (``slurm_batched``): the jobs are grouped as ``hydra/launcher=batched`` groups them (same
  shapes together, at most ``max_models`` per group) and each array task trains ``groups_per_job`` groups, one
  after the other, with the batched trainer; jobs that cannot be batched get an array task each.

Resources follow the config: ``gpus_per_node: auto`` asks for ``trainer.devices`` GPUs when the trainer is a GPU
one (``trainer=gpu``) and for none otherwise; ``cpus_per_task`` and ``mem_gb`` are asked per array task and the
job's torch threads follow ``cpus_per_task``; ``partition`` (``null``: the cluster's default) and ``timeout_min``.

Pre-emption and time limits: submitit asks SLURM for ``USR2`` ``signal_delay_s`` before the time limit; the array
task then requeues itself (at most ``max_num_timeout`` times) and on its next start runs the same runs again:
runs already ``completed`` in the zoo are skipped (the zoo's usual resume), the interrupted one runs again (a
resumable run continues from its last checkpoint), and files are written atomically, so nothing is duplicated or
half-written. ``scontrol requeue`` and pre-emption (SIGTERM) end the task without a result; it runs again the
same way when SLURM restarts it.

The launcher follows its jobs with ``squeue`` and their result files (clusters without an accounting database
have no ``sacct``, which submitit polls): a job that leaves the queue without a result (cancelled, out of memory,
node failure, a time limit without requeue) fails each run it had not finished, with the job's log in the error.
"""

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.gnnzoo.launcher import BatchedLauncher, Job, job_return, run_group, run_one

log = logging.getLogger(__name__)

# squeue states after which a job will not write a result any more (it left the queue otherwise)
ENDED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
    "TIMEOUT",
}
GPU_ACCELERATORS = {"gpu", "cuda"}


@dataclass
class Unit:
    """What one array task runs in turn: single runs (``kind="run"``) and batches (``kind="group"``)."""

    kind: str
    idxs: List[int]


class ArrayTask:
    """The callable submitit pickles for each array task: runs its units on the node and returns
    ``[(job index, JobReturn)]``. ``checkpoint`` makes a task that gets submitit's time-limit signal requeue itself
    with the same arguments (finished runs are then skipped by the zoo)."""

    def __init__(self, hydra_context: HydraContext, task_function: TaskFunction, progress: bool) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.progress = progress

    def __call__(
        self, units: List[Unit], jobs: Dict[int, Job], singleton_state: Dict[Any, Any], since: str
    ) -> List[tuple]:
        import torch

        from gnnzoo.tasks.run import interrupt_handlers

        Singleton.set_state(singleton_state)
        setup_globals()
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus:
            torch.set_num_threads(int(cpus))
        out = []
        # SIGTERM (scancel, scontrol requeue, pre-emption) ends the task without a result: it is not a failure
        with interrupt_handlers():
            for unit in units:
                if unit.kind == "run":
                    out.append((unit.idxs[0], run_one(self.hydra_context, self.task_function, jobs[unit.idxs[0]])))
                else:
                    rets = run_group(
                        self.hydra_context,
                        self.task_function,
                        [jobs[i] for i in unit.idxs],
                        self.progress,
                        since=since,
                    )
                    out.extend(zip(unit.idxs, rets))
        return out

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class SlurmLauncher(BatchedLauncher):
    """``hydra/launcher=slurm`` / ``slurm_batched`` (settings: ``conf/hydra/launcher/slurm.yaml``). A subclass of the
    batched launcher: it composes and groups the jobs with the same code, then submits them as one job array."""

    def __init__(
        self,
        submitit_folder: str,
        partition: Optional[str] = None,
        timeout_min: int = 240,
        cpus_per_task: int = 4,
        mem_gb: Optional[float] = 16,
        gpus_per_node: Any = "auto",
        array_parallelism: int = 64,
        max_num_timeout: int = 3,
        signal_delay_s: int = 120,
        additional_parameters: Optional[Dict[str, Any]] = None,
        setup: Optional[List[str]] = None,
        batched: bool = False,
        max_models: int = 64,
        groups_per_job: int = 1,
        poll_s: float = 5.0,
        progress: bool = False,
    ) -> None:
        super().__init__(max_models=max_models, progress=progress)
        for name, value in (("cpus_per_task", cpus_per_task), ("timeout_min", timeout_min)):
            if int(value) < 1:
                raise ValueError(f"hydra.launcher.{name} must be >= 1, got {value}")
        if int(groups_per_job) < 1:
            raise ValueError(f"hydra.launcher.groups_per_job must be >= 1, got {groups_per_job}")
        if not (gpus_per_node == "auto" or (str(gpus_per_node).isdigit())):
            raise ValueError(f"hydra.launcher.gpus_per_node must be 'auto' or a count >= 0, got {gpus_per_node!r}")
        self.folder = str(submitit_folder)
        self.partition = partition
        self.timeout_min = int(timeout_min)
        self.cpus_per_task = int(cpus_per_task)
        self.mem_gb = mem_gb
        self.gpus_per_node = gpus_per_node
        self.array_parallelism = int(array_parallelism)
        self.max_num_timeout = int(max_num_timeout)
        self.signal_delay_s = int(signal_delay_s)
        self.additional_parameters = _plain(additional_parameters) or {}
        self.setup_lines = list(_plain(setup) or [])
        self.batched = bool(batched)
        self.groups_per_job = int(groups_per_job)
        self.poll_s = float(poll_s)

    # ---------------------------------------------------------------- what runs where
    def _units(self, task_cfgs: Sequence[DictConfig]) -> List[List[Unit]]:
        """The units of each array task."""
        if not self.batched:
            return [[Unit("run", [i])] for i in range(len(task_cfgs))]
        others, groups = self._plan(task_cfgs)
        tasks = [[Unit("run", [i])] for i in others]
        for s in range(0, len(groups), self.groups_per_job):
            tasks.append([Unit("group", g) for g in groups[s : s + self.groups_per_job]])
        return tasks

    def resources(self, task_cfgs: Sequence[DictConfig]) -> Dict[str, Any]:
        """sbatch parameters (submitit's names) for these jobs: one node and one task per array task; GPUs from
        the trainer unless set; the most any job needs when they differ."""
        gpus = 0
        for tc in task_cfgs:
            trainer = tc.get("trainer") or {}
            strategy = str(trainer.get("strategy") or "")
            devices = trainer.get("devices", 1)
            if "ddp" in strategy and str(devices) not in ("1", "auto"):
                raise ValueError(
                    "trainer=ddp over several processes is not launched through the SLURM launchers (one task per "
                    "array task); run `python train.py trainer=ddp` inside your own sbatch script with "
                    "--ntasks-per-node equal to trainer.devices"
                )
            if self.gpus_per_node == "auto" and str(trainer.get("accelerator")) in GPU_ACCELERATORS:
                gpus = max(gpus, int(devices) if str(devices).isdigit() else 1)
        if self.gpus_per_node != "auto":
            gpus = int(self.gpus_per_node)
        params: Dict[str, Any] = {
            "job_name": str(self.config.hydra.job.name) if self.config is not None else "gnnzoo",
            "time": self.timeout_min,
            "nodes": 1,
            "ntasks_per_node": 1,
            "cpus_per_task": self.cpus_per_task,
            "signal_delay_s": self.signal_delay_s,
            "array_parallelism": self.array_parallelism,
        }
        if self.partition:
            params["partition"] = str(self.partition)
        if self.mem_gb is not None:
            params["mem"] = f"{int(float(self.mem_gb) * 1024)}MB"
        if gpus:
            params["gpus_per_node"] = gpus
        if self.additional_parameters:
            params["additional_parameters"] = dict(self.additional_parameters)
        if self.setup_lines:
            params["setup"] = list(self.setup_lines)
        return params

    # ---------------------------------------------------------------- launch and follow
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        from gnnzoo.zoo.record import now_iso

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        if not job_overrides:
            return []
        since = now_iso()
        sweep_cfgs, task_cfgs = self._prepare(job_overrides, initial_job_idx)
        jobs = [Job(list(o), sc, tc) for o, sc, tc in zip(job_overrides, sweep_cfgs, task_cfgs)]
        params = self.resources(task_cfgs)
        tasks = self._units(task_cfgs)
        folder = self.folder
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=self.max_num_timeout)
        executor.update_parameters(**params)
        fn = ArrayTask(self.hydra_context, self.task_function, self.progress)
        state = Singleton.get_state()
        args = [(units, {i: jobs[i] for u in units for i in u.idxs}, state, since) for units in tasks]
        what = "batched groups" if self.batched else "runs"
        log.info(
            f"slurm: {len(jobs)} job(s) as {len(tasks)} array task(s) ({what}); "
            f"{_describe(params)}; logs in {Path(folder).parent}"
        )
        try:
            submitted = executor.map_array(fn, *zip(*args))
        except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError, OSError) as e:
            detail = getattr(e, "output", b"") or getattr(e, "stderr", b"") or str(e)
            if isinstance(detail, bytes):
                detail = detail.decode(errors="replace")
            raise RuntimeError(
                f"sbatch refused the sweep's jobs ({_describe(params)}): {str(detail).strip()}\n"
                "check hydra.launcher.partition, cpus_per_task, mem_gb, timeout_min and gpus_per_node against "
                "`sinfo -o '%P %c %m %l %G'`"
            ) from None
        returns: List[Optional[JobReturn]] = [None] * len(jobs)
        for task_units, job, result in zip(tasks, submitted, self._follow(submitted)):
            idxs = [i for u in task_units for i in u.idxs]
            if isinstance(result, list):
                for idx, ret in result:
                    returns[idx] = ret
            else:
                for idx in idxs:
                    returns[idx] = _lost(jobs[idx], result)
        return returns  # type: ignore[return-value]

    def _follow(self, submitted: Sequence[Any]) -> List[Any]:
        """Wait for every array task: its result list, or a string saying why it ended without one."""
        results: List[Any] = [None] * len(submitted)
        ended_at: Dict[int, float] = {}
        last_state: Dict[int, str] = {}
        last_poll, last_line = 0.0, ""
        while any(r is None for r in results):
            now = time.time()
            for k, job in enumerate(submitted):
                if results[k] is None and job.paths.result_pickle.exists():
                    results[k] = _result(job)
            if now - last_poll >= self.poll_s:
                last_poll = now
                states = squeue_states({str(j.job_id).split("_")[0] for j in submitted})
                for k, job in enumerate(submitted):
                    if results[k] is not None:
                        continue
                    state = states.get(str(job.job_id))
                    if state in ENDED:
                        last_state[k] = state
                    if state is None or state in ENDED:
                        # give the result file a moment (shared filesystems lag), then call the task lost
                        ended_at.setdefault(k, now)
                        if now - ended_at[k] > max(15.0, 3 * self.poll_s) and not job.paths.result_pickle.exists():
                            results[k] = (
                                f"SLURM job {job.job_id} ended without a result "
                                f"({last_state.get(k, 'left the queue')}); "
                                f"its log: {job.paths.stderr}"
                            )
                    else:
                        ended_at.pop(k, None)
                line = _progress(results, states, submitted)
                if line != last_line:
                    log.info(line)
                    last_line = line
            time.sleep(1.0)
        return results


def squeue_states(array_ids: Sequence[str]) -> Dict[str, str]:
    """``{job id (``123`` or ``123_4``): state}`` of the jobs SLURM still lists (one call, array tasks expanded)."""
    if not array_ids:
        return {}
    # --states=all: ended jobs too, while SLURM still lists them (MinJobAge)
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--jobs=" + ",".join(sorted(array_ids))]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning(f"squeue failed ({e}); retrying")
        return {i: "UNKNOWN" for i in array_ids}
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:  # every listed job has left the queue
            return {}
        log.warning(f"squeue failed ({out.stderr.strip()}); retrying")
        return {i: "UNKNOWN" for i in array_ids}
    return parse_squeue(out.stdout)


def parse_squeue(text: str) -> Dict[str, str]:
    """``squeue --format=%i|%T`` lines -> ``{job id: state}``; a range of pending array tasks (``123_[4-9%2]``)
    gives each of its tasks."""
    states: Dict[str, str] = {}
    for line in text.splitlines():
        jid, _, state = line.strip().partition("|")
        if not jid:
            continue
        if "_[" in jid:
            base, rng = jid.split("_[", 1)
            for part in rng.rstrip("]").split("%")[0].split(","):
                lo, _, hi = part.partition("-")
                for t in range(int(lo), int(hi or lo) + 1):
                    states[f"{base}_{t}"] = state.strip()
        else:
            states[jid] = state.strip()
    return states


def _result(job: Any) -> Any:
    """The array task's returned list, or why it has none (an exception on the node: its last line)."""
    import submitit

    outcome, value = submitit.core.utils.pickle_load(job.paths.result_pickle)
    if outcome == "success":
        return value
    lines = [ln.strip() for ln in str(value).strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else str(outcome)
    hint = ""
    if "timed-out too many times" in last:
        hint = " (raise hydra.launcher.timeout_min or max_num_timeout; the same command resumes the sweep)"
    return f"SLURM job {job.job_id} raised on the node: {last}{hint}; log: {job.paths.stderr}"


def _lost(job: Job, reason: str) -> JobReturn:
    """The return of a run whose array task ended without a result: failed, unless it finished before."""
    from gnnzoo.utils.sweep import JOB_FILE, write_job_status

    tc = job.task_cfg
    status_file = Path(tc.paths.output_dir) / JOB_FILE
    finished = False
    if status_file.exists():
        import json

        try:
            finished = json.loads(status_file.read_text()).get("status") in ("done", "skipped")
        except (OSError, ValueError):
            finished = False
    if not finished:
        write_job_status(tc.paths.output_dir, "failed", error=reason, zoo_dir=str(Path(tc.paths.zoo_dir).resolve()))
        log.error(f"job {job.sweep_cfg.hydra.job.num} ({' '.join(job.overrides)}): {reason}")
    return job_return(job, float("nan"))


def _progress(results: Sequence[Any], states: Dict[str, str], submitted: Sequence[Any]) -> str:
    done = sum(r is not None for r in results)
    running = sum(states.get(str(j.job_id)) == "RUNNING" for j, r in zip(submitted, results) if r is None)
    queued = len(results) - done - running
    return f"slurm: {done}/{len(results)} array task(s) finished, {running} running, {queued} queued"


def _describe(params: Dict[str, Any]) -> str:
    keys = ("partition", "time", "cpus_per_task", "mem", "gpus_per_node")
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params) + (
        "" if "gpus_per_node" in params else ", no GPU"
    )


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
