"""The task wrapper tells the truth: run ids, exit statuses, interruptions, unwritable zoos, launchers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CONF, ROOT, make_cfg
from gnnzoo.tasks.backbone import train
from gnnzoo.tasks.run import run_task
from gnnzoo.utils.errors import ConfigError
from gnnzoo.zoo import Zoo, run_id
from test_sweeps import run_train

FIXTURES = Path(__file__).parent / "fixtures"
SYN = ["dataset=synthetic", "dataset.loader.num_nodes=300", "trainer.max_epochs=3"]


# ------------------------------------------------------------------------------------------ run ids

# Computed by gnnzoo 0.1 (before the task= group existed) for these configs: a zoo written then is
# still resumed now.
GOLDEN = [
    (["dataset=synthetic"], "e0f5f6ec18c8a552"),
    (["dataset=cora", "backbone=gat", "seed=3"], "0021f9141ad5cb54"),
    (["backbone=sage", "optimizer=sgd", "optimizer.lr=0.1", "experiment=gat_cora"], "f417d7856435e1e2"),
]


@pytest.mark.parametrize("overrides,rid", GOLDEN, ids=[g[1] for g in GOLDEN])
def test_run_ids_are_those_of_earlier_zoos(overrides, rid, tmp_path):
    assert run_id(make_cfg(overrides, tmp_path)) == rid


def test_a_zoo_written_before_the_task_group_is_still_resumed(tmp_path):
    shutil.copytree(FIXTURES / "legacy_zoo", tmp_path / "zoo")  # written by gnnzoo 0.1
    res = train(make_cfg(["dataset=synthetic", "dataset.loader.num_nodes=200", "trainer.max_epochs=3"], tmp_path))
    assert res["skipped"] and res["run_id"] == "3a5686bbb510c694"


def test_neutral_groups_and_display_keys_leave_ids_unchanged(tmp_path):
    base = run_id(make_cfg(SYN, tmp_path))
    same = [
        ["pruning=none", "+newgroup.option=none"],  # method groups at their neutral default
        ["+extras.new_display_key=1", "logger=csv", "trainer.enable_progress_bar=true", "threads=1"],
        ["task=soup", "soup=learned", "soup.params.lr=0.5"],  # other tasks' groups
        ["pruning=one_shot", "pruning.weight_sparsity=0.5"],
        ["+encoder.name=ng_gnn", "zoo.snapshot_every=5", "fail_fast=true", "paths.zoo_dir=/elsewhere"],
    ]
    for extra in same:
        assert run_id(make_cfg(SYN + extra, tmp_path)) == base, extra
    for extra in (["optimizer.lr=0.5"], ["seed=1"], ["dataset.loader.seed=1"], ["trainer.max_epochs=4"]):
        assert run_id(make_cfg(SYN + extra, tmp_path)) != base, extra
    assert run_id(make_cfg(SYN, tmp_path), engine="batched") != base


def test_every_task_option_composes_and_names_a_task(tmp_path):
    from hydra.utils import get_method

    for name in sorted(p.stem for p in (CONF / "task").glob("*.yaml")):
        cfg = make_cfg([f"task={name}"], tmp_path)
        assert callable(get_method(cfg.task._target_)), name


# ------------------------------------------------------------------------------------------ checks


@pytest.mark.parametrize(
    "override,needle",
    [
        ("threads=-1", "threads=-1"),
        ("monitor.patience=-5", "monitor.patience=-5"),
        ("zoo.parallel_models=0", "zoo.parallel_models=0"),
    ],
)
def test_bad_shared_values_fail_before_any_work(override, needle, tmp_path):
    with pytest.raises(ConfigError, match=needle):
        run_task(make_cfg(SYN + [override], tmp_path))
    assert not (tmp_path / "zoo").exists()


def test_unwritable_zoo_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = make_cfg(SYN + [f"paths.zoo_dir={blocker}/zoo"], tmp_path)
    with pytest.raises(PermissionError, match="is not writable.*nothing was trained"):
        train(cfg)


def test_unwritable_zoo_in_a_sweep_is_not_reported_as_recorded(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    p = run_train(
        ["-m", "seed=0,1", *SYN, "logger=none", "trainer.enable_progress_bar=false", f"paths.zoo_dir={blocker}/zoo"],
        tmp_path,
    )
    assert p.returncode == 1, p.stderr[-3000:]
    assert "sweep summary: 0 done, 0 skipped, 2 failed" in p.stdout
    assert "is not writable" in p.stdout and "nothing was written to the zoo" in p.stdout
    assert "recorded in the zoo" not in p.stdout


def test_batched_launcher_runs_the_task_it_was_given(tmp_path):
    p = run_train(
        [
            "-m",
            "hydra/launcher=batched",
            "soup=uniform",
            "soup.ingredients=2",
            "seed=0,1",
            *SYN,
            "logger=none",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "sweep summary: 2 done, 0 skipped, 0 failed" in p.stdout
    zoo = Zoo(tmp_path / "zoo")
    soups = zoo.df(kind="soup")
    assert sorted(soups.seed) == [0, 1]  # one soup per job, each of 2 ingredients (init_seed follows seed)
    assert len(zoo.df(kind="run")) == 4 and all(
        len(zoo.df(kind="soup", parent=r)) == 1 for r in zoo.df(kind="run").run_id
    )


# ------------------------------------------------------------------------------------------ signals


def _start(args, tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        *args,
        f"paths.zoo_dir={tmp_path}/zoo",
        f"paths.log_dir={tmp_path}/logs",
        f"paths.cache_dir={tmp_path}/cache",
        "extras.print_config=false",
        "logger=none",
        "trainer.enable_progress_bar=false",
    ]
    return subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=dict(os.environ, HYDRA_FULL_ERROR="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_snapshot(zoo_dir: Path, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if list(zoo_dir.glob("*/snapshots/*.safetensors")):
            return
        time.sleep(0.05)
    raise AssertionError(f"training did not start: {proc.poll()} {proc.stderr.read()[-2000:] if proc.poll() else ''}")


LONG = [
    "dataset=synthetic",
    "dataset.loader.num_nodes=3000",
    "trainer.max_epochs=100000",
    "monitor.patience=null",
    "zoo.snapshot_every=1",
]


@pytest.mark.parametrize(
    "sig,code,args",
    [(signal.SIGTERM, 143, ["-m", "seed=0,1"]), (signal.SIGINT, 130, [])],
    ids=["sigterm-sweep", "sigint-run"],
)
def test_interrupted_run_is_unrecorded_and_exits_128_plus_signal(sig, code, args, tmp_path):
    proc = _start(args + LONG, tmp_path)
    _wait_for_snapshot(tmp_path / "zoo", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    zoo = Zoo(tmp_path / "zoo")
    assert len(zoo) == 0  # not `failed`: a relaunch (or a requeued job) runs it again
    assert "interrupted" in out + err


def test_legacy_batched_entries_are_reused_by_neither_engine(tmp_path):
    """gnnzoo 0.1's batched runs shared the single-run id, but their dropout depended on the whole batch."""
    import json

    shutil.copytree(FIXTURES / "legacy_zoo", tmp_path / "zoo")
    rec_file = tmp_path / "zoo" / "3a5686bbb510c694" / "record.json"
    rec = json.loads(rec_file.read_text())
    rec["batch"] = {"size": 2, "index": 0, "wall_time_s": 1.0}
    rec_file.write_text(json.dumps(rec))
    zoo = Zoo(tmp_path / "zoo")
    assert zoo.completed("3a5686bbb510c694") is None and zoo.completed("3a5686bbb510c694", "batched") is None
    assert zoo.df().engine.tolist() == ["batched-legacy"]
    res = train(make_cfg(["dataset=synthetic", "dataset.loader.num_nodes=200", "trainer.max_epochs=3"], tmp_path))
    assert not res["skipped"] and zoo[res["run_id"]].record["engine"] == "single"


def test_batched_launcher_does_not_batch_a_job_with_a_method_group(tmp_path):
    """`task=backbone soup=uniform` under the batched launcher goes through the backbone task, which refuses it."""
    from gnnzoo.batched.trainer import is_batchable_task

    assert is_batchable_task(make_cfg(SYN, tmp_path))
    assert not is_batchable_task(make_cfg(SYN + ["task=backbone", "soup=uniform"], tmp_path))
    assert not is_batchable_task(make_cfg(SYN + ["pruning=one_shot"], tmp_path))
    assert not is_batchable_task(make_cfg(SYN + ["zoo.parallel_models=2"], tmp_path))
