"""Neural-graph encoder (task=encoder): checkpoints as graphs, invariance, the zoo as a dataset, training."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from conftest import make_cfg
from gnnzoo.backbones import BACKBONES
from gnnzoo.tasks.run import run_task
from gnnzoo.utils.errors import ConfigError
from gnnzoo.weightspace.basis import input_basis, projected_graph
from gnnzoo.weightspace.dataset import ZooGraphs, checkpoints, dataset_configs, input_bases, split_checkpoints
from gnnzoo.weightspace.encoder import TrainedEncoder, build_encoder
from gnnzoo.weightspace.graph import UnsupportedBackbone, from_graph, spec_of, to_graph
from gnnzoo.zoo import Zoo

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=300", "logger=none"]
GRAPH_BACKBONES = ["mlp", "gcn", "sage", "gin", "gat", "appnp"]


def _state(name: str, seed: int = 0, **kw) -> dict:
    torch.manual_seed(seed)
    extra = {"train_eps": True} if name == "gin" else {"heads": 2} if name == "gat" else {}
    m = BACKBONES[name](kw.pop("in_channels", 12), 8, 3, num_layers=kw.pop("num_layers", 3), **extra, **kw)
    # trained-looking parameters: nonzero biases (GCN starts at 0) and epsilon
    return {
        k: torch.randn(v.shape) * 0.3 if (k.endswith("bias") or k.endswith("eps")) else v
        for k, v in m.state_dict().items()
    }


@pytest.mark.parametrize("name", GRAPH_BACKBONES)
def test_round_trip_weights_graph_weights_is_exact(name):
    st = _state(name)
    spec = spec_of(name, st)
    g = to_graph(spec, st)
    # one edge per weight (SAGE: neighbour and root weights share one); GAT adds a structural edge per hidden
    # channel (2 hidden layers of 8) and 2 head nodes per hidden layer
    links = 2 * 8 if name == "gat" else 0
    assert (
        g.edge_index.size(1)
        == sum(v.numel() for k, v in st.items() if k.endswith("weight") and v.dim() == 2 and "lin_r" not in k) + links
    )
    assert int((g.node_kind == 3).sum()) == (4 if name == "gat" else 0)
    back = from_graph(spec, g)
    assert set(back) == set(st) and all(torch.equal(back[k], st[k].float()) for k in st)


def test_unsupported_backbones_are_named():
    with pytest.raises(UnsupportedBackbone, match="out_heads > 1"):
        spec_of("gat", BACKBONES["gat"](12, 8, 3, out_heads=2).state_dict())
    with pytest.raises(UnsupportedBackbone, match="normalization"):
        spec_of("gcn", BACKBONES["gcn"](12, 8, 3, norm="layer").state_dict())


def _permute_hidden(name: str, st: dict, perm: torch.Tensor) -> dict:
    """The same function with layer 0's output neurons permuted (a hidden layer of every backbone here)."""
    out = dict(st)
    w0 = {
        "mlp": "layers.0.weight",
        "appnp": "layers.0.weight",
        "gcn": "layers.0.lin.weight",
        "sage": "layers.0.lin_l.weight",
        "gin": "layers.0.nn.0.weight",
        "gat": "layers.0.lin.weight",
    }[name]
    b0 = "layers.0.bias" if name in ("gcn", "gat") else w0.replace("weight", "bias")
    out[w0], out[b0] = st[w0][perm], st[b0][perm]
    if name == "gat":
        for k in ("layers.0.att_src", "layers.0.att_dst"):
            out[k] = st[k].reshape(-1)[perm].reshape(st[k].shape)
    if name == "sage":
        out["layers.0.lin_r.weight"] = st["layers.0.lin_r.weight"][perm]
        out["layers.1.lin_l.weight"] = st["layers.1.lin_l.weight"][:, perm]
        out["layers.1.lin_r.weight"] = st["layers.1.lin_r.weight"][:, perm]
    elif name == "gin":
        out["layers.0.nn.2.weight"] = st["layers.0.nn.2.weight"][:, perm]
    else:
        w1 = w0.replace("layers.0", "layers.1")
        out[w1] = st[w1][:, perm]
    return out


