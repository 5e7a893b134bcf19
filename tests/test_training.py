"""Training: every backbone wires up, real-data accuracy, determinism, equivalences of the fast paths."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import make_cfg
from gnnzoo.backbones import BACKBONES
from gnnzoo.data import load_graph
from gnnzoo.data.synthetic import make_sbm_graph
from gnnzoo.tasks.backbone import train
from gnnzoo.zoo import Zoo

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=400"]


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_fast_dev_run(backbone, tmp_path):
    cfg = make_cfg(SYN + [f"backbone={backbone}", "debug=fdr"], tmp_path)
    res = train(cfg)
    assert 0.0 <= res["test/acc"] <= 1.0
    assert not (tmp_path / "zoo").exists()  # debug=fdr writes nothing


def test_gcn_cora_accuracy(real_data, tmp_path):
    """The default config (GCN on Cora) reaches >= 79% test accuracy."""
    cfg = make_cfg([], tmp_path, data_dir=real_data)
    assert cfg.dataset.name == "cora" and cfg.backbone.name == "gcn"
    res = train(cfg)
    assert res["test/acc"] >= 0.79, res
    assert res["val/acc"] > 0.7


def test_determinism(tmp_path):
    """Same config + seed -> identical metrics, curves and weights; another seed differs."""
    ov = SYN + ["backbone=sage", "trainer.max_epochs=15", "zoo.skip_completed=false"]
    runs = []
    for i, seed in enumerate((3, 3, 4)):
        cfg = make_cfg(ov + [f"seed={seed}", f"paths.zoo_dir={tmp_path}/zoo{i}"], tmp_path)
        res = train(cfg)
        entry = Zoo(tmp_path / f"zoo{i}")[res["run_id"]]
        runs.append((res, entry.record["curves"], entry.state_dict()))
    (r1, c1, w1), (r2, c2, w2), (r3, c3, w3) = runs
    assert r1["run_id"] == r2["run_id"] != r3["run_id"]
    assert r1["test/acc"] == r2["test/acc"] and c1 == c2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)


def test_fused_eval_matches_lightning_val_loop(tmp_path):
    """Evaluating after the optimizer step (fused) gives the same curves as Lightning's val loop."""
    out = []
    for fused in ("true", "false"):
        cfg = make_cfg(
            SYN + ["trainer.max_epochs=12", f"data.fused_eval={fused}", f"paths.zoo_dir={tmp_path}/{fused}"], tmp_path
        )
        res = train(cfg)
        out.append((res, Zoo(tmp_path / fused)[res["run_id"]].record["curves"]))
    (ra, ca), (rb, cb) = out
    assert ca["epoch"] == cb["epoch"] == list(range(12))
    for key in ("val/acc", "val/loss", "test/acc", "train/loss"):
        assert ca[key] == pytest.approx(cb[key], rel=1e-6), key
    assert ra["test/acc"] == rb["test/acc"]


def test_patience_stops_early(tmp_path):
    cfg = make_cfg(
        SYN
        + [
            "trainer.max_epochs=200",
            "monitor.patience=3",
            "optimizer=sgd",
            "optimizer.lr=1e-12",
            "optimizer.momentum=0",
        ],
        tmp_path,
    )
    res = train(cfg)
    rec = Zoo(tmp_path / "zoo")[res["run_id"]].record
    # lr ~ 0: val acc never improves after epoch 0, so training stops after 1 + patience epochs
    assert rec["curves"]["epoch"] == [0, 1, 2, 3]
    assert rec["best_epoch"] == 0


