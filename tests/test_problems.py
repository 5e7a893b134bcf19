"""Link prediction and graph classification: the splits, the models, runs end to end, and the errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.data import Data

from conftest import make_cfg, shared_data_dir
from gnnzoo.data.graph import load_graph
from gnnzoo.data.links import hits_at_k, split_edges
from gnnzoo.data.tu import fold_masks
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.errors import ConfigError
from gnnzoo.zoo.ids import run_id
from gnnzoo.zoo.store import Zoo

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=300", "trainer.max_epochs=5"]


def _pairs(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in edge_index.t().tolist()}


def test_link_split_is_seeded_disjoint_and_keeps_evaluation_edges_out_of_message_passing(tmp_path):
    graph = load_graph(make_cfg(["problem=link", *SYN], tmp_path))
    d = graph.data
    mp = _pairs(d.edge_index)
    val_pos = _pairs(d.val_edges[:, d.val_labels == 1])
    test_pos = _pairs(d.test_edges[:, d.test_labels == 1])
    every = _pairs(load_graph(make_cfg(SYN, tmp_path)).data.edge_index)
    assert not (mp & val_pos) and not (mp & test_pos) and not (val_pos & test_pos)
    assert mp | val_pos | test_pos == every  # each undirected edge is in exactly one part
    # message passing is undirected: both directions of every training edge
    assert {(a, b) for a, b in d.edge_index.t().tolist()} == {(b, a) for a, b in d.edge_index.t().tolist()}
    assert _pairs(d.train_pos) == mp
    for split in ("val", "test"):
        labels = d[f"{split}_labels"]
        assert int(labels.sum()) * 2 == labels.numel()  # one negative per positive
        assert not (_pairs(d[f"{split}_edges"][:, labels == 0]) & every)  # negatives are non-edges
    # the split depends on split_seed only: another run seed, and the global RNG, leave it as it is
    torch.manual_seed(123)
    again = split_edges(load_graph(make_cfg(SYN, tmp_path)).data, 0.05, 0.1, 0)
    assert torch.equal(again.test_edges, d.test_edges) and torch.equal(again.edge_index, d.edge_index)
    other = split_edges(load_graph(make_cfg(SYN, tmp_path)).data, 0.05, 0.1, 1)
    assert not torch.equal(other.test_edges, d.test_edges)


def test_hits_at_k_counts_positives_above_the_kth_negative():
    neg = torch.tensor([0.9, 0.8, 0.1, 0.0])
    assert hits_at_k(torch.tensor([0.95, 0.85, 0.5]), neg, 2) == pytest.approx(2 / 3)
    assert hits_at_k(torch.tensor([0.95]), neg, 1) == 1.0
    assert torch.isnan(torch.tensor(hits_at_k(torch.tensor([1.0]), neg, 5)))


def test_fold_masks_are_a_stratified_cross_validation():
    y = torch.tensor([0] * 60 + [1] * 40)
    tests = []
    for fold in range(10):
        tr, va, te = fold_masks(y, 10, fold, 0.1, 0)
        assert not (tr & va).any() and not (tr & te).any() and not (va & te).any()
        assert bool((tr | va | te).all())
        assert int(y[te].sum()) == 4 and int(te.sum()) == 10  # stratified: 6 / 4 in every test fold
        tests.append(te)
    assert torch.stack(tests).sum(0).eq(1).all()  # every graph is tested exactly once
    with pytest.raises(ValueError, match="fold=10"):
        fold_masks(y, 10, 10, 0.1, 0)


def test_link_run_trains_scores_and_records_link_metrics(tmp_path):
    cfg = make_cfg(["problem=link", "problem.decoder=mlp", *SYN], tmp_path)
    out = train(cfg)
    for key in ("val/auc", "val/ap", "val/hits@20", "val/acc", "test/auc", "test/ap", "test/hits@20", "test/acc"):
        assert 0.0 <= out[key] <= 1.0, key
    rec = json.loads((tmp_path / "zoo" / out["run_id"] / "record.json").read_text())
    assert rec["config"]["problem"]["name"] == "link"
    assert rec["best_val"] == pytest.approx(out["val/auc"])
    assert rec["test_at_best_val"] == pytest.approx(out["test/auc"])
    assert "val/auc" in rec["curves"] and len(rec["curves"]["val/auc"]) == 5
    weights = Zoo(tmp_path / "zoo")[out["run_id"]].state_dict()
    assert any(k.startswith("decoder.") for k in weights) and any(k.startswith("gnn.") for k in weights)


def test_link_learns_on_cora(tmp_path, real_data, cache_dir):
    cfg = make_cfg(
        ["problem=link", "trainer.max_epochs=100", f"paths.data_dir={real_data}", f"paths.cache_dir={cache_dir}"],
        tmp_path,
    )
    out = train(cfg)
    assert out["test/auc"] > 0.85  # GAE reports 91.0 after 200 epochs; a broken split or decoder sits near 0.5


def test_graph_classification_on_mutag(tmp_path):
    data_dir = shared_data_dir()
    if data_dir is None:
        pytest.skip("GNNZOO_DATA_DIR not set")
    over = ["problem=graph", "dataset=mutag", "backbone=gin", "trainer.max_epochs=30", "fold=3"]
    cfg = make_cfg(over, tmp_path, data_dir=data_dir)
    out = train(cfg)
    assert 0.0 <= out["test/acc"] <= 1.0
    # it learns (66% of MUTAG is one class, so an accuracy bar would pass a constant predictor): the training loss
    # falls, and the graphs get more than one predicted class
    curves = Zoo(tmp_path / "zoo")[out["run_id"]].record["curves"]
    assert min(curves["train/loss"][-5:]) < 0.8 * curves["train/loss"][0]
    from gnnzoo.backbones import build_backbone

    model = build_backbone(cfg)
    model.load_state_dict(Zoo(tmp_path / "zoo")[out["run_id"]].state_dict())
    model.eval()
    d = load_graph(cfg).data
    with torch.no_grad():
        pred = model(d.x, d.edge_index, d.batch, int(d.y.numel())).argmax(-1)
    assert pred.unique().numel() == 2
    g = load_graph(cfg)
    assert int(g.data.test_mask.sum()) in (18, 19) and g.data.y.numel() == 188
    weights = Zoo(tmp_path / "zoo")[out["run_id"]].state_dict()
    assert "head.weight" in weights and weights["head.weight"].shape == (2, 64)
    # another fold is another run
    assert run_id(make_cfg([*over[:-1], "fold=4"], tmp_path, data_dir=data_dir)) != out["run_id"]


def test_problem_enters_the_run_id_and_node_ids_stay(tmp_path):
    node = run_id(make_cfg(SYN, tmp_path))
    assert run_id(make_cfg(["problem=node", *SYN], tmp_path)) == node
    link = run_id(make_cfg(["problem=link", *SYN], tmp_path))
    assert link != node
    assert run_id(make_cfg(["problem=link", "problem.decoder=mlp", *SYN], tmp_path)) != link


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["problem=graph"], "does not support problem=graph"),
        (["problem=link", "dataset=mutag"], "does not support problem=link"),
        (["fold=3"], "fold=3 is the test fold of graph classification"),
        (["problem=link", "monitor.metric=val/foo"], "val/auc, val/ap, val/hits@20"),
        (["monitor.metric=val/auc"], "monitor.metric='val/auc' is not a metric"),
        (["problem=link", "data=neighbor"], "neighbour sampling"),
        (["problem=link", "problem.decoder=bilinear"], "problem.decoder='bilinear'"),
        (["problem=graph", "dataset=mutag", "problem.readout=max"], "problem.readout='max'"),
        (["problem=graph", "dataset=mutag", "fold=10"], "fold=10"),
    ],
)
def test_bad_problem_settings_fail_before_training(overrides, match, tmp_path):
    data_dir = shared_data_dir()
    if "dataset=mutag" in overrides and data_dir is None:
        pytest.skip("GNNZOO_DATA_DIR not set")
    cfg = make_cfg([*overrides, "trainer.max_epochs=1"], tmp_path, data_dir=data_dir)
    with pytest.raises((ConfigError, ValueError), match=match):
        train(cfg)
    assert not (tmp_path / "zoo").exists() or not any((tmp_path / "zoo").iterdir())


def test_methods_refuse_problems_they_do_not_solve(tmp_path):
    from gnnzoo.generate.task import run as generate_run

    cfg = make_cfg(["problem=graph", "dataset=synthetic", "dataset.problems=[graph]"], tmp_path, config_name="generate")
    with pytest.raises(ConfigError, match="task=generate does not run on problem=graph"):
        generate_run(cfg)


def test_gnn_diff_generates_link_predictors_scored_by_auc(tmp_path):
    """GNN-Diff on link prediction (its paper's second task): the light search, the collection and the condition
    learn the link task; samples and controls are scored by validation / test AUC."""
    from gnnzoo.generate.task import run as generate_run

    fast = [
        "generator.search.fraction=0.03",
        "generator.collect.k=8",
        "generator.collect.restarts=2",
        "generator.autoencoder.steps=40",
        "generator.diffusion.steps=40",
        "generator.diffusion.sampler=ddim",
        "generator.diffusion.sample_steps=5",
        "generator.sample.n=6",
        "generator.condition.steps=5",
        "generator.diffusion.channels=[16,32]",
    ]
    out = generate_run(
        make_cfg(["problem=link", *SYN, "trainer.max_epochs=8", *fast], tmp_path, config_name="generate")
    )
    assert 0.0 <= out["test/auc"] <= 1.0 and "test/acc" not in out
    assert out["value"] == out["gen/best_val"] == out["val/auc"]
    for key in ("gen/search_best_test", "gen/baseline_perturb_test", "gen/baseline_soup_test"):
        assert 0.0 <= out[key] <= 1.0
    best = Zoo(tmp_path / "zoo")[out["stages"]["best"]]
    assert best.record["problem"] == "link" and best.record["metrics"]["val/auc"] == best.record["best_val"]
    names = Zoo(tmp_path / "zoo")[out["stages"]["collect"]].record["generator"]["names"]
    assert names and all(k.startswith("gnn.layers.1.") for k in names)  # the backbone's last layer


def test_many_seeds_of_a_link_run_train_batched(tmp_path):
    """Link prediction shares one graph: seeds train together (inner-product decoder), each a loadable link
    predictor with its own curves; an MLP decoder's seeds train one by one."""
    from gnnzoo.tasks.backbone import run

    cfg = make_cfg(["problem=link", "zoo.parallel_models=3", *SYN, "trainer.max_epochs=30"], tmp_path)
    out = run(cfg)
    zoo = Zoo(tmp_path / "zoo")
    recs = [zoo[r].record for r in out["run_ids"]]
    assert len(set(out["run_ids"])) == 3 and all(r["engine"] == "batched" for r in recs)
    assert all(
        r["best_val"] == r["metrics"]["val/auc"] and r["test_at_best_val"] == r["metrics"]["test/auc"] for r in recs
    )
    assert all(r["metrics"]["test/auc"] > 0.6 for r in recs)  # they learn (a broken loss sits at 0.5)
    assert len({round(r["metrics"]["test/auc"], 6) for r in recs}) == 3  # each seed its own negatives and init
    model = zoo.load(out["run_ids"][0])
    assert hasattr(model, "score")  # the zoo rebuilds the link predictor
    mlp = run(make_cfg(["problem=link", "problem.decoder=mlp", "zoo.parallel_models=2", *SYN], tmp_path))
    assert all(zoo[r].record["engine"] == "single" for r in mlp["run_ids"])


def test_split_edges_refuses_ratios_that_leave_no_training_edges():
    d = Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), num_nodes=3)
    with pytest.raises(ValueError, match="sum below 1"):
        split_edges(d, 0.5, 0.6, 0)