@pytest.mark.parametrize("name", GRAPH_BACKBONES)
def test_encoders_are_invariant_to_hidden_permutations_and_see_input_order(name):
    st = _state(name)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    if name == "gat":  # 2 heads of 4 channels: swap the heads, and shuffle channels within each
        perm = torch.cat(
            [
                4 + torch.randperm(4, generator=torch.Generator().manual_seed(1)),
                torch.randperm(4, generator=torch.Generator().manual_seed(2)),
            ]
        )
    pst = _permute_hidden(name, st, perm)
    # the permuted checkpoint computes the same function
    kw = {"train_eps": True} if name == "gin" else {"heads": 2, "attn_dropout": 0.0} if name == "gat" else {}
    m1, m2 = (BACKBONES[name](12, 8, 3, num_layers=3, dropout=0.0, **kw) for _ in range(2))
    m1.load_state_dict(st)
    m2.load_state_dict(pst)
    x, ei = torch.randn(9, 12), torch.randint(0, 9, (2, 30))
    assert torch.allclose(m1.eval()(x, ei), m2.eval()(x, ei), atol=1e-5)
    spec = spec_of(name, st)
    basis = input_basis("toy", torch.randn(40, 12), k=6)
    ist = dict(st)
    first = [k for k in st if k.startswith("layers.0.") and st[k].dim() == 2 and st[k].shape[1] == 12]
    ip = torch.randperm(12, generator=torch.Generator().manual_seed(2))
    for k in first:
        ist[k] = st[k][:, ip]
    raw = Batch.from_data_list([to_graph(spec, s) for s in (st, pst, ist)])  # what StatNN reads
    graphs = [projected_graph(name, s, basis) for s in (st, pst, ist)]
    b = Batch.from_data_list(graphs)
    dims = {"inputs": 6, "num_params": {graphs[0].x.numel() + graphs[0].edge_attr.numel()}}
    for target in (
        "gnnzoo.weightspace.models.NGGNN",
        "gnnzoo.weightspace.models.NGTransformer",
        "gnnzoo.weightspace.baselines.StatNN",
        "gnnzoo.weightspace.baselines.FlatMLP",
    ):
        torch.manual_seed(0)
        enc, _ = build_encoder({"_target_": target}, dims)
        enc.eval()
        batch = raw if target.endswith("StatNN") else b
        with torch.no_grad():
            out, emb = enc(batch), enc.embed(batch)
        if target.endswith("FlatMLP"):
            assert not torch.allclose(emb[0], emb[1], atol=1e-5)  # not invariant, by design
            continue
        assert torch.allclose(out[0], out[1], atol=1e-5) and torch.allclose(emb[0], emb[1], atol=1e-5), target
        if target.endswith(("NGGNN", "NGTransformer")):  # the input basis is the data's: the input order matters
            assert (emb[0] - emb[2]).abs().max() > 1e-4
            if name == "gat":  # channels moved across heads: another function, and the encoder sees it
                cross = _permute_hidden(name, st, torch.tensor([4, 1, 2, 3, 0, 5, 6, 7]))
                with torch.no_grad():
                    e2 = enc.embed(Batch.from_data_list([graphs[0], projected_graph(name, cross, basis)]))
                assert (e2[0] - e2[1]).abs().max() > 1e-5