def test_neighbor_minibatch_training(tmp_path):
    cfg = make_cfg(
        SYN
        + ["data=neighbor", "data.batch_size=32", "data.num_neighbors=[5,5]", "trainer.max_epochs=20", "backbone=sage"],
        tmp_path,
    )
    res = train(cfg)
    assert res["test/acc"] > 0.5  # 4 classes: chance is 0.25


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_sparse_input_equals_dense(name):
    """Sparse CSR features (bag-of-words path) give the same outputs and gradients as dense ones."""
    data = make_sbm_graph(num_nodes=200, num_features=50, seed=1)
    x = data.x.clamp(min=0) * (torch.rand_like(data.x) < 0.1)  # sparse-ish, non-negative
    torch.manual_seed(0)
    model = BACKBONES[name](50, 16, 4, num_layers=2, dropout=0.0)
    model.eval()
    dense = model(x, data.edge_index)
    gd = torch.autograd.grad(dense.square().sum(), list(model.parameters()), allow_unused=True)
    sparse = model(x.to_sparse_csr(), data.edge_index)
    gs = torch.autograd.grad(sparse.square().sum(), list(model.parameters()), allow_unused=True)
    assert torch.allclose(dense, sparse, atol=1e-5)
    for a, b in zip(gd, gs):
        if a is not None:
            assert torch.allclose(a, b, atol=1e-4)


def test_train_returns_monitor_metric(tmp_path):
    from gnnzoo.tasks.run import run_task as run

    cfg = make_cfg(SYN + ["trainer.max_epochs=5"], tmp_path)
    value = run(cfg)
    assert isinstance(value, float) and not math.isnan(value)
    rec = next(Zoo(tmp_path / "zoo").entries()).record
    assert value == rec["best_val"]


def test_sparse_transpose_cache_follows_values():
    """The cached CSR transpose reuses the index structure but always takes the current values."""
    from gnnzoo.backbones.models import _transpose_csr, dropout_input

    torch.manual_seed(0)
    x = ((torch.rand(30, 20) < 0.3) * torch.rand(30, 20)).to_sparse_csr()
    assert torch.equal(_transpose_csr(x).to_dense(), x.to_dense().t())
    for _ in range(3):  # dropout keeps the index tensors, changes the values
        xd = dropout_input(x, 0.5, True)
        assert torch.equal(_transpose_csr(xd).to_dense(), xd.to_dense().t())


def test_accuracy_metric_matches_torchmetrics():
    from torchmetrics.functional.classification import multiclass_accuracy

    from gnnzoo.lit.metrics import make_metric

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 7, (1000,), generator=g)
    logits = torch.randn(1000, 7, generator=g)
    acc = make_metric("acc", 7)
    expected = float(multiclass_accuracy(logits.argmax(-1), y, 7, average="micro"))
    assert acc(logits, y) == pytest.approx(expected) and acc(logits.argmax(-1), y) == pytest.approx(expected)
    assert math.isnan(acc(logits[:0], y[:0]))


def test_graph_cache_gives_each_run_its_own_data_object(tmp_path):
    cfg = make_cfg(["dataset=synthetic", "dataset.loader.num_nodes=300"], tmp_path)
    a, b = load_graph(cfg), load_graph(cfg)
    assert a.data is not b.data and a.data.x is b.data.x  # own Data objects over the cached tensors
    a.data.extra = torch.ones(1)
    a.data.y = a.data.y + 1  # rebinding an attribute on one copy leaves the cache and other copies alone
    c = load_graph(cfg)
    assert "extra" not in c.data and torch.equal(c.data.y, b.data.y)
    other = load_graph(make_cfg(["dataset=synthetic", "dataset.loader.num_nodes=200"], tmp_path))
    assert other.num_nodes == 200  # a different loader config is loaded, not served from the cache


def test_progress_bar_is_gnnzoos_unless_one_is_configured(tmp_path, capfd):
    syn = ["dataset=synthetic", "dataset.loader.num_nodes=300", "trainer.max_epochs=7", "zoo.skip_completed=false"]
    train(make_cfg(syn + ["trainer.enable_progress_bar=true"], tmp_path))
    err = capfd.readouterr().err
    assert "7/7" in err and "epoch=6" in err and "best=" in err  # one bar over the run, postfix from the module
    train(
        make_cfg(
            syn
            + [
                "trainer.enable_progress_bar=true",
                "+callbacks.bar._target_=pytorch_lightning.callbacks.TQDMProgressBar",
            ],
            tmp_path,
        )
    )
    assert "best=" not in capfd.readouterr().err  # a configured bar replaces gnnzoo's, without a clash
    train(make_cfg(syn + ["trainer.enable_progress_bar=false"], tmp_path))
    assert "7/7" not in capfd.readouterr().err
