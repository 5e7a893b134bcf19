"""Graph lottery tickets (task=prune): masks, one-shot, UGS (imp_ugs) and FastGLT, edge removal, tickets in the zoo."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import make_cfg
from gnnzoo.backbones import BACKBONES, EdgeUnits, PrunedBackbone, build_backbone
from gnnzoo.data import load_graph
from gnnzoo.pruning.context import start_weights
from gnnzoo.pruning.masks import MaskEnforcer, Scope, Ticket, magnitude_masks, sparsity
from gnnzoo.pruning.task import run as run_prune
from gnnzoo.tasks.run import run_task
from gnnzoo.utils.errors import ConfigError
from gnnzoo.zoo import Zoo, run_id

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=400", "trainer.max_epochs=15", "logger=none"]


def test_magnitude_masks_reach_the_target_exactly():
    torch.manual_seed(0)
    state = {"a": torch.randn(30, 20), "b": torch.randn(7, 30) * 10}
    g = magnitude_masks(state, ["a", "b"], 0.8, "global")
    assert sparsity(g)["pruned"] == round(0.8 * 810) and sparsity(g)["total"] == 810
    # one global threshold: every kept magnitude >= every pruned one
    allv = torch.cat([state[k].abs().view(-1) for k in "ab"])
    allm = torch.cat([g[k].view(-1) for k in "ab"])
    assert allv[allm].min() >= allv[~allm].max()
    assert g["b"].float().mean() > g["a"].float().mean()  # the larger tensor keeps more under a global threshold
    per = magnitude_masks(state, ["a", "b"], 0.8, "layer")
    assert int((~per["a"]).sum()) == 480 and int((~per["b"]).sum()) == 168
    ties = magnitude_masks({"t": torch.ones(10, 10)}, ["t"], 0.37)
    assert int((~ties["t"]).sum()) == 37  # ties broken by position, still exact
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        magnitude_masks(state, ["a"], 1.0)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_scope_selects_linear_weights_with_its_denominator(name):
    m = BACKBONES[name](32, 16, 4)
    names = Scope().names(m)
    assert names and all(n.endswith("weight") and dict(m.named_parameters())[n].dim() == 2 for n in names)
    inner = Scope(first_layer=False, last_layer=False).names(m)
    assert not any(n.startswith(("layers.0.", "layers.1.")) for n in inner)  # 2 layers: nothing inner
    with_bias = Scope(bias=True).names(m)
    assert set(names) < set(with_bias) or not any(n.endswith("bias") for n, _ in m.named_parameters())
    if name == "gat":
        assert any("att_src" in n for n in Scope(attention=True).names(m))


def test_masked_weights_stay_exactly_zero_with_adam_and_sgd():
    for opt_cls, kw in (
        (torch.optim.Adam, {"lr": 0.05, "weight_decay": 5e-4}),
        (torch.optim.AdamW, {"lr": 0.05}),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}),
    ):
        model = BACKBONES["gcn"](8, 16, 3, dropout=0.0)
        names = Scope().names(model)
        masks = magnitude_masks(dict(model.named_parameters()), names, 0.7)
        enforcer = MaskEnforcer(masks)
        enforcer.attach(model)
        opt = opt_cls(model.parameters(), **kw)
        x, ei = torch.randn(20, 8), torch.randint(0, 20, (2, 60))
        for _ in range(5):
            opt.zero_grad()
            model(x, ei).square().mean().backward()
            opt.step()
        params = dict(model.named_parameters())
        for n, m in masks.items():
            assert torch.all(params[n][~m] == 0), (opt_cls.__name__, n)
            assert torch.any(params[n][m] != 0)
            for buf in opt.state[params[n]].values():
                if torch.is_tensor(buf) and buf.shape == m.shape:
                    assert torch.all(buf[~m] == 0), (opt_cls.__name__, n)  # moments of pruned entries stay 0


def test_rewind_starts_from_the_initialization_or_the_dense_weights(tmp_path):
    cfg = make_cfg(SYN, tmp_path)
    init = {k: v.clone() for k, v in build_backbone(cfg).state_dict().items()}
    dense = {k: torch.randn_like(v) for k, v in init.items()}
    model = build_backbone(cfg)
    masks = magnitude_masks(dense, Scope().names(model), 0.5)
    start_weights(model, dense, masks, "init")
    for k, v in model.state_dict().items():
        assert torch.equal(v, init[k] * masks[k] if k in masks else init[k]), k
    model = build_backbone(cfg)
    start_weights(model, dense, masks, "dense")
    for k, v in model.state_dict().items():
        assert torch.equal(v, dense[k] * masks[k] if k in masks else dense[k]), k


def test_one_shot_end_to_end(tmp_path):
    cfg = make_cfg(SYN + ["pruning=one_shot", "pruning.weight_sparsity=0.9"], tmp_path)
    assert cfg.task._target_ == "gnnzoo.pruning.task.run"
    value = run_task(cfg)
    zoo = Zoo(tmp_path / "zoo")
    [dense] = zoo.df(kind="run").run_id.tolist()
    assert dense == run_id(make_cfg(SYN, tmp_path))  # the parent is the ordinary dense run
    pruned = zoo.df(kind="pruned", parent=dense)
    [ticket] = pruned.run_id.tolist()
    assert pruned["prune/weight_sparsity"].iloc[0] == pytest.approx(0.9, abs=1e-2)
    entry = zoo[ticket]
    rec = entry.record
    info = rec["pruning"]
    assert rec["parents"] == [dense] and info["weights_pruned"] == round(0.9 * info["weights_total"])
    assert info["weight_sparsity"] == pytest.approx(0.9, abs=1 / info["weights_total"])
    # MACs: nodes x nnz(W) over the linear maps + kept edges x each layer's output width (GCN 16 -> 4)
    d = load_graph(cfg).data
    n, e = d.num_nodes, d.edge_index.size(1)
    assert info["dense_macs"] == n * info["weights_total"] + e * (16 + 4)
    assert info["macs"] == n * (info["weights_total"] - info["weights_pruned"]) + e * (16 + 4)
    assert value == pytest.approx(rec["metrics"]["val/acc"])
    # the saved ticket: masks load back, the weights are exactly zero where pruned, and the model reproduces
    # its recorded test accuracy
    masks = entry.ticket()
    state = entry.state_dict()
    assert set(masks) == set(info["tensors"]) and all(torch.all(state[k][~m] == 0) for k, m in masks.items())
    assert sparsity(masks)["pruned"] == info["weights_pruned"]
    model = entry.load()
    with torch.no_grad():
        pred = model(d.x, d.edge_index).argmax(-1)
    assert float((pred[d.test_mask] == d.y[d.test_mask]).float().mean()) == pytest.approx(rec["metrics"]["test/acc"])
    # relaunched: both the dense run and the ticket are skipped
    again = run_prune(cfg)
    assert again["skipped"] and again["run_id"] == ticket and len(zoo) == 2
    # another target: a new ticket, the same dense parent
    run_prune(make_cfg(SYN + ["pruning=one_shot", "pruning.weight_sparsity=0.5"], tmp_path))
    assert len(zoo.df(kind="pruned", parent=dense)) == 2 and len(zoo.df(kind="run")) == 1


@pytest.mark.parametrize(
    "override,needle",
    [
        ("pruning.weight_sparsity=1.0", "pruning.weight_sparsity=1.0 is out of range"),
        ("pruning.weight_sparsity=-0.1", "pruning.weight_sparsity=-0.1 is out of range"),
        ("pruning.graph_sparsity=1.5", "pruning.graph_sparsity=1.5 is out of range"),
        ("pruning.weight_sparsity=0", "nothing to prune"),
        (
            "pruning.renormalize=false backbone=gat pruning.graph_sparsity=0.2",
            "renormalize=false applies to gcn, appnp",
        ),
        ("backbone=mlp pruning.graph_sparsity=0.2", "an MLP does not use the graph"),
        (
            "pruning=imp_ugs pruning.weight_sparsity=0.9 pruning.rounds=5",
            "reaches 0.6723, below the target 0.9: it needs pruning.rounds>=11",
        ),
        ("pruning=imp_ugs pruning.rate_graph=0", "pruning.rate_graph=0 is out of range"),
        ("pruning=fastglt pruning.delta=50 pruning.denoise_epochs=10", "no denoising update would run"),
        ("pruning=fastglt pruning.rewind=dense", "fastglt retrains from the initialization"),
        ("pruning.threshold=median", "pruning.threshold"),
        ("pruning.rewind=late", "pruning.rewind"),
        ("data=neighbor", "full-batch"),
    ],
)
def test_bad_pruning_options_fail_before_training(override, needle, tmp_path):
    with pytest.raises(ConfigError, match=needle):
        base = [] if override.startswith("pruning=") else ["pruning=one_shot"]
        run_prune(make_cfg(SYN + base + override.split(), tmp_path))
    assert not (tmp_path / "zoo").exists() or len(Zoo(tmp_path / "zoo")) == 0


def test_empty_scope_is_a_clear_error(tmp_path):
    cfg = make_cfg(
        SYN + ["pruning=one_shot", "pruning.scope.first_layer=false", "pruning.scope.last_layer=false"], tmp_path
    )
    with pytest.raises(ConfigError, match="selects no tensor"):
        run_prune(cfg)


# ---------------------------------------------------------------------------------------------- edges


def _graph(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, 90), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    ei = torch.unique(torch.cat([ei, ei.flip(0)], 1), dim=1)  # undirected, no duplicates
    return torch.randn(n, 8, generator=g), ei


@pytest.mark.parametrize("name", ["gcn", "sage", "gin", "gat", "appnp"])
def test_a_pruned_edge_carries_no_message(name):
    """One layer (one hop): with the edge u-v pruned, perturbing u's features leaves v's output unchanged,
    while with the edge kept it changes it. GAT: the pruned edge is removed, so it gets no attention."""
    x, ei = _graph()
    kw = {"K": 1} if name == "appnp" else {}
    model = BACKBONES[name](8, 16, 3, num_layers=1, dropout=0.0, **kw).eval()
    if name == "gat":
        for conv in model.layers:
            conv.dropout = 0.0
    v = int(ei[1, 0])
    u = int(ei[0, 0])
    ticket = Ticket(ei, {})
    units = ticket.units
    keep = torch.ones(units.num_units, dtype=torch.bool)
    keep[units.unit[0]] = False  # the unit of (u, v): both directions go
    ticket.set_edge_keep(keep)
    x2 = x.clone()
    x2[u] += 3.0
    with torch.no_grad():
        assert not torch.allclose(model(x, ei)[v], model(x2, ei)[v])  # kept: u's change reaches v
        assert torch.allclose(ticket(model, x, ei)[v], ticket(model, x2, ei)[v], atol=1e-6)
        pruned = PrunedBackbone(model, {}, keep)
        assert torch.allclose(pruned(x, ei)[v], pruned(x2, ei)[v], atol=1e-6)
        assert torch.allclose(pruned(x, ei), ticket(model, x, ei), atol=1e-6)
        if name in ("gcn", "appnp"):  # renormalize=false: the dense graph's degrees, the pruned message x 0
            dense_deg = Ticket(ei, {}, renormalize=False)
            dense_deg.set_edge_keep(keep)
            out = dense_deg(model, x, ei)  # the ticket switches the backbone's normalisation itself
            assert torch.allclose(out[v], dense_deg(model, x2, ei)[v], atol=1e-6)
            assert not torch.allclose(out, ticket(model, x, ei))  # other degrees
            model.renormalize = False  # by hand: the same dense-degree computation
            assert torch.allclose(out, model(x, ei, keep_dir := dense_deg.units.directed(keep).float()), atol=1e-6)
            model.renormalize = True
            assert not torch.allclose(out, model(x, ei, keep_dir), atol=1e-6)


def test_edge_units_are_symmetric_and_leave_self_loops_out():
    _, ei = _graph()
    ei = torch.cat([ei, torch.tensor([[3, 4], [3, 4]])], 1)  # two self-loops
    units = EdgeUnits(ei, symmetric=True)
    assert units.num_units == (ei.size(1) - 2) // 2 and int(units.loops.sum()) == 2
    keep = torch.rand(units.num_units) > 0.5
    kept = units.directed(keep)
    pairs = {(int(a), int(b)) for a, b, k in zip(ei[0], ei[1], kept) if k}
    assert all((b, a) in pairs for a, b in pairs)  # symmetric
    assert kept[-2:].all()  # self-loops always kept
    assert EdgeUnits(ei, symmetric=False).num_units == ei.size(1) - 2
    with pytest.raises(ValueError, match="another graph"):
        units.directed(torch.ones(units.num_units + 1, dtype=torch.bool))


def test_trainable_scores_scale_weights_and_edges():
    x, ei = _graph()
    model = BACKBONES["gcn"](8, 16, 3, dropout=0.0).eval()
    names = Scope().names(model)
    shapes = {n: dict(model.named_parameters())[n].shape for n in names}
    t = Ticket(ei, shapes, weight_scores=True, edge_scores=True, l1_weight=0.1, l1_graph=0.2)
    with torch.no_grad():
        for s in t.weight_score:
            s.fill_(0.5)
        t.edge_score.fill_(0.25)
    ref = BACKBONES["gcn"](8, 16, 3, dropout=0.0).eval()
    ref.load_state_dict({k: v * 0.5 if k in shapes else v for k, v in model.state_dict().items()})
    with torch.no_grad():
        expect = ref(x, ei, torch.full((ei.size(1),), 0.25))
        assert torch.allclose(t(model, x, ei), expect, atol=1e-6)
    n_w = sum(torch.Size(s).numel() for s in shapes.values())
    assert float(t.regularizer().detach()) == pytest.approx(0.1 * 0.5 * n_w + 0.2 * 0.25 * t.units.num_units, rel=1e-5)
    out = t(model, x, ei).sum()
    out.backward()
    assert all(s.grad is not None for s in t.weight_score) and t.edge_score.grad is not None


def test_dense_gradients_of_pruned_weights_are_kept_for_scoring():
    model = BACKBONES["gcn"](8, 16, 3, dropout=0.0)
    names = Scope().names(model)
    masks = magnitude_masks(dict(model.named_parameters()), names, 0.7)
    sink = {}
    MaskEnforcer(masks, grad_sink=sink).attach(model)
    x, ei = _graph()
    model(x, ei).square().mean().backward()
    params = dict(model.named_parameters())
    for n, m in masks.items():
        assert torch.all(params[n].grad[~m] == 0)  # the update is masked
        assert sink[n][~m].abs().sum() > 0  # the score still sees the pruned entries' gradients


# ---------------------------------------------------------------------------------------------- methods


def test_one_shot_prunes_the_graph_and_the_ticket_loads_back_with_its_edge_mask(tmp_path):
    cfg = make_cfg(SYN + ["pruning=one_shot", "pruning.weight_sparsity=0.5", "pruning.graph_sparsity=0.3"], tmp_path)
    out = run_task(cfg)
    zoo = Zoo(tmp_path / "zoo")
    [ticket] = zoo.df(kind="pruned").run_id.tolist()
    entry = zoo[ticket]
    info = entry.record["pruning"]
    assert info["edges_pruned"] == round(0.3 * info["edges_total"]) and info["edge_unit"] == "undirected"
    masks = entry.ticket()
    keep = masks.pop("edge_keep")
    assert keep.numel() == info["edges_total"] and int((~keep).sum()) == info["edges_pruned"]
    d = load_graph(cfg).data
    units = EdgeUnits(d.edge_index)
    assert info["edges_total"] == units.num_units
    kept = units.directed(keep)
    # MACs count the kept directed edges only
    n = d.num_nodes
    assert info["macs"] == n * (info["weights_total"] - info["weights_pruned"]) + int(kept.sum()) * (16 + 4)
    model = entry.load()
    assert isinstance(model, PrunedBackbone) and torch.equal(model.edge_keep, keep)
    with torch.no_grad():
        pred = model(d.x, d.edge_index).argmax(-1)
        acc = float((pred[d.test_mask] == d.y[d.test_mask]).float().mean())
    assert acc == pytest.approx(entry.record["metrics"]["test/acc"])
    assert out == pytest.approx(entry.record["metrics"]["val/acc"])
    # the same weights on the unpruned graph compute something else: the edge mask matters
    with torch.no_grad():
        assert not torch.allclose(model.backbone(d.x, d.edge_index), model(d.x, d.edge_index))


def test_imp_ugs_follows_its_schedule_one_entry_per_round_and_resumes(tmp_path):
    ov = SYN + [
        "pruning=imp_ugs",
        "pruning.weight_sparsity=0.5",
        "pruning.graph_sparsity=0.12",
        "pruning.rounds=4",
        "trainer.max_epochs=8",
    ]
    res = run_prune(make_cfg(ov, tmp_path))
    zoo = Zoo(tmp_path / "zoo")
    df = zoo.df(kind="pruned").sort_values("prune/round")
    assert df["prune/round"].tolist() == [1, 2, 3, 4] and res["tickets"] == df.run_id.tolist()
    w_total = zoo[df.run_id.iloc[0]].record["pruning"]["weights_total"]
    g_total = zoo[df.run_id.iloc[0]].record["pruning"]["edges_total"]
    pw = pg = 0
    prev = None
    for rid in df.run_id:
        info = zoo[rid].record["pruning"]
        # each round prunes 20% of the remaining weights and 5% of the remaining edges, clipped at the targets
        pw = min(pw + round(0.2 * (w_total - pw)), round(0.5 * w_total))
        pg = min(pg + round(0.05 * (g_total - pg)), round(0.12 * g_total))
        assert (info["weights_pruned"], info["edges_pruned"]) == (pw, pg)
        masks = zoo[rid].ticket()
        if prev is not None:  # a round only removes: what was pruned stays pruned
            assert all(torch.all(masks[k] <= prev[k]) for k in masks)
        prev = masks
        assert zoo[rid].record["parents"] == [res["dense_run_id"]]
    assert res["prune/weight_sparsity"] == pytest.approx(0.5, abs=1 / w_total)
    assert (tmp_path / "out" / "prune_imp_ugs.png").is_file()
    again = run_prune(make_cfg(ov, tmp_path))
    assert again["skipped"] and len(zoo.df(kind="pruned")) == 4 and again["tickets"] == res["tickets"]


def test_fastglt_denoises_at_constant_sparsity_and_retrains(tmp_path):
    ov = SYN + [
        "pruning=fastglt",
        "pruning.weight_sparsity=0.8",
        "pruning.graph_sparsity=0.3",
        "pruning.pretrain_epochs=4",
        "pruning.denoise_epochs=12",
        "pruning.delta=2",
        "pruning.alpha=0.5",
        "pruning.threshold=layer",
    ]
    cfg = make_cfg(ov, tmp_path)
    res = run_prune(cfg)
    zoo = Zoo(tmp_path / "zoo")
    entry = zoo[res["run_id"]]
    info = entry.record["pruning"]
    assert info["retrained"] and info["denoise_updates"] == 6
    # per-tensor threshold (threshold=layer): every tensor at the target to within one entry
    masks = entry.ticket()
    keep = masks.pop("edge_keep")
    for m in masks.values():
        assert abs(float((~m).float().mean()) - 0.8) <= 1 / m.numel() + 1e-9
    assert int((~keep).sum()) == round(0.3 * keep.numel())
    state = entry.state_dict()
    assert all(torch.all(state[k][~m] == 0) for k, m in masks.items())
    assert res["prune/graph_sparsity"] == pytest.approx(0.3, abs=1e-3)


def test_denoiser_drops_and_regrows_as_many_entries():
    from types import SimpleNamespace

    from gnnzoo.pruning.fastglt import DropAndRegrow as Denoiser

    x, ei = _graph(40)
    model = BACKBONES["gcn"](8, 16, 3, dropout=0.0)
    names = Scope().names(model)
    shapes = {n: dict(model.named_parameters())[n].shape for n in names}
    t = Ticket(ei, shapes, edge_scores=True)
    masks = magnitude_masks(dict(model.named_parameters()), names, 0.6)
    t.set_weight_masks(masks)
    keep = torch.ones(t.units.num_units, dtype=torch.bool)
    keep[: t.units.num_units // 3] = False
    t.set_edge_keep(keep)
    grads = {n: torch.rand(s) for n, s in shapes.items()}
    d = Denoiser(t, grads, total=10, delta=2, alpha=0.4, accumulation=1, units=t.units)
    y = torch.randint(0, 3, (40,))
    batch = SimpleNamespace(x=x, y=y, train_mask=torch.ones(40, dtype=torch.bool))
    trainer = SimpleNamespace(current_epoch=1, optimizers=[])
    before_w = {k: v.clone() for k, v in t.weight_masks.items()}
    before_e = t.edge_keep.clone()
    d.on_train_batch_end(trainer, SimpleNamespace(backbone=model), None, batch, 0)
    assert d.updates == 1
    for k, m in t.weight_masks.items():
        assert int(m.sum()) == int(before_w[k].sum())  # as many regrown as dropped
    assert any(not torch.equal(m, before_w[k]) for k, m in t.weight_masks.items())
    assert int(t.edge_keep.sum()) == int(before_e.sum()) and not torch.equal(t.edge_keep, before_e)
    # f(t) = alpha/2 (1 + cos(pi t / T))
    assert d.fraction(2) == pytest.approx(0.2 * (1 + math.cos(math.pi * 0.2)))


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["gin", "gat", "sage"])
def test_every_method_runs_on_other_backbones(backbone, tmp_path):
    for ov in (
        ["pruning=one_shot", "pruning.graph_sparsity=0.2"],
        ["pruning=imp_ugs", "pruning.weight_sparsity=0.2", "pruning.graph_sparsity=0.05", "pruning.rounds=1"],
        ["pruning=fastglt", "pruning.pretrain_epochs=2", "pruning.denoise_epochs=4", "pruning.delta=2"],
    ):
        res = run_prune(make_cfg(SYN + [f"backbone={backbone}", "trainer.max_epochs=6"] + ov, tmp_path))
        assert res["prune/graph_sparsity"] > 0 and 0 <= res["test/acc"] <= 1
    assert len(Zoo(tmp_path / "zoo").df(kind="pruned")) == 3


# ---------------------------------------------------------------------------------------------- batched


def test_batched_ticket_training_equals_single(tmp_path):
    """Dropout off, the same masks: a ticket retrained in the batched trainer matches the single (Lightning)
    retraining: curves, best epoch, weights (zeros where pruned), test accuracy."""
    from gnnzoo.batched.trainer import BatchedJob, train_batched
    from gnnzoo.tasks.backbone import train

    ov = SYN + ["backbone.dropout=0.0", "pruning=one_shot", "pruning.weight_sparsity=0.7"]
    cfgs = [make_cfg(ov + [f"seed={s}"], tmp_path) for s in (0, 1)]
    singles, jobs = [], []
    for c in cfgs:
        model = build_backbone(c)
        masks = magnitude_masks(dict(model.named_parameters()), Scope().names(model), 0.7)
        rid = f"single{int(c.seed)}ticket00"
        singles.append(
            train(
                c,
                kind="pruned",
                rid=rid,
                prepare=lambda b, m=masks: [start_weights(b, {}, m, "init")],
                fields={"pruning": {"weights_pruned": sparsity(masks)["pruned"]}},
            )
        )
        jobs.append(
            BatchedJob(
                kind="pruned",
                rid=f"batch{int(c.seed)}ticket000",
                masks=masks,
                fields={"pruning": {"weights_pruned": sparsity(masks)["pruned"]}},
                files={"ticket.safetensors": {k: v.to(torch.uint8) for k, v in masks.items()}},
            )
        )
    batched = train_batched(cfgs, progress=False, jobs=jobs)
    zoo = Zoo(tmp_path / "zoo")
    for rs, rb, job in zip(singles, batched, jobs):
        es, eb = zoo[rs["run_id"]].record, zoo[rb["run_id"]].record
        assert eb["kind"] == "pruned" and eb["engine"] == "batched" and eb["best_epoch"] == es["best_epoch"]
        for k in ("val/acc", "train/loss"):
            assert eb["curves"][k] == pytest.approx(es["curves"][k], abs=1e-4), k
        assert rb["test/acc"] == pytest.approx(rs["test/acc"])
        wb, ws = zoo[rb["run_id"]].state_dict(), zoo[rs["run_id"]].state_dict()
        assert all(torch.allclose(wb[k], ws[k], atol=1e-4) for k in ws)
        assert all(torch.all(wb[k][~m] == 0) for k, m in job.masks.items())
        assert set(zoo[rb["run_id"]].ticket()) == set(job.masks)


def test_parallel_models_batches_one_shot_seeds_and_runs_others_one_by_one(tmp_path, capsys):
    ov = SYN + ["pruning=one_shot", "pruning.weight_sparsity=0.6", "zoo.parallel_models=3"]
    res = run_prune(make_cfg(ov, tmp_path))
    zoo = Zoo(tmp_path / "zoo")
    tickets = zoo.df(kind="pruned")
    assert len(tickets) == 3 and set(tickets.engine) == {"batched"} and set(res["tickets"]) == set(tickets.run_id)
    dense = zoo.df(kind="run")
    assert len(dense) == 3 and set(dense.engine) == {"batched"} and sorted(dense.seed) == [0, 1, 2]
    d = load_graph(make_cfg(SYN, tmp_path)).data
    for rid in tickets.run_id:
        e = zoo[rid]
        assert json.loads(tickets.set_index("run_id").loc[rid, "parents"]) == e.record["parents"]
        assert zoo[e.record["parents"][0]].record["seed"] == e.record["seed"]
        info = e.record["pruning"]
        assert info["weights_pruned"] == round(0.6 * info["weights_total"])
        with torch.no_grad():
            pred = e.load()(d.x, d.edge_index).argmax(-1)
        assert float((pred[d.test_mask] == d.y[d.test_mask]).float().mean()) == pytest.approx(
            e.record["metrics"]["test/acc"]
        )
    assert res["value"] == pytest.approx(tickets["val/acc"].mean())
    again = run_prune(make_cfg(ov, tmp_path))
    assert again["skipped"] and len(zoo.df(kind="pruned")) == 3
    # a method the batched trainer cannot model: said, and the seeds go one by one
    capsys.readouterr()
    res = run_prune(
        make_cfg(SYN + ["pruning=one_shot", "pruning.graph_sparsity=0.2", "zoo.parallel_models=2"], tmp_path)
    )
    assert "cannot be batched" in capsys.readouterr().out and len(res["tickets"]) == 2


def test_the_plot_goes_to_wandb_when_it_is_the_logger(tmp_path):
    import wandb

    res = run_prune(make_cfg(SYN + ["pruning=one_shot", "logger=wandb"], tmp_path))
    assert wandb.run is None and res["run_id"]
    assert (tmp_path / "out" / "prune_one_shot.png").is_file()
    runs = sorted((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # the dense run, the ticket, the search's summary with the plot
    assert any(p.suffix == ".png" for r in runs for p in (r / "files").rglob("*"))


def test_a_dense_degree_ticket_loads_back_with_its_normalisation(tmp_path):
    cfg = make_cfg(
        SYN
        + [
            "pruning=one_shot",
            "pruning.weight_sparsity=0.5",
            "pruning.graph_sparsity=0.4",
            "pruning.renormalize=false",
        ],
        tmp_path,
    )
    res = run_prune(cfg)
    entry = Zoo(tmp_path / "zoo")[res["run_id"]]
    assert entry.record["pruning"]["renormalize"] is False
    model = entry.load()
    assert model.backbone.renormalize is False
    d = load_graph(cfg).data
    with torch.no_grad():
        pred = model(d.x, d.edge_index).argmax(-1)
    assert float((pred[d.test_mask] == d.y[d.test_mask]).float().mean()) == pytest.approx(res["test/acc"])


def test_the_ticket_follows_its_edge_mask_when_it_changes():
    """The kept edges are cached per version of the mask: a new mask (set, or a best-state reload) is used."""
    x, ei = _graph()
    model = BACKBONES["gcn"](8, 16, 3, num_layers=1, dropout=0.0).eval()
    t = Ticket(ei, {})
    full = t.edges(ei)[0]
    keep = torch.ones(t.units.num_units, dtype=torch.bool)
    keep[:5] = False
    t.set_edge_keep(keep)
    assert t.edges(ei)[0].size(1) == int(t.units.directed(keep).sum()) < full.size(1)
    state = {k: v.clone() for k, v in t.state_dict().items()}
    t.set_edge_keep(torch.ones_like(keep))
    assert t.edges(ei)[0].size(1) == full.size(1)
    t.load_state_dict(state)
    assert t.edges(ei)[0].size(1) < full.size(1)
    with torch.no_grad():
        assert torch.allclose(t(model, x, ei), model(x, ei[:, t.units.directed(keep)]), atol=1e-6)


def test_min_per_neuron_keeps_every_output_neuron_and_the_total_exact():
    """A global threshold over a big layer of large weights and a small layer of small ones would empty the small
    layer; the floor keeps one weight per output neuron of it and still prunes exactly the target."""
    gen = torch.Generator().manual_seed(0)
    state = {"big": 10 + torch.rand(16, 100, generator=gen), "small": 0.01 * torch.rand(7, 16, generator=gen)}
    bare = magnitude_masks(state, ["big", "small"], 0.9, "global")
    assert int(bare["small"].sum()) == 0  # the bug the floor exists for
    floored = magnitude_masks(state, ["big", "small"], 0.9, "global", min_per_neuron=1)
    assert (floored["small"].sum(1) >= 1).all() and (floored["big"].sum(1) >= 1).all()
    assert sparsity(floored)["pruned"] == round(0.9 * (1600 + 112))
    # each row's kept entry is its largest
    assert torch.equal(floored["small"].float().argmax(1), state["small"].argmax(1))
    # already-pruned entries stay pruned even under the floor
    keep = {"big": torch.ones(16, 100, dtype=torch.bool), "small": torch.zeros(7, 16, dtype=torch.bool)}
    keep["small"][:, 3] = True
    again = magnitude_masks(state, ["big", "small"], 0.95, "global", keep=keep, min_per_neuron=1)
    assert not (again["small"] & ~keep["small"]).any() and (again["small"][:, 3]).all()