def test_the_input_basis_keeps_what_the_first_layer_does_to_the_data():
    """W' = W V_k diag(s_k)/sqrt(n): for features of rank <= k the projection is lossless (the mean squared
    pre-activation of every first-layer neuron equals the squared norm of its projected weights, the residual is
    0); sparse and dense features give the same basis; the basis is deterministic."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=gen) @ torch.randn(4, 30, generator=gen)  # rank 4, 30 features
    w = torch.randn(8, 30, generator=gen)
    b = input_basis("toy", x, k=6)
    wp, res = b.project(w)
    assert wp.shape == (8, 6) and torch.allclose(wp.pow(2).sum(1), (x @ w.T).pow(2).mean(0), rtol=1e-4)
    assert torch.allclose(wp[:, 4:], torch.zeros(8, 2), atol=1e-3)  # beyond the rank: nothing
    assert float(res.abs().max()) > 0  # W has components outside the data's row space (the data never sees them)
    xs = (torch.rand(60, 30, generator=gen) < 0.1).float()
    dense, sparse = input_basis("d", xs, k=5), input_basis("s", xs.to_sparse_csr(), k=5)
    assert torch.allclose(dense.directions, sparse.directions, atol=1e-5)
    assert torch.equal(input_basis("d", xs, k=5).directions, dense.directions)
    with pytest.raises(ValueError, match="30 features"):
        b.project(torch.randn(8, 31))


def test_one_encoder_reads_checkpoints_of_any_width_and_number_of_classes():
    """Inputs in each dataset's basis, outputs as a set: checkpoints of 12 and 20 features, 3 and 5 classes go
    through one encoder; the output neurons' order does not matter."""
    torch.manual_seed(0)
    small = BACKBONES["gcn"](12, 8, 3, num_layers=2).state_dict()
    big = BACKBONES["gcn"](20, 8, 5, num_layers=2).state_dict()
    b12, b20 = input_basis("a", torch.randn(30, 12), k=6), input_basis("b", torch.randn(30, 20), k=6)
    flipped = dict(big)
    perm = torch.tensor([4, 2, 0, 1, 3])
    flipped["layers.1.lin.weight"], flipped["layers.1.bias"] = (
        big["layers.1.lin.weight"][perm],
        big["layers.1.bias"][perm],
    )
    enc, _ = build_encoder({"_target_": "gnnzoo.weightspace.models.NGGNN", "d": 8}, {"inputs": 6})
    with torch.no_grad():
        emb = enc.eval().embed(
            Batch.from_data_list(
                [
                    projected_graph("gcn", small, b12),
                    projected_graph("gcn", big, b20),
                    projected_graph("gcn", flipped, b20),
                ]
            )
        )
    assert emb.shape[0] == 3 and torch.isfinite(emb).all() and torch.allclose(emb[1], emb[2], atol=1e-5)
    with pytest.raises(ValueError, match="virtual inputs"):
        enc.embed(Batch.from_data_list([projected_graph("gcn", small, input_basis("c", torch.randn(30, 12), k=7))]))


def _zoo(tmp_path, n=9):
    """A small varied zoo: GCN runs with different lr and dropout, snapshots every 4 epochs."""
    for i in range(n):
        lr = [0.001, 0.01, 0.05][i % 3]
        cfg = make_cfg(
            SYN
            + [
                f"seed={i}",
                f"optimizer.lr={lr}",
                f"backbone.dropout={0.1 * (i % 4)}",
                "trainer.max_epochs=12",
                "zoo.snapshot_every=4",
            ],
            tmp_path,
        )
        run_task(cfg)
    return Zoo(tmp_path / "zoo")


def _graphs(zoo, items, tmp_path, k=8, cache="cache"):
    cfg = make_cfg(SYN, tmp_path)
    return ZooGraphs(zoo, items, tmp_path / cache, input_bases(dataset_configs(zoo, items), cfg.paths, k))


def test_the_zoo_as_a_dataset_split_by_trajectory(tmp_path):
    zoo = _zoo(tmp_path, n=6)
    items = checkpoints(zoo)
    # best-val + 3 snapshots per run, a best-val epoch that is also a snapshot epoch listed once
    expected = sum(3 + (zoo[r].record["best_epoch"] + 1 not in (4, 8, 12)) for r in {c.run_id for c in items})
    assert len(items) == expected and len({(c.run_id, c.epoch) for c in items}) == expected
    for c in items:  # the target is the curve's value at the checkpoint's epoch
        rec = zoo[c.run_id].record
        assert c.target == pytest.approx(rec["curves"]["val/acc"][rec["curves"]["epoch"].index(c.epoch - 1)])
    ds = _graphs(zoo, items, tmp_path)
    again = _graphs(zoo, items, tmp_path)  # processed once, cached on disk
    assert len(ds) == len(again) == expected and torch.equal(ds[5].edge_attr, again[5].edge_attr)
    snap = next(i for i, c in enumerate(items) if c.snapshot == 8)
    st = zoo[items[snap].run_id].snapshot(8)
    assert torch.equal(ds[snap].edge_attr, projected_graph("gcn", st, ds.bases["synthetic"]).edge_attr)
    trajs = {c.trajectory for c in items}
    assert len(trajs) == 6  # six configurations, six trajectories
    for seed in range(5):
        s = split_checkpoints(items, seed=seed)
        assert set().union(*s.values()) == trajs and not (
            s["train"] & s["val"] or s["train"] & s["test"] or s["val"] & s["test"]
        )
    with pytest.raises(ConfigError, match="cannot be split"):
        split_checkpoints(items[:1])


