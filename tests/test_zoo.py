"""The zoo: round trip, resume, failures, corrupt and unsafe files."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from conftest import make_cfg
from gnnzoo.data import load_graph
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.errors import DivergenceError
from gnnzoo.zoo import SCHEMA, Zoo, ZooError, load_weights, save_weights

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=400", "trainer.max_epochs=8"]
DIVERGE = ["optimizer=sgd", "optimizer.lr=1e30", "optimizer.momentum=0"]


def test_round_trip(tmp_path):
    cfg = make_cfg(SYN + ["zoo.snapshot_every=4"], tmp_path)
    res = train(cfg)
    zoo = Zoo(tmp_path / "zoo")
    df = zoo.df(dataset="synthetic", status="completed")
    assert list(df.run_id) == [res["run_id"]]
    row = df.iloc[0]
    assert row["test/acc"] == res["test/acc"] and row["cfg.backbone.hidden_channels"] == 16
    rec = zoo[res["run_id"]].record
    assert rec["schema"] == SCHEMA and rec["kind"] == "run" and rec["status"] == "completed"
    assert rec["seed"] == 0 and rec["init_id"] and rec["wall_time_s"] > 0
    assert len(rec["curves"]["val/acc"]) == 8 and rec["best_val"] == max(rec["curves"]["val/acc"])
    assert rec["versions"]["torch"] == torch.__version__
    assert [s["epoch"] for s in rec["snapshots"]] == [4, 8]
    assert (zoo.entry_dir(res["run_id"]) / "snapshots" / "epoch_0004.safetensors").is_file()
    # the loaded model reproduces the recorded test accuracy
    model = zoo.load(res["run_id"])
    graph = load_graph(cfg)
    d = graph.data
    with torch.no_grad():
        pred = model(d.x, d.edge_index).argmax(-1)
    assert float((pred[d.test_mask] == d.y[d.test_mask]).float().mean()) == pytest.approx(res["test/acc"])
    # init id is the hash of the weights before training: same init_seed -> same id
    res2 = train(make_cfg(SYN + ["seed=1", "init_seed=0"], tmp_path))
    assert zoo[res2["run_id"]].record["init_id"] == rec["init_id"]
    assert res2["run_id"] != res["run_id"]


def test_resume_skips_completed(tmp_path):
    cfg = make_cfg(SYN, tmp_path)
    first = train(cfg)
    rec_file = Zoo(tmp_path / "zoo").entry_dir(first["run_id"]) / "record.json"
    mtime = rec_file.stat().st_mtime_ns
    again = train(make_cfg(SYN + ["trainer.enable_progress_bar=true"], tmp_path))  # display keys: same id
    assert again["skipped"] and again["run_id"] == first["run_id"]
    assert again["test/acc"] == first["test/acc"]
    assert rec_file.stat().st_mtime_ns == mtime
    other = train(make_cfg(SYN + ["optimizer.lr=0.02"], tmp_path))
    assert not other["skipped"] and other["run_id"] != first["run_id"]


def test_failed_run_recorded_then_retried(tmp_path):
    cfg = make_cfg(SYN + DIVERGE, tmp_path)
    with pytest.raises(DivergenceError):
        train(cfg)
    zoo = Zoo(tmp_path / "zoo")
    [entry] = list(zoo.entries())
    assert entry.status == "failed" and "DivergenceError" in entry.record["error"]
    assert not (entry.path / "weights.safetensors").exists()
    with pytest.raises(ZooError, match="failed"):
        entry.state_dict()
    with pytest.raises(DivergenceError):  # a failed id is not skipped: it is retried
        train(cfg)


def test_run_returns_nan_when_not_fail_fast(tmp_path):
    from gnnzoo.tasks.run import run_task as run

    value = run(make_cfg(SYN + DIVERGE + ["fail_fast=false"], tmp_path))
    assert value != value  # NaN
    assert [e.status for e in Zoo(tmp_path / "zoo").entries()] == ["failed"]


def test_corrupt_and_foreign_records_skipped(tmp_path):
    res = train(make_cfg(SYN, tmp_path))
    zoo = Zoo(tmp_path / "zoo")
    (zoo.root / "broken").mkdir()
    (zoo.root / "broken" / "record.json").write_text("{not json")
    (zoo.root / "foreign").mkdir()
    (zoo.root / "foreign" / "record.json").write_text(json.dumps({"hello": "world"}))
    (zoo.root / "incomplete").mkdir()  # killed before its record was written
    with pytest.warns(UserWarning, match="corrupt|foreign"):
        ids = [e.run_id for e in zoo.entries()]
    assert ids == [res["run_id"]]
    # corrupt weights: reported when loaded, never silently used
    wfile = zoo.entry_dir(res["run_id"]) / "weights.safetensors"
    wfile.write_bytes(b"\x00" * 64)
    with pytest.raises(ZooError, match="corrupt"):
        zoo.load(res["run_id"])


def test_tampered_weights_detected(tmp_path):
    res = train(make_cfg(SYN, tmp_path))
    entry = Zoo(tmp_path / "zoo")[res["run_id"]]
    state = entry.state_dict()
    key = next(iter(state))
    state[key] = state[key] + 1
    save_weights(entry.weights_path(), state)
    with pytest.raises(ZooError, match="digest"):
        entry.state_dict()


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump({"weight": payload}, f)
    with pytest.raises(ZooError, match="refused"):
        load_weights(bad)
    assert not marker.exists()
    # a plain tensor file loads fine through the same path
    good = tmp_path / "ok.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(load_weights(good)["w"], torch.ones(2))
    with pytest.raises(ZooError, match="unsupported"):
        load_weights(tmp_path / "x.npy") if (tmp_path / "x.npy").write_bytes(b"1") else None


def test_atomic_write_leaves_no_temp_files(tmp_path):
    train(make_cfg(SYN + ["zoo.snapshot_every=2"], tmp_path))
    leftovers = [p for p in (tmp_path / "zoo").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