def test_report_averages_the_folds_of_a_cross_validation(tmp_path):
    from gnnzoo.report import aggregate, collect

    data_dir = shared_data_dir()
    if data_dir is None:
        pytest.skip("GNNZOO_DATA_DIR not set")
    for fold in (0, 1, 2):
        over = ["problem=graph", "dataset=mutag", "backbone=gin", "trainer.max_epochs=2", f"fold={fold}"]
        train(make_cfg(over, tmp_path, data_dir=data_dir))
    agg, swept = aggregate(collect(tmp_path / "zoo"))
    assert len(agg) == 1 and int(agg.seeds.iloc[0]) == 3 and "problem.fold" not in swept
    assert agg.test_at_best_val_std.iloc[0] >= 0.0


@pytest.mark.parametrize(
    "overrides,n_extra",
    [
        (["problem=link", "problem.decoder=mlp", "backbone=sage"], 4),  # decoder.lin{1,2}.{weight,bias}
        (["problem=link", "backbone=gat"], 0),  # the dot decoder has no parameters
        (["problem=graph", "dataset.problems=[graph]", "backbone=gin"], 2),  # head.{weight,bias}
    ],
)
def test_link_and_graph_checkpoints_are_neural_graphs_exactly(overrides, n_extra, tmp_path):
    """Decoder and head parameters are layers of the neural graph; weights -> graph -> weights is exact."""
    from gnnzoo.backbones import build_backbone
    from gnnzoo.weightspace.graph import from_graph, spec_of, to_graph

    cfg = make_cfg([*overrides, "dataset=synthetic"], tmp_path)
    state = build_backbone(cfg).state_dict()
    spec = spec_of(cfg.backbone.name, state)
    back = from_graph(spec, to_graph(spec, state))
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    extra = [k for k in state if not k.startswith("gnn.")]
    assert len(extra) == n_extra and all(any(k in (lin.weight, lin.bias) for lin in spec.layers) for k in extra)