@pytest.mark.parametrize(
    "encoder",
    [
        "ng_gnn",
        "stat",
        pytest.param("ng_transformer", marks=pytest.mark.slow),
        pytest.param("flat_mlp", marks=pytest.mark.slow),
    ],
)
def test_task_encoder_trains_records_and_embeds(encoder, tmp_path):
    zoo = _zoo(tmp_path)
    cfg = make_cfg(
        SYN + [f"encoder={encoder}", "encoder.epochs=6", "encoder.batch_size=8", "encoder.model.d=16"], tmp_path
    )
    assert cfg.task._target_ == "gnnzoo.weightspace.task.run"
    value = run_task(cfg)
    [rid] = zoo.df(kind="encoder").run_id.tolist()
    rec = zoo[rid].record
    assert rec["kind"] == "encoder" and value == pytest.approx(rec["metrics"]["encoder/val_tau"])
    assert set(rec["parents"]) == set(zoo.df(kind="run").run_id)
    for k in ("encoder/test_tau", "encoder/test_r2", "encoder/test_mse"):
        assert k in rec["metrics"]
    assert (tmp_path / "out" / f"encoder_{encoder}.png").is_file()
    enc = TrainedEncoder.from_zoo(zoo, rid)
    st = zoo[zoo.df(kind="run").run_id.iloc[0]].state_dict()
    emb = enc.embed(st, "gcn")
    assert emb.shape == (1, enc.model.embed_dim) and torch.isfinite(enc.predict(st, "gcn")).all()
    items = checkpoints(zoo)[:5]  # predictions for a dataset of graphs match the one-by-one path
    ds = _graphs(zoo, items, tmp_path, k=32, cache="cache2")
    by_graph = enc.predict_graphs(ds.view(graphs=encoder != "stat", fields=["stats"]), batch_size=2)
    one = torch.cat(
        [
            enc.predict(zoo[c.run_id].snapshot(c.snapshot) if c.snapshot else zoo[c.run_id].state_dict(), "gcn")
            for c in items
        ]
    )
    assert torch.allclose(by_graph, one, atol=1e-5)
    if encoder == "ng_gnn":  # FMS with learned weight features: the encoder's embedding, in a basis fitted on the zoo
        from gnnzoo.search.features import make_featurizer, reference_basis

        feat = make_featurizer(rid, zoo.root)
        assert feat(st, "gcn") == pytest.approx(emb[0].tolist(), abs=1e-6)
        basis, why = reference_basis(zoo, feat, 2, "gcn")
        assert basis is not None and basis.k == 2 and basis.mean.shape == (enc.model.embed_dim,), why
        assert basis.n_reference == sum(1 + len(zoo[r].record["snapshots"]) for r in zoo.df(kind="run").run_id)
        # a dataset the encoder never saw (24 features): it cannot read it alone; given the dataset's config (the
        # sweeper passes its search's), the basis of that dataset is computed and its checkpoints are read in it
        from omegaconf import OmegaConf

        unseen = _state("gcn", in_channels=24)
        with pytest.raises(ValueError, match="matches 0 of this encoder's input bases"):
            feat(unseen, "gcn")
        ds_b = make_cfg(SYN + ["dataset.name=synthetic_b", "dataset.loader.num_features=24"], tmp_path).dataset
        unseen_cfg = {"synthetic_b": OmegaConf.to_container(ds_b, resolve=True)}
        feat_b = make_featurizer(rid, zoo.root, unseen_cfg, cfg.paths)
        enc.add_basis(input_bases(unseen_cfg, cfg.paths, 32)["synthetic_b"])
        assert feat_b(unseen, "gcn") == pytest.approx(enc.embed(unseen, "gcn")[0].tolist(), abs=1e-6)
        assert feat_b(st, "gcn") == pytest.approx(emb[0].tolist(), abs=1e-6)  # the datasets it saw: unchanged
    again = run_task(cfg)  # relaunched: skipped
    assert again == pytest.approx(value) and len(zoo.df(kind="encoder")) == 1


def test_encoder_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="selects no completed checkpoint"):
        run_task(make_cfg(SYN + ["encoder=ng_gnn"], tmp_path))
    with pytest.raises(ConfigError, match="one method per run"):
        run_task(make_cfg(SYN + ["encoder=ng_gnn", "soup=uniform"], tmp_path))
    with pytest.raises(ConfigError, match="fractions"):
        run_task(make_cfg(SYN + ["encoder=ng_gnn", "encoder.split.fractions=[0.5,0.5,0.5]"], tmp_path))
    with pytest.raises(ConfigError, match="max_minutes"):
        run_task(make_cfg(SYN + ["encoder=ng_gnn", "encoder.max_minutes=-1"], tmp_path))


