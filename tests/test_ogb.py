"""The OGB loader on a tiny dataset written in ogb's raw layout (no download): ogb's own PyG dataset
class processes it and ogb's Evaluator scores the run."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from conftest import make_cfg
from gnnzoo.data import load_graph
from gnnzoo.tasks.backbone import train


def _csv_gz(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(",".join(str(v) for v in np.atleast_1d(r)) + "\n")


def fake_arxiv(root: Path, n: int = 240, classes: int = 40, feats: int = 128, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    d = root / "ogbn_arxiv"
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, feats)).astype(np.float32) + np.eye(classes, feats)[y] * 3
    src = rng.integers(0, n, 4 * n)
    dst = np.where(
        rng.random(4 * n) < 0.8,
        np.array([rng.choice(np.flatnonzero(y == y[s])) for s in src]),
        rng.integers(0, n, 4 * n),
    )
    _csv_gz(d / "raw" / "edge.csv.gz", np.stack([src, dst], 1))
    _csv_gz(d / "raw" / "num-node-list.csv.gz", [n])
    _csv_gz(d / "raw" / "num-edge-list.csv.gz", [len(src)])
    _csv_gz(d / "raw" / "node-feat.csv.gz", x)
    _csv_gz(d / "raw" / "node-label.csv.gz", y)
    _csv_gz(d / "raw" / "node_year.csv.gz", rng.integers(2000, 2020, n))
    perm = rng.permutation(n)
    for name, part in (("train", perm[: n // 2]), ("valid", perm[n // 2 : 3 * n // 4]), ("test", perm[3 * n // 4 :])):
        _csv_gz(d / "split" / "time" / f"{name}.csv.gz", np.sort(part))


def test_ogbn_arxiv_layout_loads_and_trains(tmp_path):
    data_dir = tmp_path / "raw"
    fake_arxiv(data_dir)
    before = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*"))
    cfg = make_cfg(
        ["dataset=ogbn_arxiv", "trainer.max_epochs=5", "backbone.hidden_channels=32"], tmp_path, data_dir=data_dir
    )
    graph = load_graph(cfg)
    assert graph.metric == "ogb" and graph.num_nodes == 240 and graph.num_features == 128
    d = graph.data
    assert int(d.train_mask.sum()) == 120 and int(d.val_mask.sum()) == 60 and int(d.test_mask.sum()) == 60
    res = train(cfg)
    assert 0.0 <= res["test/acc"] <= 1.0
    assert sorted(p.relative_to(data_dir) for p in data_dir.rglob("*")) == before  # raw folder untouched
