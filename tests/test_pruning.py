"""Graph lottery tickets, first slice: one-shot magnitude pruning of weights (task=prune pruning=one_shot)."""
from __future__ import annotations

import pytest
import torch

from conftest import make_cfg
from gnnzoo.backbones import BACKBONES, build_backbone
from gnnzoo.data import load_graph
from gnnzoo.pruning.masks import MaskEnforcer, Scope, magnitude_masks, sparsity
from gnnzoo.pruning.task import run as run_prune, start_weights
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
    for opt_cls, kw in ((torch.optim.Adam, {"lr": 0.05, "weight_decay": 5e-4}), (torch.optim.AdamW, {"lr": 0.05}),
                        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4})):
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


@pytest.mark.parametrize("override,needle", [
    ("pruning.weight_sparsity=1.0", "pruning.weight_sparsity=1.0 is out of range"),
    ("pruning.weight_sparsity=-0.1", "pruning.weight_sparsity=-0.1 is out of range"),
    ("pruning.graph_sparsity=0.3", "graph .edge. pruning is not built yet"),
    ("pruning.threshold=median", "pruning.threshold"),
    ("pruning.rewind=late", "pruning.rewind"),
    ("data=neighbor", "full-batch"),
])
def test_bad_pruning_options_fail_before_training(override, needle, tmp_path):
    with pytest.raises(ConfigError, match=needle):
        run_prune(make_cfg(SYN + ["pruning=one_shot", override], tmp_path))
    assert not (tmp_path / "zoo").exists() or len(Zoo(tmp_path / "zoo")) == 0


def test_empty_scope_is_a_clear_error(tmp_path):
    cfg = make_cfg(SYN + ["pruning=one_shot", "pruning.scope.first_layer=false", "pruning.scope.last_layer=false"],
                   tmp_path)
    with pytest.raises(ConfigError, match="selects no tensor"):
        run_prune(cfg)
