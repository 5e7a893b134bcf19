"""Soups: uniform / greedy / GIS / LS / PLS semantics, ingredients, holdout, zoo output."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import make_cfg
from gnnzoo.backbones import GCN
from gnnzoo.data.synthetic import make_sbm_graph
from gnnzoo.soups.ingredients import IngredientMismatchError, from_entries
from gnnzoo.soups.learned import learned, partition_learned
from gnnzoo.soups.partition import PartitionSchedule, make_parts
from gnnzoo.soups.strategies import Evaluator, gis, greedy, uniform
from gnnzoo.soups.task import run as run_soup
from gnnzoo.soups.task import split_holdout
from gnnzoo.tasks.backbone import train
from gnnzoo.zoo import Zoo

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=500", "trainer.max_epochs=20"]


@pytest.fixture(scope="module")
def setup():
    d = make_sbm_graph(num_nodes=600, num_features=16, seed=3, feature_noise=2.0)
    ev_model = GCN(16, 16, 4, dropout=0.0).eval()
    states = []
    for s in range(5):  # diverse "ingredients": perturbations of one trained-ish model
        torch.manual_seed(s)
        m = GCN(16, 16, 4)
        states.append({k: v.detach().clone() for k, v in m.state_dict().items()})
    ev = Evaluator(
        ev_model,
        d.x,
        d.edge_index,
        d.y,
        {"fit": d.val_mask, "select": d.val_mask, "val": d.val_mask, "test": d.test_mask},
    )
    return d, ev, states


def test_uniform_of_identical_models_is_that_model(setup):
    d, ev, states = setup
    same = [states[0]] * 4
    soup = uniform(same, ev).state
    for k in states[0]:
        assert torch.allclose(soup[k], states[0][k], atol=1e-7)
    assert ev.accuracy(soup, "test") == ev.accuracy(states[0], "test")


def test_greedy_and_gis_never_worse_than_best_ingredient_on_fit(setup):
    d, ev, states = setup
    best = max(ev.accuracy(s, "fit") for s in states)
    g = greedy(states, ev)
    assert ev.accuracy(g.state, "fit") >= best and g.info["kept"][0] == max(
        range(5), key=lambda i: ev.accuracy(states[i], "fit")
    )
    r = gis(states, ev, granularity=5)
    assert ev.accuracy(r.state, "fit") >= best
    assert len(r.info["alphas"]) == 4 and math.isclose(sum(r.info["weights"]), 1.0, rel_tol=1e-6)
    # GIS with one ingredient returns it
    one = gis(states[:1], ev)
    assert all(torch.equal(one.state[k], states[0][k]) for k in states[0])


def test_learned_only_coefficients_get_gradients(setup):
    d, ev, states = setup
    res = learned(states, ev, epochs=5, lr=1.0)
    assert sorted(res.info["grad_tensors"]) == ["mixer.alpha_raw", "mixer.beta"]
    assert all(t.grad is None and not t.requires_grad for s in states for t in s.values())
    assert len(res.info["loss"]) == 5


def test_learned_beta_lr_zero_fixes_the_output_scale(setup):
    d, ev, states = setup
    res = learned(states, ev, epochs=5, lr=10.0, init="ones", beta_lr=0.0)
    assert res.info["grad_tensors"] == ["mixer.alpha_raw"] and res.info["beta"] == 1.0
    assert res.info["loss"][-1] < res.info["loss"][0]  # mixing alone still lowers the loss
    slow = learned(states, ev, epochs=5, lr=10.0, init="ones", beta_lr=0.01)  # its own, smaller rate
    fast = learned(states, ev, epochs=5, lr=10.0, init="ones")  # beta_lr None: the coefficients' rate
    assert abs(slow.info["beta"] - 1.0) < abs(fast.info["beta"] - 1.0)
    # the coefficients keep their own rate: after one step (same start, same gradient) they agree
    one = [
        learned(states, ev, epochs=1, lr=10.0, init="ones", beta_lr=b).info["coefficients"] for b in (0.0, 0.01, None)
    ]
    assert one[0] == one[1] == one[2]
    parts = make_parts("random", d.edge_index, d.num_nodes, 4, d.val_mask, 0)
    pls = partition_learned(states, ev, parts=parts, epochs=5, lr=10.0, init="ones", beta_lr=0.0)
    assert pls.info["beta"] == 1.0 and pls.info["loss"][-1] < pls.info["loss"][0]  # PLS passes beta_lr on
    for strategy, kw in ((learned, {}), (partition_learned, {"parts": parts})):
        with pytest.raises(ValueError, match="soup.params.beta_lr"):  # checked on direct calls too
            strategy(states, ev, epochs=1, beta_lr=-1.0, **kw)


def test_learned_weight_decay_pulls_the_mix_not_the_output_scale(setup):
    d, ev, states = setup
    spread, beta = {}, {}
    for wd in (0.0, 0.5):
        info = learned(states, ev, epochs=6, lr=1.0, init="normal", optimizer="sgd", weight_decay=wd, t0=None).info
        w = torch.tensor(list(info["coefficients"].values()))
        spread[wd], beta[wd] = float((w - 1 / len(states)).abs().max()), info["beta"]
    assert spread[0.5] < spread[0.0] / 2  # the coefficients are pulled towards the uniform mix
    assert beta[0.5] > 0.5  # beta is not decayed (x 0.5 per step would leave about 1/64 of it)


def test_learned_ones_zero_epochs_is_uniform(setup):
    d, ev, states = setup
    res = learned(states, ev, epochs=0, init="ones")
    uni = uniform(states, ev).state
    assert all(torch.allclose(res.state[k], uni[k], atol=1e-6) for k in uni)


def test_learned_improves_fit_loss(setup):
    d, ev, states = setup
    res = learned(states, ev, epochs=30, lr=10.0, init="ones", t0=None)
    assert res.info["loss"][-1] < res.info["loss"][0]


def test_learned_keep_best_returns_the_best_fit_epoch(setup):
    d, ev, states = setup
    uni_acc = ev.accuracy(uniform(states, ev).state, "fit")
    last = learned(states, ev, epochs=12, lr=30.0, init="ones", t0=None, keep="last")
    best = learned(states, ev, epochs=12, lr=30.0, init="ones", t0=None, keep="best")
    curve = best.info["fit_acc_curve"]
    assert len(curve) == 13 and curve[0] == pytest.approx(uni_acc)  # the start, then after each of 12 steps
    assert best.info["fit_acc"] == max(curve) == curve[best.info["kept_epoch"]]
    assert ev.accuracy(best.state, "fit") == pytest.approx(max(curve))
    assert ev.accuracy(best.state, "fit") >= max(uni_acc, ev.accuracy(last.state, "fit"))
    assert best.info["loss"] == last.info["loss"]  # the same trajectory; only the returned epoch differs
    # train_mode: the step's forward runs with dropout, so each epoch is scored by its own eval forward
    tm = learned(states, ev, epochs=3, lr=30.0, init="ones", t0=None, keep="best", train_mode=True)
    assert ev.accuracy(tm.state, "fit") == pytest.approx(tm.info["fit_acc"]) and not ev.model.training
    with pytest.raises(ValueError, match="keep"):
        learned(states, ev, epochs=1, keep="first")


def test_learned_train_mode_dropout_follows_the_soup_seed(setup):
    d, ev, states = setup
    drop = Evaluator(GCN(16, 16, 4, dropout=0.5).eval(), d.x, d.edge_index, d.y, ev.masks)
    parts = make_parts("random", d.edge_index, d.num_nodes, 4, d.val_mask, 0)
    for strategy, kw in ((learned, {}), (partition_learned, {"parts": parts, "num_parts_per_step": 2})):
        before = torch.get_rng_state()
        runs = [
            strategy(states, drop, epochs=4, lr=10.0, init="ones", train_mode=True, seed=s, **kw).info
            for s in (0, 0, 1)
        ]
        assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left as it was
        assert runs[0]["loss"] == runs[1]["loss"] and runs[0]["coefficients"] == runs[1]["coefficients"]
        assert runs[0]["loss"][0] != runs[2]["loss"][0]  # another seed, other dropout masks (same start)
        evals = strategy(states, drop, epochs=4, lr=10.0, init="ones", train_mode=False, seed=0, **kw).info
        assert evals["loss"][0] != runs[0]["loss"][0]  # dropout is on in the fit forward
        assert not drop.model.training


def test_learned_greedy_init_starts_at_the_greedy_soup(setup):
    d, ev, states = setup
    g = greedy(states, ev)
    res = learned(states, ev, epochs=0, init="greedy")
    assert res.info["greedy_kept"] == g.info["kept"]
    assert all(torch.allclose(res.state[k], g.state[k], atol=1e-5) for k in g.state)
    fitted = learned(states, ev, epochs=10, lr=10.0, init="greedy", keep="best")
    assert ev.accuracy(fitted.state, "fit") >= g.info["fit_acc"]  # keep=best includes the (greedy) start
    parts = make_parts("random", d.edge_index, d.num_nodes, 4, d.val_mask, 0)
    for bad in ({"init": "greedy"}, {"keep": "best"}):  # both need full-graph evaluations
        with pytest.raises(ValueError, match="partition_learned"):
            partition_learned(states, ev, parts=parts, epochs=1, **bad)


def test_pls_steps_cover_every_validation_node(setup):
    d, ev, states = setup
    K, R = 8, 3
    parts = make_parts("metis", d.edge_index, d.num_nodes, K, d.val_mask, 0)
    assert parts.unique().numel() == K
    res = partition_learned(states, ev, parts=parts, num_parts_per_step=R, epochs=math.ceil(K / R), lr=1.0)
    assert res.info["fit_covered"] == 1.0
    assert res.info["max_step_nodes"] < d.num_nodes  # only part of the graph per step
    # random fallback, and the schedule's subgraphs contain only edges inside the chosen parts
    rparts = make_parts("random", d.edge_index, d.num_nodes, K, d.val_mask, 0)
    counts = torch.bincount(rparts[d.val_mask])
    assert counts.max() - counts.min() <= 1
    cut = lambda p: int((p[d.edge_index[0]] != p[d.edge_index[1]]).sum())  # noqa: E731
    assert cut(parts) < 0.6 * cut(rparts)  # METIS really ran (pymetis is a dependency), not the random fallback
    sched = PartitionSchedule(rparts, d.edge_index, R, 0)
    nodes, ei = sched.next()
    assert ei.numel() == 0 or int(ei.max()) < nodes.numel()


def test_pls_parts_are_checked_and_steps_without_fit_nodes_are_skipped(setup, caplog):
    d, ev, states = setup
    n_fit = int(d.val_mask.sum())
    for method in ("metis", "random"):  # more parts than fit nodes: one clear error (METIS would degenerate)
        with pytest.raises(ValueError, match=rf"num_parts must be in \[1, {n_fit}\]"):
            make_parts(method, d.edge_index, d.num_nodes, n_fit + 1, d.val_mask, 0)
    with pytest.raises(ValueError, match="partition must be one of metis, random"):
        make_parts("spectral", d.edge_index, d.num_nodes, 4, d.val_mask, 0)
    # as many parts as fit nodes: METIS leaves some empty; the ids come back compact (no empty part)
    parts = make_parts("metis", d.edge_index, d.num_nodes, n_fit, d.val_mask, 0)
    assert torch.equal(parts.unique(), torch.arange(int(parts.max()) + 1))
    # one part per step, and a part with no fit node: its steps make no update (before: a NaN loss)
    only = (~d.val_mask).long()  # part 0: the fit nodes; part 1: the others, no fit node
    res = partition_learned(states, ev, parts=only, num_parts_per_step=1, epochs=6, lr=1.0)
    assert res.info["empty_steps"] == 3 and len(res.info["loss"]) == 3
    assert all(math.isfinite(v) for v in res.info["loss"]) and all(
        math.isfinite(c) for cs in res.info["coefficients"].values() for c in cs
    )
    assert "no fit node" in caplog.text


def test_holdout_split():
    val = torch.zeros(100, dtype=torch.bool)
    val[10:60] = True
    fit, select = split_holdout(val, 0)
    assert not (fit & select).any() and torch.equal(fit | select, val) and int(fit.sum()) == 25


def test_soup_task_end_to_end_and_ingredient_reuse(tmp_path):
    cfg = make_cfg(SYN + ["soup=learned", "soup.ingredients=4", "soup.params.epochs=10", "soup.holdout=true"], tmp_path)
    res = run_soup(cfg)
    zoo = Zoo(tmp_path / "zoo")
    soups = zoo.df(kind="soup")
    runs = zoo.df(kind="run")
    assert len(soups) == 1 and len(runs) == 4
    assert runs.init_id.nunique() == 1 and sorted(runs.seed) == [0, 1, 2, 3]
    rec = zoo[res["run_id"]].record
    assert rec["strategy"] == "learned" and sorted(rec["ingredients"]) == sorted(runs.run_id)
    for key in (
        "soup/val_acc",
        "soup/test_acc",
        "soup/time_s",
        "soup/peak_mem_mb",
        "ingredients/best_test_acc",
        "ingredients/mean_test_acc",
    ):
        assert key in rec["metrics"]
    assert (tmp_path / "out" / "soup_learned.png").is_file()
    model = zoo.load(res["run_id"])  # the soup loads back into the backbone
    assert sum(p.numel() for p in model.parameters()) > 0
    # soup/unsplit_acc scores the stored soup on the labelled nodes that are in no split
    from gnnzoo.data import load_graph
    from gnnzoo.soups.task import unsplit_mask

    d = load_graph(cfg).data
    rest = unsplit_mask(d)
    assert rest is not None and not (rest & (d.val_mask | d.test_mask | d.train_mask)).any()
    with torch.no_grad():
        pred = model.eval()(d.x, d.edge_index).argmax(-1)
    assert rec["metrics"]["soup/unsplit_acc"] == pytest.approx(float((pred[rest] == d.y[rest]).float().mean()))
    # another strategy reuses the 4 ingredients from the zoo instead of training them again
    res2 = run_soup(make_cfg(SYN + ["soup=gis", "soup.ingredients=4", "soup.params.granularity=5"], tmp_path))
    assert len(Zoo(tmp_path / "zoo").df(kind="run")) == 4 and res2["run_id"] != res["run_id"]
    # from_zoo with a filter
    res3 = run_soup(make_cfg(SYN + ["soup=uniform", "+soup.from_zoo.dataset=synthetic"], tmp_path))
    assert res3["soup/test_acc"] > 0
    # zoo.enabled=false: no soup entry, but fresh ingredients still go to the zoo (the soup reads them there)
    res4 = run_soup(
        make_cfg(SYN + ["soup=uniform", "soup.ingredients=2", "soup.seed_offset=50", "zoo.enabled=false"], tmp_path)
    )
    assert res4["entry_dir"] is None
    after = Zoo(tmp_path / "zoo")
    assert len(after.df(kind="run")) == 6 and len(after.df(kind="soup")) == 3
    # every soup names its ingredients as parents, and the zoo answers "what was made from this run?"
    made_from = after.df(kind="soup", parent=sorted(runs.run_id)[0])
    assert sorted(made_from.run_id) == sorted([res["run_id"], res2["run_id"], res3["run_id"]])
    assert after[res["run_id"]].record["parents"] == sorted(runs.run_id)
    assert after.df(parent="no-such-run").empty


def test_bad_soup_params_fail_before_any_ingredient_trains(tmp_path):
    for bad, match in (
        (["soup=learned", "soup.params.init=bogus"], "soup.params.init"),
        (["soup=learned", "soup.params.optimizer=lbfgs"], "soup.params.optimizer"),
        (["soup=learned", "soup.params.beta_lr=-1"], "soup.params.beta_lr"),
        (["soup=partition_learned", "++soup.params.keep=best"], "partition_learned"),
        (["soup=partition_learned", "soup.params.num_parts_per_step=40"], "1 <= R <= K"),
        (
            ["soup=partition_learned", "soup.params.partition=spectral"],
            "soup.params.partition='spectral': expected one of metis, random",
        ),
        (["soup=learned", "soup.params.lr=-1"], "soup.params.lr=-1 is out of range: expected a number in \\(0, inf\\)"),
        (["soup=partition_learned", "soup.params.epochs=0"], "soup.params.epochs=0: expected an integer >= 1"),
        (["soup=learned", "soup.params.t0=0"], "soup.params.t0"),
        (["soup=gis", "soup.params.granularity=1"], "soup.params.granularity"),
        (["task=soup"], "task=soup needs a strategy"),
    ):
        with pytest.raises(ValueError, match=match):
            run_soup(make_cfg(SYN + bad + ["soup.ingredients=2"], tmp_path))
    assert not (tmp_path / "zoo").exists() or len(Zoo(tmp_path / "zoo").df()) == 0


def test_soup_ingredients_must_come_from_the_same_graph(tmp_path):
    """Same dataset name, another graph (the synthetic loader's seed): the soup refuses, writes nothing."""
    for s in (0, 1):
        train(make_cfg(SYN + ["trainer.max_epochs=2", f"seed={s}", "init_seed=0"], tmp_path))
    zoo = Zoo(tmp_path / "zoo")
    before = len(zoo.df())
    with pytest.raises(IngredientMismatchError, match=r"another graph .*dataset.loader.seed: 0 \(ingredient\) vs 5"):
        run_soup(
            make_cfg(SYN + ["soup=uniform", "+soup.from_zoo.dataset=synthetic", "dataset.loader.seed=5"], tmp_path)
        )
    assert len(zoo.df()) == before and zoo.df(kind="soup").empty
    # ingredients among themselves: two graphs in one soup
    train(make_cfg(SYN + ["trainer.max_epochs=2", "seed=2", "init_seed=0", "dataset.loader.seed=5"], tmp_path))
    with pytest.raises(IngredientMismatchError, match="different graphs"):
        from_entries(list(zoo.entries()))


def test_backbone_task_refuses_a_soup_strategy(tmp_path):
    from gnnzoo.tasks.run import run_task
    from gnnzoo.utils.errors import ConfigError

    cfg = make_cfg(SYN + ["task=backbone", "soup=uniform"], tmp_path)
    with pytest.raises(ConfigError, match="soup=uniform given with task=backbone"):
        run_task(cfg)
    with pytest.raises(ConfigError, match="one method per run"):
        run_task(make_cfg(SYN + ["soup=uniform", "pruning=one_shot"], tmp_path))
    assert make_cfg(SYN + ["soup=uniform"], tmp_path).task._target_ == "gnnzoo.soups.task.run"


def test_soup_without_fit_nodes_raises_clear_error(tmp_path):
    one_val = SYN + ["trainer.max_epochs=2", "soup.ingredients=2", "dataset.loader.val_fraction=0.002"]  # 1 val node
    with pytest.raises(ValueError, match="too few to split in two halves"):
        run_soup(make_cfg(one_val + ["soup=learned", "soup.holdout=true"], tmp_path))
    assert 0 <= run_soup(make_cfg(one_val + ["soup=learned"], tmp_path))["soup/test_acc"] <= 1  # unsplit: it soups


def test_mismatched_ingredients_raise_clear_error(tmp_path):
    a = train(make_cfg(SYN + ["trainer.max_epochs=2"], tmp_path))
    b = train(make_cfg(SYN + ["trainer.max_epochs=2", "backbone.hidden_channels=32"], tmp_path))
    zoo = Zoo(tmp_path / "zoo")
    with pytest.raises(IngredientMismatchError, match=r"backbone.hidden_channels: 16 vs 32"):
        from_entries([zoo[a["run_id"]], zoo[b["run_id"]]])
    with pytest.raises(IngredientMismatchError, match="different architectures"):
        run_soup(make_cfg(SYN + ["soup=uniform", "+soup.from_zoo.dataset=synthetic"], tmp_path))


@pytest.mark.slow
def test_soup_multirun_compares_all_strategies(tmp_path):
    from test_sweeps import run_train

    p = run_train(
        [
            "-m",
            "soup=uniform,greedy,gis,learned,partition_learned",
            "soup.ingredients=4",
            "dataset=synthetic",
            "logger=none",
            "trainer.max_epochs=10",
            "++soup.params.epochs=10",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "sweep summary: 5 done, 0 skipped, 0 failed" in p.stdout
    zoo = Zoo(tmp_path / "zoo")
    soups = zoo.df(kind="soup")
    assert sorted(soups["cfg.soup.strategy"]) == sorted(["uniform", "greedy", "gis", "learned", "partition_learned"])
    assert len(zoo.df(kind="run")) == 4  # the ingredients were trained once and reused


def test_unsplit_mask_is_labelled_nodes_in_no_split():
    from torch_geometric.data import Data

    from gnnzoo.soups.task import unsplit_mask

    n = 10
    masks = {k: torch.zeros(n, dtype=torch.bool) for k in ("train_mask", "val_mask", "test_mask")}
    masks["train_mask"][:2] = True
    masks["val_mask"][2:4] = True
    masks["test_mask"][4:7] = True
    y = torch.arange(n) % 3
    y[9] = -1  # unlabelled
    rest = unsplit_mask(Data(y=y, **masks))
    assert rest.tolist() == [False] * 7 + [True, True, False]
    masks["test_mask"][7:] = True  # every node in a split: nothing left to score on
    assert unsplit_mask(Data(y=y, **masks)) is None