def test_the_scatter_plot_goes_to_wandb_when_it_is_the_logger(tmp_path):
    import wandb

    _zoo(tmp_path, n=6)
    run_task(make_cfg(SYN + ["encoder=stat", "encoder.epochs=2", "logger=wandb"], tmp_path))
    assert wandb.run is None and (tmp_path / "out" / "encoder_stat.png").is_file()
    runs = sorted((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert any(p.suffix == ".png" for r in runs for p in (r / "files").rglob("*"))


def test_the_compact_dataset_gives_back_every_graph_exactly(tmp_path):
    """ZooGraphs stores each architecture's structure once and each checkpoint's values in a memory-mapped file;
    every item equals to_graph of its checkpoint, attribute by attribute (SAGE's root weights, GAT's heads too)."""
    for i, bb in enumerate(["gcn", "sage", "gat", "gin", "mlp"]):
        extra = ["backbone.heads=2", "backbone.hidden_channels=8"] if bb == "gat" else []
        run_task(
            make_cfg(
                SYN + [f"backbone={bb}", f"seed={i}", "trainer.max_epochs=4", "zoo.snapshot_every=2"] + extra, tmp_path
            )
        )
    zoo = Zoo(tmp_path / "zoo")
    items = checkpoints(zoo)
    ds = _graphs(zoo, items, tmp_path)
    assert len(ds.processed_paths) == 2 and len(torch.load(ds.processed_paths[0])["structures"]) == 5
    for i, c in enumerate(items):
        e = zoo[c.run_id]
        st = e.snapshot(c.snapshot) if c.snapshot is not None else e.state_dict()
        ref, got = projected_graph(c.backbone, st, ds.bases["synthetic"]), ds[i]
        for key in ("x", "edge_index", "edge_attr", "node_kind", "node_rank", "node_layer", "edge_layer"):
            assert torch.equal(getattr(ref, key), getattr(got, key)), (c.backbone, key)
        assert float(got.y) == pytest.approx(c.target) and int(got.epoch) == c.epoch


def test_one_encoder_learns_across_datasets_and_holds_one_out(tmp_path):
    """Two datasets of different widths and class counts (32 features / 4 classes, 20 / 6) in one zoo: ng_gnn
    trains on one and is tested on the other (split.by=dataset), the entry stores both bases, and embed picks the
    basis by input width. Baselines train on the same query; hparams/probe refuse embed(state) clearly."""
    other = ["dataset.name=syn_b", "dataset.loader.num_features=20", "dataset.loader.num_classes=6"]
    for i in range(5):
        for extra in ([], other):
            lr = [0.001, 0.01, 0.05, 0.02, 0.005][i]
            run_task(
                make_cfg(
                    SYN + extra + [f"seed={i}", f"optimizer.lr={lr}", "trainer.max_epochs=8", "zoo.snapshot_every=2"],
                    tmp_path,
                )
            )
    zoo = Zoo(tmp_path / "zoo")
    common = SYN + [
        "encoder.epochs=3",
        "encoder.model.d=8",
        "encoder.split.by=dataset",
        "encoder.split.held=syn_b",
        "encoder.split.fractions=[0.5,0.4,0.1]",
    ]
    run_task(make_cfg(common + ["encoder=ng_gnn", "encoder.inputs=8"], tmp_path))
    [rid] = zoo.df(kind="encoder").run_id.tolist()
    rec = zoo[rid].record["encoder"]
    held = {c.trajectory for c in checkpoints(zoo) if c.dataset == "syn_b"}
    assert (
        set(rec["splits"]["test"]) == held and len(rec["test_predictions"]["pred"]) == rec["split_checkpoints"]["test"]
    )
    enc = TrainedEncoder.from_zoo(zoo, rid)
    assert set(enc.bases) == {"synthetic", "syn_b"} and all(b.k == 8 for b in enc.bases.values())
    runs = zoo.df(kind="run")
    for ds_name, width in (("synthetic", 32), ("syn_b", 20)):
        st = zoo[runs[runs.dataset == ds_name].run_id.iloc[0]].state_dict()
        assert st["layers.0.lin.weight"].shape[1] == width
        assert torch.allclose(enc.embed(st, "gcn"), enc.embed(st, "gcn", dataset=ds_name))
    with pytest.raises(ValueError, match="no input basis for dataset 'cora'"):
        enc.embed(st, "gcn", dataset="cora")
    for name in ("hparams", "probe", "stat"):
        run_task(make_cfg(common + [f"encoder={name}"], tmp_path))
    probe_id = zoo.df(kind="encoder").query("dataset == 'syn_b+synthetic'").run_id.tolist()
    kinds = {zoo[r].record["encoder"]["name"]: r for r in probe_id}
    with pytest.raises(ValueError, match="not its weights"):
        TrainedEncoder.from_zoo(zoo, kinds["probe"]).embed(st, "gcn")
    assert TrainedEncoder.from_zoo(zoo, kinds["stat"]).embed(st, "gcn").shape[0] == 1


def test_the_trajectory_sampler_draws_per_trajectory_each_epoch():
    from gnnzoo.weightspace.task import TrajectorySampler

    groups = [[0, 1, 2, 3], [4, 5], [6]]
    s = TrajectorySampler(groups, 2, seed=3)
    epochs = [list(s) for _ in range(6)]
    for e in epochs:  # two of each trajectory (all of a shorter one), no repeats
        assert len(e) == len(s) == 5 and len(set(e)) == 5
        assert sum(i in groups[0] for i in e) == 2 and sum(i in groups[1] for i in e) == 2 and 6 in e
    assert len({tuple(sorted(e)) for e in epochs}) > 1  # a new draw each epoch
    again = TrajectorySampler(groups, 2, seed=3)
    assert [list(again) for _ in range(6)] == epochs  # seeded
    assert sorted(TrajectorySampler(groups, None, 0)) == list(range(7))


def test_an_encoder_reads_one_graph_per_dataset_name(tmp_path):
    for extra in ([], ["dataset.loader.num_features=20"]):
        run_task(make_cfg(SYN + extra + ["trainer.max_epochs=2"], tmp_path))
    with pytest.raises(ConfigError, match="different loaders"):
        run_task(make_cfg(SYN + ["encoder=stat", "encoder.epochs=1"], tmp_path))


def test_baseline_features_read_what_they_claim():
    """probe: free of the class order, one layout for any class count; hparams: moves with the configuration and
    the epoch; the validation draw keeps at most m checkpoints per trajectory, the same every time."""
    from gnnzoo.weightspace.features import HPARAM_DIM, hparam_features, probe_nodes, probe_summary
    from gnnzoo.weightspace.task import _fixed_draw

    logits = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    a, b = probe_summary(logits), probe_summary(logits[:, torch.tensor([3, 0, 4, 1, 2])])
    assert (
        torch.allclose(a, b, atol=1e-6)
        and probe_summary(torch.randn(64, 2)).shape == a.shape == probe_summary(logits[:9]).shape
    )
    assert not torch.equal(a, probe_summary(logits * 3))
    assert torch.equal(probe_nodes(100), probe_nodes(100)) and len(probe_nodes(10)) == 10
    cfg = {
        "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.01, "weight_decay": 5e-4},
        "backbone": {"hidden_channels": 16, "num_layers": 2, "dropout": 0.5},
        "trainer": {"max_epochs": 100},
        "dataset": {"num_features": 1433, "num_classes": 7},
    }
    h = hparam_features(cfg, "gcn", 10)
    assert h.shape == (HPARAM_DIM,) and not torch.equal(h, hparam_features(cfg, "gcn", 50))
    other = {**cfg, "optimizer": {**cfg["optimizer"], "lr": 0.001}}
    assert not torch.equal(h, hparam_features(other, "gcn", 10)) and not torch.equal(h, hparam_features(cfg, "gat", 10))

    class C:
        def __init__(self, t):
            self.trajectory = t

    items = [C("a")] * 5 + [C("b")] * 2
    draw = _fixed_draw(items, list(range(7)), 3, seed=0)
    assert draw == _fixed_draw(items, list(range(7)), 3, seed=0) and sum(i < 5 for i in draw) == 3
    assert {5, 6} <= set(draw) and _fixed_draw(items, list(range(7)), None, 0) == list(range(7))