def test_encoder_learns_from_a_zoo_of_link_predictors(tmp_path):
    """task=encoder reads link checkpoints (decoder included) as neural graphs and predicts their val/auc."""
    from gnnzoo.tasks.run import run_task

    for i in range(6):
        over = [f"seed={i}", f"optimizer.lr={[0.001, 0.01, 0.05][i % 3]}", "zoo.snapshot_every=2"]
        run_task(make_cfg(["problem=link", "problem.decoder=mlp", *SYN, *over], tmp_path))
    from gnnzoo.weightspace.task import run as encoder_run

    out = encoder_run(make_cfg([*SYN, "encoder=ng_gnn", "encoder.epochs=2", "encoder.target=val/auc"], tmp_path))
    assert -1.0 <= out["encoder/val_tau"] <= 1.0  # a number: the encoder trained and was scored
    rec = json.loads((tmp_path / "zoo" / out["run_id"] / "record.json").read_text())
    assert rec["kind"] == "encoder"
    runs = [e for e in Zoo(tmp_path / "zoo").entries() if e.record["kind"] == "run"]
    assert {e.record["problem"] for e in runs} == {"link"}
    with pytest.raises(ConfigError, match="encoder=probe runs node classifiers"):
        encoder_run(make_cfg([*SYN, "encoder=probe", "encoder.epochs=1", "encoder.target=val/auc"], tmp_path))


