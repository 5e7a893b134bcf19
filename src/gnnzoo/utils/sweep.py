"""Sweep bookkeeping: each multirun job leaves ``gnnzoo_job.json`` in its output folder; a Hydra
callback reads them when the sweep ends, prints one summary line (done / skipped / failed) and exits
non-zero when a job failed (``hydra.callbacks.sweep_summary.exit_on_failure=false`` turns that off)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gnnzoo.utils.io import atomic_write_json

log = logging.getLogger("gnnzoo")
JOB_FILE = "gnnzoo_job.json"


def write_job_status(output_dir: str | Path, status: str, **info: Any) -> None:
    """Record how this job ended (``done`` | ``skipped`` | ``failed`` | ``interrupted``) in its output folder."""
    try:
        atomic_write_json(Path(output_dir) / JOB_FILE, {"status": status, **info})
    except OSError as e:  # never let bookkeeping fail a run
        log.warning("could not write %s: %s", JOB_FILE, e)


def read_job_statuses(sweep_dir: str | Path) -> list[dict]:
    out = []
    for f in sorted(Path(sweep_dir).glob(f"*/{JOB_FILE}")):
        try:
            out.append({"job": f.parent.name, **json.loads(f.read_text())})
        except (OSError, json.JSONDecodeError):
            out.append({"job": f.parent.name, "status": "unknown"})
    return out


def summarize(sweep_dir: str | Path, expected: int | None = None) -> dict[str, Any]:
    jobs = read_job_statuses(sweep_dir)
    counts = {k: sum(j["status"] == k for j in jobs) for k in ("done", "skipped", "failed", "interrupted")}
    counts["continued"] = sum(j["status"] == "done" and j.get("continued_from") is not None for j in jobs)
    counts["missing"] = max(0, (expected or 0) - len(jobs))
    counts["failed_jobs"] = [(j["job"], j.get("error", "")) for j in jobs if j["status"] == "failed"]
    return counts


def summary_line(s: dict[str, Any]) -> str:
    done = s["done"]
    if s.get("continued"):  # continuations of runs (FMS): the new runs and the continued ones are counted apart
        done = f"{s['done'] - s['continued']} new run(s) + {s['continued']} continuation(s) done"
    else:
        done = f"{done} done"
    line = f"sweep summary: {done}, {s['skipped']} skipped, {s['failed']} failed"
    if s.get("interrupted"):
        line += f", {s['interrupted']} interrupted"
    if s.get("missing"):
        line += f", {s['missing']} without status (killed or crashed)"
    return line


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks.sweep_summary``): prints the summary after a multirun; every job
    has run by then. With ``exit_on_failure`` (default) a sweep with a failed job exits with status 1."""

    def __init__(self, exit_on_failure: bool = True) -> None:
        self.exit_on_failure = bool(exit_on_failure)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        s = summarize(sweep_dir)
        print(summary_line(s), flush=True)
        for job, err in s["failed_jobs"][:20]:
            print(f"  failed job {job}: {err}", flush=True)
        if s["failed"]:
            print(f"  (details in the zoo records; report: python -m gnnzoo.report {sweep_dir})", flush=True)
            if self.exit_on_failure:
                print(
                    f"  exiting with status 1: {s['failed']} job(s) failed "
                    "(hydra.callbacks.sweep_summary.exit_on_failure=false exits 0)",
                    flush=True,
                )
                sys.exit(1)


def threads_for_job(n_jobs: Any) -> int | None:
    """Torch threads per job so that parallel local jobs do not oversubscribe the cores."""
    try:
        n = int(n_jobs)
    except (TypeError, ValueError):
        return None
    cores = os.cpu_count() or 1
    if n < 0:
        n = max(1, cores + 1 + n)  # joblib: -1 = all cores
    return max(1, cores // max(1, n)) if n > 1 else None
