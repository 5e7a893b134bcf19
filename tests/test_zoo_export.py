"""GNN Zoo v1: trajectories, duplicates, declared splits, the export and its round trip, the plain loader."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import ROOT, make_cfg
from gnnzoo.tasks.run import run_task
from gnnzoo.zoo import Zoo, ZooError
from gnnzoo.zoo.__main__ import main as zoo_cli
from gnnzoo.zoo.checkpoints import list_checkpoints
from gnnzoo.zoo.export import export_zoo
from gnnzoo.zoo.exported import ZooExport, import_export
from gnnzoo.zoo.ids import tensors_digest
from gnnzoo.zoo.splits import declared_splits

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=200", "logger=none", "monitor.patience=null"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Four configurations; the first trained to 8 and to 12 epochs (two runs, one trajectory)."""
    tmp = tmp_path_factory.mktemp("zoo")
    for i, epochs in [(0, 8), (0, 12), (1, 12), (2, 12), (3, 8)]:
        cfg = make_cfg(
            SYN
            + [
                f"seed={i}",
                f"optimizer.lr={[0.01, 0.05, 0.02, 0.005][i]}",
                "backbone=gcn",
                f"trainer.max_epochs={epochs}",
                "zoo.snapshot_every=4",
            ],
            tmp,
        )
        run_task(cfg)
    return Zoo(tmp / "zoo")


def test_two_lengths_of_one_configuration_are_one_trajectory_and_their_copies_are_dropped(zoo):
    recs = {e.run_id: e.record for e in zoo.entries()}
    short, long_ = (r for r in recs.values() if r["seed"] == 0)
    assert short["run_id"] != long_["run_id"] and short["trajectory"] == long_["trajectory"]
    assert short["snapshots"][0]["sha256"] == long_["snapshots"][0]["sha256"]  # bit-identical epoch-4 weights
    listed = list_checkpoints(zoo)
    digests = [c.digest for c in listed.items]
    assert len(digests) == len(set(digests))  # each weight once
    # the short run's snapshots (epochs 4, 8) equal the long run's; its best-val weights are one of them
    assert listed.duplicates >= 2
    everything = list_checkpoints(zoo, dedupe=False)
    assert len(everything.items) == len(listed.items) + listed.duplicates + sum(
        1 for c in listed.items if c.best and c.snapshot
    )
    assert len({c.trajectory for c in listed.items}) == 4
    # old zoos: the trajectory computed from the config equals the stored one
    from gnnzoo.zoo.checkpoints import base_trajectory

    assert base_trajectory({**short, "trajectory": None}) == short["trajectory"]


def test_declared_splits_keep_each_trajectory_on_one_side():
    traj = [f"t{i}" for i in range(20)]
    ds = {t: ["cora", "citeseer"][i % 2] for i, t in enumerate(traj)}
    bb = {t: ["gcn", "gat", "sage", "gin"][i % 4] for i, t in enumerate(traj)}
    sp = declared_splits(ds, bb, seed=3)
    assert sp["unit"] == "trajectory"
    assert {"random", "dataset:cora", "dataset:citeseer", "backbone:gcn", "backbone:gin"} <= set(sp["splits"])
    for name, s in sp["splits"].items():
        sides = [set(s["train"]), set(s["val"]), set(s["test"])]
        assert sum(map(len, sides)) == len(set().union(*sides)) == 20, name
        if name.startswith("dataset:"):
            assert {ds[t] for t in s["test"]} == {name.split(":")[1]} and name.split(":")[1] not in {
                ds[t] for t in s["train"] + s["val"]
            }
    assert declared_splits(ds, bb, seed=3) == sp  # seeded
    assert declared_splits(ds, bb, seed=4)["splits"]["random"] != sp["splits"]["random"]


def test_export_then_import_round_trips(zoo, tmp_path):
    m = export_zoo(zoo, tmp_path / "ex", progress=False)
    ex = ZooExport(tmp_path / "ex")
    listed = list_checkpoints(zoo)
    assert m["counts"]["checkpoints"] == len(ex.checkpoints) == len(listed.items)
    assert m["counts"]["runs"] == 5 and m["counts"]["trajectories"] == 4
    assert m["counts"]["duplicates_dropped"] == listed.duplicates
    df = ex.checkpoints
    for col in (
        "id",
        "run_id",
        "trajectory",
        "epoch",
        "best",
        "snapshot",
        "dataset",
        "backbone",
        "lr",
        "dropout",
        "val/acc",
        "test/loss",
        "weight_digest",
        "shard",
        "key",
    ):
        assert col in df.columns, col
    for _, row in df.iterrows():  # every checkpoint's weights are those of the zoo, digest and all
        assert tensors_digest(ex.weights(row["id"])) == row["weight_digest"]
    assert set(ex.runs.run_id) == {e.run_id for e in zoo.entries()}
    assert (tmp_path / "ex" / "DATASHEET.md").read_text().count("| synthetic | gcn |") == 1
    assert (tmp_path / "ex" / "accuracy_histograms.png").stat().st_size > 1000
    back = import_export(tmp_path / "ex", tmp_path / "back")
    for e in zoo.entries():
        b = back[e.run_id]
        assert b.record["weights"]["sha256"] == e.record["weights"]["sha256"]
        assert [s["sha256"] for s in b.record["snapshots"]] == [s["sha256"] for s in e.record["snapshots"]]
        for s in e.record["snapshots"]:
            assert torch.equal(
                b.snapshot(s["epoch"])["layers.0.lin.weight"], e.snapshot(s["epoch"])["layers.0.lin.weight"]
            )
        skip = {"snapshots", "weights"}
        assert {k: v for k, v in b.record.items() if k not in skip} == {
            k: v for k, v in e.record.items() if k not in skip
        }
        assert torch.equal(back.load(e.run_id)(*_probe(e))[0], zoo.load(e.run_id)(*_probe(e))[0])
    again = Zoo.from_export(tmp_path / "ex", tmp_path / "back")  # already there: kept
    assert len(again) == len(zoo)


