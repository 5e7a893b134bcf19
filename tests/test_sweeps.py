"""`python train.py -m ...` end to end in a subprocess, as users run it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, make_cfg, shared_data_dir
from gnnzoo.zoo import Zoo


def run_train(args, tmp_path, timeout=900, data_dir=None, env=None):
    env = dict(os.environ, WANDB_SILENT="true", HYDRA_FULL_ERROR="1", **(env or {}))
    if data_dir is not None:
        env["GNNZOO_DATA_DIR"] = str(data_dir)
    flags = [a for a in args if a.startswith("-")]
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        *flags,
        f"paths.zoo_dir={tmp_path}/zoo",
        f"paths.log_dir={tmp_path}/logs",
        f"paths.cache_dir={tmp_path}/cache",
        "extras.print_config=false",
        *[a for a in args if not a.startswith("-")],
    ]  # the test's own overrides last: they win
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_sweep_with_diverging_job_goes_on(tmp_path):
    """Every job runs, the summary is printed, then the sweep exits 1 because a job failed."""
    args = [
        "-m",
        "dataset=synthetic",
        "logger=none",
        "optimizer=sgd",
        "optimizer.momentum=0",
        "optimizer.lr=0.05,1e30,0.1",
        "trainer.max_epochs=5",
        "trainer.enable_progress_bar=false",
    ]
    p = run_train(args, tmp_path)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "sweep summary: 2 done, 0 skipped, 1 failed" in p.stdout
    assert "recorded in the zoo as failed" in p.stdout
    df = Zoo(tmp_path / "zoo").df()
    assert sorted(df.status) == ["completed", "completed", "failed"]
    failed = df[df.status == "failed"].iloc[0]
    assert failed["cfg.optimizer.lr"] == 1e30 and "DivergenceError" in failed["error"]
    # relaunching the same sweep skips the completed runs and retries only the failed one; the flag
    # turns the failing exit status off
    p2 = run_train(args + ["hydra.callbacks.sweep_summary.exit_on_failure=false"], tmp_path)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert p2.stdout.count("already completed") == 2
    assert "sweep summary: 0 done, 2 skipped, 1 failed" in p2.stdout
    assert len(Zoo(tmp_path / "zoo").df()) == 3


def test_sweep_where_every_job_fails_exits_nonzero(tmp_path):
    p = run_train(
        [
            "-m",
            "dataset=synthetic",
            "logger=none",
            "optimizer=sgd",
            "optimizer.momentum=0",
            "optimizer.lr=1e30,1e31",
            "trainer.max_epochs=3",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
    )
    assert p.returncode == 1, p.stderr[-3000:]
    assert "sweep summary: 0 done, 0 skipped, 2 failed" in p.stdout


def test_wandb_offline_run_is_finished(tmp_path):
    """Default logger: W&B offline; the run is closed so the next one starts fresh."""
    import wandb

    from gnnzoo.tasks.backbone import train

    cfg = make_cfg(["dataset=synthetic", "trainer.max_epochs=3", "logger=wandb"], tmp_path)
    res = train(cfg)
    assert wandb.run is None
    runs = list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and res["run_id"]


def test_csv_logger_gets_metrics(tmp_path):
    from gnnzoo.tasks.backbone import train

    cfg = make_cfg(["dataset=synthetic", "trainer.max_epochs=4", "logger=csv"], tmp_path)
    train(cfg)
    [metrics] = list((tmp_path / "out" / "csv").rglob("metrics.csv"))
    text = metrics.read_text()
    assert "val/acc" in text and "train/loss" in text and "best/test_acc" in text


@pytest.mark.slow
def test_issue_sweep_cora_citeseer_gcn_gat(tmp_path):
    """The README's sweep: 3 seeds x 2 datasets x 2 backbones, W&B offline, all into the zoo."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("GNNZOO_DATA_DIR not set")
    p = run_train(
        ["-m", "seed=0,1,2", "dataset=cora,citeseer", "backbone=gcn,gat", "trainer.enable_progress_bar=false"],
        tmp_path,
        timeout=1800,
        data_dir=data,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    df = Zoo(tmp_path / "zoo").df(status="completed")
    assert len(df) == 12
    assert set(df.dataset) == {"cora", "citeseer"} and set(df.backbone) == {"gcn", "gat"}
    assert df.groupby("dataset")["test/acc"].mean()["cora"] > 0.78


def test_sweep_composer_equals_hydra(tmp_path):
    """The fast composition (one template per group selection + value overrides) equals Hydra's."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from conftest import CONF
    from gnnzoo.utils.compose import SweepComposer

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        master = loader.load_configuration("train", overrides=["logger=none"], run_mode=RunMode.MULTIRUN)
        jobs = [
            ["optimizer=sgd", f"optimizer.lr={lr}", f"backbone.hidden_channels={h}", "seed=3", "logger=none"]
            for lr in (0.1, 0.5)
            for h in (16, 32)
        ]
        jobs += [
            ["optimizer=adam", "optimizer.lr=0.01", "backbone.dropout=0.9", "logger=none"],
            ["backbone=sage", "+backbone.extra=1", "optimizer.weight_decay=0.1"],
            ["dataset=citeseer", "paths.zoo_dir=/x/y", "monitor.metric=val/loss", "monitor.mode=min"],
        ]
        composer = SweepComposer(loader, master)
        for ov in jobs:
            fast, ref = composer.compose(ov), loader.load_sweep_config(master, ov)
            assert OmegaConf.to_container(fast, resolve=False) == OmegaConf.to_container(ref, resolve=False), ov
            assert list(fast.hydra.overrides.task) == ov
        # templates: sgd, adam, sage (its "+" override is part of the template), citeseer
        assert not composer.full_only and len(composer.templates) == 4
        with pytest.raises(ConfigCompositionException, match="no_such_key"):
            composer.compose(["optimizer=sgd", "optimizer.no_such_key=1"])


def test_default_sweeper_is_gnnzoo_and_presets_still_switch():
    from hydra import compose, initialize_config_dir

    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        assert compose("train", return_hydra_config=True).hydra.sweeper._target_.endswith("GnnzooSweeper")
        opt = compose("train", overrides=["hparams_search=optuna"], return_hydra_config=True)
        assert "OptunaSweeper" in opt.hydra.sweeper._target_
        basic = compose("train", overrides=["hydra/sweeper=basic"], return_hydra_config=True)
        assert basic.hydra.sweeper._target_.endswith("BasicSweeper")
