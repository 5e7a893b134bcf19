"""The task wrapper: what every task needs, around ``cfg.task`` (a ``_target_`` to a method's ``run``).

``train.py`` (and every entry point) calls :func:`cli` with its ``@hydra.main`` function, whose body is
:func:`run_task`. The wrapper

* checks the config keys every task shares, sets the torch threads, prints the config;
* calls the task (``run(cfg) -> dict of metrics``, with ``value``: what a sweeper optimises);
* on failure: re-raises (single runs, ``fail_fast=true``) or reports it and returns NaN so a sweep goes on
  (multiruns, ``fail_fast=false``), saying whether the failure was recorded in the zoo;
* leaves ``gnnzoo_job.json`` (done / skipped / failed / interrupted) in a multirun job's folder, which the
  sweep summary reads (and exits non-zero on failures);
* turns SIGINT / SIGTERM into :class:`RunInterrupted`: the run is left unrecorded (so a relaunch or a
  requeued job runs it again) and the process exits with 130 / 143.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from hydra.utils import get_method
from omegaconf import DictConfig

from gnnzoo.utils.config import check_config, is_multirun
from gnnzoo.utils.errors import ConfigError, RunInterrupted, recorded_entry
from gnnzoo.utils.logging import close_loggers, console, print_config
from gnnzoo.utils.paths import mark_launch_dir
from gnnzoo.utils.sweep import threads_for_job, write_job_status

log = logging.getLogger("gnnzoo")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise RunInterrupted(signum)


@contextlib.contextmanager
def interrupt_handlers() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`RunInterrupted` inside the block (main thread only; elsewhere a
    no-op). Lightning chains its own SIGTERM handler in front of this one while it trains."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _set_threads(cfg: DictConfig) -> None:
    threads = cfg.get("threads")
    if threads is None and is_multirun():
        from hydra.core.hydra_config import HydraConfig

        threads = threads_for_job(HydraConfig.get().launcher.get("n_jobs"))
    if threads:
        torch.set_num_threads(int(threads))


def task_name(cfg: DictConfig) -> str:
    """``backbone``, ``soup`` ...: the package of the task's ``_target_`` (``gnnzoo.soups.task.run`` -> soups)."""
    parts = str(cfg.task._target_).split(".")
    return parts[-2] if parts[-2] != "task" else parts[-3]


def _describe(cfg: DictConfig) -> str:
    return f"{task_name(cfg)} {cfg.backbone.name} on {cfg.dataset.name} seed={cfg.seed}"


def run_task(cfg: DictConfig) -> float:
    """Run ``cfg.task`` with everything a task needs around it; return the value a sweeper optimises."""
    if not cfg.get("task") or "_target_" not in cfg.task:
        raise ConfigError("the config has no task (task=backbone | soup ...)")
    multirun = is_multirun()
    check_config(cfg)
    task: Callable[[DictConfig], dict] = get_method(cfg.task._target_)
    _set_threads(cfg)
    if cfg.extras.print_config:
        print_config(cfg)
    fail_fast = cfg.get("fail_fast")
    if fail_fast is None:
        fail_fast = not multirun
    zoo_dir = str(Path(cfg.paths.zoo_dir).resolve())
    try:
        with interrupt_handlers():
            result = task(cfg)
    except RunInterrupted as e:
        close_loggers([], "aborted")
        if multirun:
            write_job_status(cfg.paths.output_dir, "interrupted", error=str(e), zoo_dir=zoo_dir)
        console.print(f"[yellow]interrupted[/] {_describe(cfg)}: {e}; nothing recorded, a relaunch runs it again")
        raise
    except Exception as e:
        close_loggers([], "failed")  # a W&B run the task left open is finished, so the next job gets its own
        err = f"{type(e).__name__}: {e}"
        entry = recorded_entry(e)
        if multirun:
            write_job_status(
                cfg.paths.output_dir,
                "failed",
                error=err.splitlines()[0][:500],
                zoo_dir=zoo_dir,
                **({"run_id": Path(entry).name} if entry else {}),
            )
        if fail_fast:
            raise
        where = f"recorded in the zoo as failed ({entry})" if entry else "nothing was written to the zoo"
        log.error("run failed (%s): %s", where, err)
        console.print(f"[red]failed[/] {_describe(cfg)}: {err.splitlines()[0]} [dim]({where})[/]")
        return float("nan")
    value = result.get("value")
    value = float(value) if value is not None else float("nan")
    failed = result.get("failed_runs") or []  # a task of several runs (zoo.parallel_models) where some failed
    if failed and fail_fast:
        raise RuntimeError(f"{len(failed)} of the task's runs failed (each recorded in the zoo); first: {failed[0]}")
    if multirun:
        status = "failed" if failed else ("skipped" if result.get("skipped") else "done")
        info = {"error": f"{len(failed)} run(s) failed: {failed[0]}"[:500]} if failed else {}
        ids = {"run_ids": result["run_ids"]} if "run_ids" in result else {"run_id": result.get("run_id")}
        if result.get("continued_from") is not None:
            info["continued_from"] = result["continued_from"]
        write_job_status(
            cfg.paths.output_dir, status, value=None if math.isnan(value) else value, zoo_dir=zoo_dir, **ids, **info
        )
    return value


def cli(main: Callable[[], Any]) -> None:
    """Run an entry point's ``@hydra.main`` function. Relative paths resolve against the directory the
    command started in (for every job and subprocess); SIGINT / SIGTERM at any moment (inside a run or
    between the jobs of a sweep) end the process with 128 + the signal number (130, 143)."""
    mark_launch_dir()
    try:
        with interrupt_handlers():
            main()
    except RunInterrupted as e:
        print(f"gnnzoo: {e}; exiting with {e.exit_code}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