def _probe(entry):
    torch.manual_seed(0)
    n, f = 10, entry.record["config"]["dataset"]["num_features"]
    return torch.randn(n, f), torch.tensor([[0, 1, 2], [1, 2, 3]])


def test_float16_export_is_smaller_and_imports_as_float32(zoo, tmp_path):
    export_zoo(zoo, tmp_path / "f32", progress=False)
    export_zoo(zoo, tmp_path / "f16", dtype="float16", progress=False)
    size = {k: sum(p.stat().st_size for p in (tmp_path / k / "weights").iterdir()) for k in ("f32", "f16")}
    assert size["f16"] < 0.6 * size["f32"]
    back = import_export(tmp_path / "f16", tmp_path / "back16")
    e = next(back.entries())
    assert e.record["imported"]["exact"] is False and e.state_dict()["layers.0.lin.weight"].dtype == torch.float32


def test_bad_exports_fail_naming_the_file(zoo, tmp_path):
    with pytest.raises(ZooError, match="selects no completed run"):
        export_zoo(zoo, tmp_path / "none", where={"dataset": "cora"}, progress=False)
    export_zoo(zoo, tmp_path / "ex", progress=False)
    with pytest.raises(ZooError, match="not an empty folder"):
        export_zoo(zoo, tmp_path / "ex", progress=False)
    shard = next((tmp_path / "ex" / "weights").iterdir())
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ZooError, match=re.escape(shard.name) + ".*does not match"):
        ZooExport(tmp_path / "ex")
    shard.unlink()
    with pytest.raises(ZooError, match=re.escape(shard.name) + " is missing"):
        ZooExport(tmp_path / "ex")
    man = tmp_path / "ex" / "manifest.json"
    man.write_text(json.dumps({**json.loads(man.read_text()), "format": "gnnzoo.export/99"}))
    with pytest.raises(ZooError, match="format 'gnnzoo.export/99'"):
        ZooExport(tmp_path / "ex")
    assert zoo_cli(["check", str(tmp_path / "ex")]) == 2


def test_the_cli_exports_with_a_query(zoo, tmp_path, capsys):
    assert zoo_cli(["export", str(zoo.root), str(tmp_path / "q"), "--where", "seed=1,2", "--dtype", "float16"]) == 0
    assert "exported 2 runs" in capsys.readouterr().out
    assert set(pd.read_parquet(tmp_path / "q" / "checkpoints.parquet").seed) == {1, 2}
    assert zoo_cli(["check", str(tmp_path / "q")]) == 0


def test_the_readme_loader_runs_without_gnnzoo_or_torch(zoo, tmp_path):
    export_zoo(zoo, tmp_path / "gnnzoo-v1", progress=False)
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- loader-snippet -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 15
    guard = "import sys\nfor m in ('gnnzoo', 'torch', 'torch_geometric'):\n    sys.modules[m] = None\n"
    out = subprocess.run(
        [sys.executable, "-c", guard + block], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("synthetic gcn")


def test_the_zoo_recipe_draws_quasi_random_configs_batches_them_and_resumes(tmp_path):
    from test_sweeps import run_train

    args = [
        "-m",
        "experiment=zoo_v1",
        "~dataset.loader.sparse_features",  # the recipe's setting for its real datasets
        "dataset=synthetic",  # replaces the recipe's grid
        "backbone=gcn,gat",
        "hydra.sweeper.n=4",
        "hydra.sweeper.n_where.backbone.gat=2",
        # merged into the recipe's space: one shape (one batch per backbone), two lengths
        "hydra.sweeper.space={trainer.max_epochs: {choices: [4, 8]}, backbone.hidden_channels: {choices: [8]}, "
        "backbone.num_layers: {choices: [2]}}",
        "dataset.loader.num_nodes=200",
        "zoo.snapshot_every=2",
    ]
    p = run_train(args, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "sweep summary: 6 done, 0 skipped, 0 failed" in p.stdout
    assert "6 jobs in 2 batch(es)" in p.stderr + p.stdout  # each backbone's jobs train as one batch
    zoo = Zoo(tmp_path / "zoo")
    df = zoo.df(status="completed")
    gcn = df[df.backbone == "gcn"].sort_values("seed")
    assert list(gcn.seed) == [0, 1, 2, 3] and gcn["cfg.optimizer.lr"].nunique() == 4
    assert set(df["cfg.trainer.max_epochs"]) == {4, 8}  # lengths differ inside one batch
    gat = df[df.backbone == "gat"].sort_values("seed")
    # draw k is the same configuration in every cell
    assert list(gat["cfg.optimizer.lr"]) == list(gcn["cfg.optimizer.lr"])[:2]
    recipe = json.loads((tmp_path / "zoo" / "RECIPE.json").read_text())
    assert recipe["jobs"] == 6 and recipe["n_where"] == {"backbone=gat": 2}
    again = run_train(args, tmp_path)  # the same command continues: nothing left to train
    assert "sweep summary: 0 done, 6 skipped, 0 failed" in again.stdout