def test_encoder_reads_graph_classifiers_of_a_graph_dataset(tmp_path):
    """A zoo of MUTAG classifiers (head included): the input basis loads MUTAG as the graph dataset it is."""
    from gnnzoo.tasks.run import run_task
    from gnnzoo.weightspace.task import run as encoder_run

    data_dir = shared_data_dir()
    if data_dir is None:
        pytest.skip("GNNZOO_DATA_DIR not set")
    for i in range(6):
        over = ["problem=graph", "dataset=mutag", "backbone=gin", "trainer.max_epochs=6", "zoo.snapshot_every=2"]
        run_task(make_cfg([*over, f"seed={i}", f"optimizer.lr={[0.0003, 0.003, 0.03][i % 3]}"], tmp_path, data_dir))
    # val/loss: after 6 epochs most of these runs still predict the majority class (val/acc ties)
    out = encoder_run(make_cfg(["encoder=stat", "encoder.epochs=2", "encoder.target=val/loss"], tmp_path, data_dir))
    assert -1.0 <= out["encoder/val_tau"] <= 1.0


@pytest.mark.parametrize("strategy", ["uniform", "greedy", "gis", "learned", "partition_learned"])
def test_soups_of_link_predictors_are_scored_by_auc(strategy, tmp_path):
    from gnnzoo.soups.task import run as soup_run

    over = [f"soup={strategy}", "soup.ingredients=3", "problem.decoder=mlp"]
    if strategy in ("learned", "partition_learned"):
        over.append("soup.params.epochs=5")
    if strategy == "partition_learned":
        over += ["soup.params.num_parts=4", "soup.params.num_parts_per_step=2"]
    out = soup_run(make_cfg(["problem=link", *SYN, *over], tmp_path))
    assert 0.5 <= out["soup/test_auc"] <= 1.0 and out["value"] == out["soup/val_auc"]
    assert "soup/test_acc" not in out
    rec = json.loads((tmp_path / "zoo" / out["run_id"] / "record.json").read_text())
    assert rec["kind"] == "soup" and len(rec["parents"]) == 3
    if strategy == "partition_learned":  # steps fitted the validation pairs inside their parts
        assert 0.0 < rec["coefficients"]["fit_covered"] <= 1.0 and rec["coefficients"]["num_parts"] == 4
    weights = Zoo(tmp_path / "zoo")[out["run_id"]].state_dict()
    assert any(k.startswith("decoder.") for k in weights)


