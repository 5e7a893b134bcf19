"""gnnzoo's SLURM launchers on a real one-node cluster (``scripts/slurm_local.sh``, started once per session).

Tests marked ``slurm`` need root (to start the cluster; Debian's packages are installed when missing) or are
skipped with the reason; where the machine is root they run, and a cluster that does not start is an error,
never a skip. The launcher's pure parts (resources, squeue parsing) are tested without a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT
from gnnzoo.zoo.store import Zoo
from hydra_plugins.gnnzoo.slurm import SlurmLauncher, parse_squeue

SCRIPT = ROOT / "scripts" / "slurm_local.sh"
FAST = ["dataset=synthetic", "logger=none", "trainer.enable_progress_bar=false", "trainer.max_epochs=5"]
# one CPU per array task so that the 2-core test machine runs two at once; poll squeue every second
SMALL = ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.poll_s=1"]


def _free_port_pair() -> int:
    for port in range(6917, 7917, 2):
        ok = True
        for p in (port, port + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError("no free port pair for the test cluster")


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory):
    """Environment (``SLURM_CONF``) of a one-node cluster started for this test session and stopped after it."""
    if sys.platform != "linux":
        pytest.skip("slurm: the local cluster (scripts/slurm_local.sh) runs on Linux only")
    if os.geteuid() != 0:
        pytest.skip("slurm: starting a local SLURM cluster needs root (scripts/slurm_local.sh start)")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("slurm: no SLURM packages and no apt-get to install them")
    state = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, SLURM_LOCAL_DIR=str(state), SLURM_LOCAL_PORT=str(_free_port_pair()))
    p = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        logs = "".join(f"\n--- {f.name}\n{f.read_text()[-1500:]}" for f in sorted((state / "log").glob("*.log")))
        pytest.fail(f"the local SLURM cluster did not start:\n{p.stdout}\n{p.stderr}{logs}")
    yield {"SLURM_CONF": str(state / "slurm.conf")}
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=120)


def _squeue(env: dict) -> list[list[str]]:
    out = subprocess.run(
        ["squeue", "--noheader", "--format=%i %T %r"], env={**os.environ, **env}, capture_output=True, text=True
    )
    return [line.split() for line in out.stdout.splitlines() if line.strip()]


_held_since: dict[str, float] = {}


def _release_requeued(env: dict) -> int:
    """SLURM holds a requeued job for two minutes (its begin time); start such jobs after 5 s instead. Returns how
    many. (Released at once, a job can start while its previous instance is still being cleaned up, and SLURM
    then kills it: "Job credential revoked".)"""
    n = 0
    for jid, state, reason in _squeue(env):
        if state == "PENDING" and reason == "BeginTime":
            if time.time() - _held_since.setdefault(jid, time.time()) >= 5:
                subprocess.run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], env={**os.environ, **env})
                _held_since.pop(jid)
                n += 1
        else:
            _held_since.pop(jid, None)
    return n


def _train_cmd(args: list[str], tmp_path: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        f"paths.zoo_dir={tmp_path}/zoo",
        f"paths.log_dir={tmp_path}/logs",
        f"paths.cache_dir={tmp_path}/cache",
        f"hydra.sweep.dir={tmp_path}/sweep",
        "extras.print_config=false",
        *args,
    ]


def _run(args, tmp_path, env, timeout=600):
    return subprocess.run(
        _train_cmd(args, tmp_path),
        cwd=tmp_path,
        env={**os.environ, "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _no_partial_files(zoo_dir: Path) -> None:
    leftovers = [p for p in zoo_dir.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers


# ------------------------------------------------------------------------------------------- without a cluster
def _launcher(**kw) -> SlurmLauncher:
    return SlurmLauncher(submitit_folder="/tmp/x/%j", **kw)


def _trainer(name: str, **over) -> OmegaConf:
    base = {"accelerator": "cpu", "devices": 1}
    if name == "gpu":
        base = {"accelerator": "gpu", "devices": 1}
    if name == "ddp":
        base = {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}
    return OmegaConf.create({"trainer": {**base, **over}})


def test_slurm_resources_follow_the_trainer_and_the_launcher_settings():
    cpu = _launcher(cpus_per_task=3, mem_gb=2, partition="short", timeout_min=30).resources([_trainer("cpu")])
    assert "gpus_per_node" not in cpu  # a CPU trainer asks for no GPU
    assert cpu["cpus_per_task"] == 3 and cpu["mem"] == "2048MB" and cpu["partition"] == "short"
    assert cpu["time"] == 30 and cpu["ntasks_per_node"] == 1
    assert _launcher().resources([_trainer("gpu")])["gpus_per_node"] == 1
    assert _launcher().resources([_trainer("cpu"), _trainer("gpu", devices=2)])["gpus_per_node"] == 2
    assert _launcher(gpus_per_node=0).resources([_trainer("gpu")]).get("gpus_per_node") is None
    assert "partition" not in _launcher().resources([_trainer("cpu")])  # the cluster's default
    with pytest.raises(ValueError, match="sbatch script"):
        _launcher().resources([_trainer("ddp")])
    for bad in ({"gpus_per_node": "two"}, {"cpus_per_task": 0}, {"groups_per_job": 0}):
        with pytest.raises(ValueError, match="hydra.launcher"):
            _launcher(**bad)


def test_squeue_lines_are_parsed_with_pending_array_ranges():
    text = "12_0|RUNNING\n12_[3-5,8%2]|PENDING\n13|COMPLETING\n"
    assert parse_squeue(text) == {
        "12_0": "RUNNING",
        "12_3": "PENDING",
        "12_4": "PENDING",
        "12_5": "PENDING",
        "12_8": "PENDING",
        "13": "COMPLETING",
    }


# ------------------------------------------------------------------------------------------- on the cluster
@pytest.mark.slurm
def test_a_sweep_through_slurm_fills_the_zoo(tmp_path, slurm_env):
    p = _run(["hydra/launcher=slurm", *SMALL, *FAST, "seed=0,1"], tmp_path, slurm_env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "sweep summary: 2 done, 0 skipped, 0 failed" in p.stdout
    entries = list(Zoo(tmp_path / "zoo").entries())
    assert len(entries) == 2 and all(e.status == "completed" for e in entries)
    scripts = list((tmp_path / "sweep" / ".submitit").rglob("*_submission.sh"))
    assert scripts
    sbatch = scripts[0].read_text()
    assert "--cpus-per-task=1" in sbatch and "--gpus" not in sbatch  # a CPU trainer asks for no GPU
    # the same command again: every run is skipped, nothing trained twice
    again = _run(["hydra/launcher=slurm", *SMALL, *FAST, "seed=0,1"], tmp_path, slurm_env)
    assert "sweep summary: 0 done, 2 skipped, 0 failed" in again.stdout, again.stderr[-3000:]


@pytest.mark.slurm
@pytest.mark.slow
def test_batched_groups_through_slurm_write_the_zoo_the_local_batched_launcher_writes(tmp_path, slurm_env):
    grid = [*FAST, "optimizer.lr=0.01,0.1", "backbone.hidden_channels=8,16", "seed=0,1", "hydra.launcher.max_models=3"]
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    p = _run(["hydra/launcher=slurm_batched", "hydra.launcher.groups_per_job=2", *SMALL, *grid], slurm_dir, slurm_env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "sweep summary: 8 done, 0 skipped, 0 failed" in p.stdout
    # 2 shapes x 4 models in batches of <= 3 -> 4 batches, 2 per array task -> 2 array tasks
    assert "8 job(s) as 2 array task(s) (batched groups)" in p.stdout + p.stderr
    q = _run(["hydra/launcher=batched", *grid], local_dir, {})
    assert q.returncode == 0, q.stderr[-3000:]
    on_slurm, local = Zoo(slurm_dir / "zoo"), Zoo(local_dir / "zoo")
    ids = sorted(e.run_id for e in local.entries())
    assert sorted(e.run_id for e in on_slurm.entries()) == ids and len(ids) == 8
    for rid in ids:
        a, b = on_slurm[rid], local[rid]
        assert a.record["engine"] == b.record["engine"] == "batched"
        assert a.record["best_epoch"] == b.record["best_epoch"]
        assert a.record["metrics"]["val/acc"] == pytest.approx(b.record["metrics"]["val/acc"], abs=1e-6)
        wa, wb = a.state_dict(), b.state_dict()
        assert wa.keys() == wb.keys()
        assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def _wait_for(cond, timeout: float, what: str, env: dict | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if env is not None:
            _release_requeued(env)
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _start(args: list[str], tmp_path: Path, slurm_env: dict) -> subprocess.Popen:
    """``train.py -m args`` in the background (stdout and stderr together)."""
    env = {**os.environ, "WANDB_SILENT": "true", **slurm_env}
    cmd = _train_cmd(args, tmp_path)
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _completed(zoo_dir: Path) -> list[str]:
    return [e.run_id for e in Zoo(zoo_dir).entries() if e.status == "completed"] if zoo_dir.is_dir() else []


# runs of a few seconds each, one batch per run, all in one array task
LONG_RUNS = [
    "hydra/launcher=slurm_batched",
    "hydra.launcher.max_models=1",
    "hydra.launcher.groups_per_job=100",
    *SMALL,
    "dataset=synthetic",
    "dataset.loader.num_nodes=20000",
    "monitor.patience=null",
    "logger=none",
]


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_requeued_mid_run_completes_without_duplicates(tmp_path, slurm_env):
    env = {**os.environ, **slurm_env}
    proc = _start([*LONG_RUNS, "trainer.max_epochs=400", "seed=0,1,2,3"], tmp_path, slurm_env)
    try:
        _wait_for(lambda: len(_completed(tmp_path / "zoo")) >= 1, 240, "the first run")
        first = _completed(tmp_path / "zoo")
        first_finished = {rid: Zoo(tmp_path / "zoo")[rid].record["finished_at"] for rid in first}
        (job,) = [jid for jid, state, _ in _squeue(slurm_env) if state == "RUNNING"]
        subprocess.run(["scontrol", "requeue", job], env=env, check=True)
        _wait_for(lambda: proc.poll() is not None, 300, "the sweep", env=slurm_env)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert "sweep summary: 4 done, 0 skipped, 0 failed" in out  # runs finished before the requeue count as done
    zoo = Zoo(tmp_path / "zoo")
    assert len(list(zoo.entries())) == 4 and len(_completed(tmp_path / "zoo")) == 4
    for rid, finished in first_finished.items():  # a run finished before the requeue was not trained again
        assert zoo[rid].record["finished_at"] == finished
    _no_partial_files(tmp_path / "zoo")
    (log,) = (tmp_path / "sweep" / ".submitit").rglob("*_log.err")
    assert "DUE TO JOB REQUEUE" in log.read_text()


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_past_its_time_limit_is_requeued_and_completes(tmp_path, slurm_env):
    """A 3-minute limit with the signal 120 s before it: the task gets USR2 60-90 s after it starts (slurmctld checks
    limits every 30 s), requeues itself, and each restart skips the runs that finished. The work (24 runs of ~6 s on
    this 2-core machine, ~140 s) outlasts the latest signal, and each attempt finishes several runs before it. (With
    2 minutes and 90 s, a task on a loaded machine could get the signal 30 s in, before Python had installed
    submitit's handler, and die of it instead of requeueing.)"""
    seeds = ",".join(str(s) for s in range(24))
    args = [
        *LONG_RUNS,
        "trainer.max_epochs=500",
        f"seed={seeds}",
        "hydra.launcher.timeout_min=3",
        "hydra.launcher.signal_delay_s=120",
        "hydra.launcher.max_num_timeout=10",
    ]
    proc = _start(args, tmp_path, slurm_env)
    try:
        _wait_for(lambda: proc.poll() is not None, 600, "the sweep", env=slurm_env)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert "sweep summary: 24 done, 0 skipped, 0 failed" in out
    assert len(list(Zoo(tmp_path / "zoo").entries())) == 24 and len(_completed(tmp_path / "zoo")) == 24
    _no_partial_files(tmp_path / "zoo")
    (log,) = (tmp_path / "sweep" / ".submitit").rglob("*_log.err")
    text = log.read_text()
    assert "this job is timed-out" in text, "the work ended before SLURM's time-limit signal: give the test more work"
    assert "DUE TO JOB REQUEUE" in text


@pytest.mark.slurm
@pytest.mark.slow
def test_a_cancelled_job_fails_its_unfinished_runs_with_its_log(tmp_path, slurm_env):
    env = {**os.environ, **slurm_env}
    proc = _start([*LONG_RUNS, "trainer.max_epochs=5000", "seed=0,1"], tmp_path, slurm_env)
    try:
        _wait_for(lambda: any(s == "RUNNING" for _, s, _ in _squeue(slurm_env)), 120, "the job to start")
        for jid, _, _ in _squeue(slurm_env):
            subprocess.run(["scancel", jid], env=env, check=True)
        _wait_for(lambda: proc.poll() is not None, 180, "the launcher to give up")
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert proc.returncode == 1, out[-3000:]
    assert "sweep summary: 0 done, 0 skipped, 2 failed" in out
    status = json.loads(next((tmp_path / "sweep").glob("*/gnnzoo_job.json")).read_text())
    assert "ended without a result (CANCELLED" in status["error"] and "_log.err" in status["error"]
    assert _completed(tmp_path / "zoo") == []


@pytest.mark.slurm
@pytest.mark.slow
def test_an_fms_search_with_two_trials_at_a_time_runs_through_slurm(tmp_path, slurm_env):
    from test_search import FMS_ARGS, _search_state

    args = [a for a in FMS_ARGS if a != "-m" and a != "optimizer.lr=choice(0.05, 0.2, 1e30)"] + [
        "optimizer.lr=choice(0.05, 0.1, 0.2)",
        "hydra.sweeper.budget=16",
        "hydra.sweeper.batch_size=2",
        "hydra/launcher=slurm",
        *SMALL,
    ]
    p = _run(args, tmp_path, slurm_env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "FMS search done" in p.stdout + p.stderr
    st = _search_state(tmp_path)
    assert st["spent"] <= 16
    assert any(len(h["launched"]) == 2 for h in st["history"])  # two trials per launch
    runs = [e for e in Zoo(tmp_path / "zoo").entries() if e.status == "completed"]
    assert sum(e.record["epochs_trained"] for e in runs) == st["spent"]
    # every trial trained on the cluster: each launch left submitit folders
    assert len(list((tmp_path / "sweep" / ".submitit").iterdir())) >= len(st["history"])


@pytest.mark.slurm
def test_settings_sbatch_refuses_stop_the_sweep_before_anything_runs(tmp_path, slurm_env):
    p = _run(["hydra/launcher=slurm", *SMALL, *FAST, "seed=0,1", "hydra.launcher.partition=nope"], tmp_path, slurm_env)
    assert p.returncode == 1
    assert "sbatch refused the sweep's jobs" in p.stderr and "partition" in p.stderr, p.stderr[-2000:]
    assert _completed(tmp_path / "zoo") == []
