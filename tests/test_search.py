"""Forecasting Model Search: resumable runs, the search space, the surrogate, the loop and the Hydra sweeper."""
from __future__ import annotations

import pytest
from conftest import make_cfg

from gnnzoo.tasks.backbone import train
from gnnzoo.utils.errors import ConfigError
from gnnzoo.zoo import Zoo

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=300", "backbone.hidden_channels=8", "monitor.patience=null"]


def test_a_continued_run_keeps_its_id_curve_and_optimizer_state(tmp_path):
    straight = train(make_cfg(SYN + ["trainer.max_epochs=12"], tmp_path / "a"))
    first = train(make_cfg(SYN + ["trainer.max_epochs=5", "zoo.resumable=true"], tmp_path / "b"))
    second = train(make_cfg(SYN + ["trainer.max_epochs=12", "zoo.resumable=true"], tmp_path / "b"))
    assert first["run_id"] == second["run_id"] != straight["run_id"]
    assert not second["skipped"] and second["epochs_trained"] == 12
    rec_a = Zoo(tmp_path / "a/zoo")[straight["run_id"]].record
    e = Zoo(tmp_path / "b/zoo")[second["run_id"]]
    rec_b = e.record
    assert rec_b["curves"]["epoch"] == list(range(12)) and rec_b["epochs_trained"] == 12
    # Adam's moments, the RNG (dropout) and the weights continue: 5 + 7 epochs give the curve of 12
    for key in ("train/loss", "val/loss", "val/acc"):
        assert rec_b["curves"][key] == pytest.approx(rec_a["curves"][key], abs=1e-5), key
    assert rec_b["best_val"] == pytest.approx(rec_a["best_val"])
    assert [s["epochs"] for s in rec_b["stages"]] == [5, 12]
    assert {s["epoch"] for s in rec_b["snapshots"]} == {5, 12}
    # asking for what is done skips; the last-epoch snapshot is the weights it would continue from
    again = train(make_cfg(SYN + ["trainer.max_epochs=12", "zoo.resumable=true"], tmp_path / "b"))
    assert again["skipped"] and again["epochs_trained"] == 12
    assert set(e.snapshot(12)) == set(e.state_dict())


def test_resumable_refuses_batched_seeds(tmp_path):
    from gnnzoo.tasks.backbone import run

    with pytest.raises(ConfigError, match="parallel_models"):
        run(make_cfg(SYN + ["zoo.resumable=true", "zoo.parallel_models=2"], tmp_path))