def test_soups_of_graph_classifiers_learned_and_partitioned(tmp_path):
    from gnnzoo.soups.task import run as soup_run

    data_dir = shared_data_dir()
    if data_dir is None:
        pytest.skip("GNNZOO_DATA_DIR not set")
    base = ["problem=graph", "dataset=mutag", "backbone=gin", "trainer.max_epochs=5", "soup.ingredients=3"]
    out = soup_run(make_cfg([*base, "soup=learned", "soup.params.epochs=3"], tmp_path, data_dir))
    assert 0.0 <= out["soup/test_acc"] <= 1.0
    pls = ["soup=partition_learned", "soup.params.partition=random", "soup.params.num_parts=4"]
    out = soup_run(
        make_cfg([*base, *pls, "soup.params.num_parts_per_step=2", "soup.params.epochs=4"], tmp_path, data_dir)
    )
    assert 0.0 <= out["soup/test_acc"] <= 1.0
    # ingredients of another fold would leak the soup's test graphs: refused
    with pytest.raises(Exception, match="different problems or splits|ingredients solve"):
        soup_run(make_cfg([*base, "soup=uniform", "fold=1", "soup.from_zoo={dataset: mutag}"], tmp_path, data_dir))


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["problem=graph", "dataset=mutag", "soup=partition_learned"], "soup.params.partition=random"),
    ],
)
def test_soup_options_a_problem_cannot_honour_fail_before_training(overrides, match, tmp_path):
    from gnnzoo.soups.task import run as soup_run

    with pytest.raises(ConfigError, match=match):
        soup_run(make_cfg([*overrides, "dataset.problems=[node,link,graph]"], tmp_path, shared_data_dir()))
    assert not (tmp_path / "zoo").exists() or not any((tmp_path / "zoo").iterdir())


PRUNE_LINK = {
    "one_shot": ["pruning.weight_sparsity=0.5", "pruning.graph_sparsity=0.2"],
    "imp_ugs": ["pruning.weight_sparsity=0.36", "pruning.graph_sparsity=0.09", "pruning.rounds=2"],
    "fastglt": [
        "pruning.weight_sparsity=0.5",
        "pruning.graph_sparsity=0.2",
        "pruning.pretrain_epochs=2",
        "pruning.denoise_epochs=4",
        "pruning.delta=2",
    ],
}


@pytest.mark.parametrize("method", sorted(PRUNE_LINK))
def test_link_tickets_prune_message_passing_edges_only(method, tmp_path):
    """Weights of the backbone and message-passing edges are pruned; the supervision and evaluation edges are
    untouched (the ticket's edge mask is over the message-passing graph), and the ticket scores link metrics."""
    from gnnzoo.pruning.task import run as run_prune

    cfg = make_cfg(["problem=link", *SYN, "trainer.max_epochs=6", f"pruning={method}", *PRUNE_LINK[method]], tmp_path)
    out = run_prune(cfg)
    entry = Zoo(tmp_path / "zoo")[out["run_id"]]
    info = entry.record["pruning"]
    masks = entry.ticket()
    keep = masks.pop("edge_keep")
    data = load_graph(cfg).data
    assert info["edges_total"] == keep.numel() == data.train_pos.size(1)  # undirected message-passing edges
    assert info["weight_sparsity"] > 0.3 and info["graph_sparsity"] > 0.08
    assert all(k.startswith("gnn.layers.") for k in masks)  # the decoder (none here: dot) is never masked
    assert 0.0 <= out["test/auc"] <= 1.0


def test_graph_classifier_weights_prune_and_edges_are_refused(tmp_path):
    from gnnzoo.pruning.task import run as run_prune

    data_dir = shared_data_dir()
    if data_dir is None:
        pytest.skip("GNNZOO_DATA_DIR not set")
    base = ["problem=graph", "dataset=mutag", "backbone=gin", "trainer.max_epochs=4"]
    out = run_prune(make_cfg([*base, "pruning=one_shot", "pruning.weight_sparsity=0.5"], tmp_path, data_dir))
    masks = Zoo(tmp_path / "zoo")[out["run_id"]].ticket()
    assert "edge_keep" not in masks and all(k.startswith("gnn.") for k in masks)
    ugs = ["pruning=imp_ugs", "pruning.weight_sparsity=0.2", "pruning.graph_sparsity=0", "pruning.rounds=1"]
    assert 0.0 <= run_prune(make_cfg([*base, *ugs], tmp_path, data_dir))["test/acc"] <= 1.0  # trainable scores
    with pytest.raises(ConfigError, match="edge masks over a set of graphs are not built"):
        run_prune(make_cfg([*base, "pruning=one_shot", "pruning.graph_sparsity=0.2"], tmp_path, data_dir))


def test_loggers_get_the_problems_metrics_under_the_usual_prefixes(tmp_path):
    import csv

    train(make_cfg(["problem=link", *SYN, "logger=csv"], tmp_path))
    (path,) = list((tmp_path / "out" / "csv").rglob("metrics.csv"))
    columns = set(next(csv.reader(path.open())))
    assert {"val/auc", "val/ap", "val/hits@20", "val/acc", "train/loss"} <= columns
    assert {"test/auc", "test/hits@20", "best/test_auc", "best/val_auc"} <= columns


def test_a_link_ticket_loads_from_the_zoo_and_runs_on_its_kept_edges(tmp_path):
    from gnnzoo.pruning.task import run as run_prune

    over = ["problem=link", *SYN, "pruning=one_shot", "pruning.weight_sparsity=0.5", "pruning.graph_sparsity=0.3"]
    cfg = make_cfg(over, tmp_path)
    out = run_prune(cfg)
    ticket = Zoo(tmp_path / "zoo").load(out["run_id"])
    d = load_graph(cfg).data
    with torch.no_grad():
        z = ticket(d.x, d.edge_index)
        full = ticket.backbone(d.x, d.edge_index)  # the same weights on every edge
        logits = ticket.backbone.score(z, d.test_edges)
    assert not torch.allclose(z, full)  # the pruned edges carry no message
    from torchmetrics.functional.classification import binary_auroc

    assert float(binary_auroc(logits, d.test_labels.long())) == pytest.approx(out["test/auc"], abs=1e-5)
