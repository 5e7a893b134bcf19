"""generate.py (GNN-Diff): the autoencoder and the DDPM on toys, the pipeline end to end on synthetic data
(stages in the zoo, resume, loadable samples, selection blind to test labels), and the clear errors."""

import shutil

import pytest
import torch

from conftest import make_cfg
from gnnzoo.generate.autoencoder import ParamAutoencoder
from gnnzoo.generate.diffusion import Denoiser, make_scheduler, sample
from gnnzoo.generate.evaluate import SetEvaluator, nn_ratios, select
from gnnzoo.generate.module import GeneratorModule
from gnnzoo.generate.params import Normalizer, ParamCodec, target_names
from gnnzoo.generate.search import grid_points
from gnnzoo.generate.stages import SAMPLES
from gnnzoo.tasks.run import run_task
from gnnzoo.utils.errors import ConfigError
from gnnzoo.weightspace.encoder import TrainedEncoder
from gnnzoo.zoo import Zoo

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=300", "logger=none", "trainer.max_epochs=15"]
FAST = [
    "generator.search.fraction=0.03",
    "generator.collect.k=8",
    "generator.collect.restarts=2",
    "generator.autoencoder.steps=60",
    "generator.diffusion.steps=60",
    "generator.diffusion.sampler=ddim",
    "generator.diffusion.sample_steps=10",
    "generator.sample.n=12",
    "generator.condition.steps=10",
    "generator.diffusion.channels=[16,32]",
]


def _fit(module, data, steps, bs=32, lr_seed=0):
    opt = module.configure_optimizers()
    g = torch.Generator().manual_seed(lr_seed)
    for _ in range(steps):
        idx = torch.randint(0, data.size(0), (bs,), generator=g)
        loss = module.ae_loss(data[idx]) if module.stage == "autoencoder" else module.diffusion_loss(data[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if module.ema is not None:
            module.ema.update()
    return float(loss.detach())


def test_the_autoencoder_reconstructs_a_toy_parameter_set():
    torch.manual_seed(0)
    basis = torch.randn(3, 90)
    X = torch.randn(40, 3) @ basis + 0.01 * torch.randn(40, 90)  # 40 "checkpoints" on a 3-dim subspace
    norm = Normalizer(90).fit(X)
    assert torch.allclose(norm.inverse(norm(X)), X, atol=1e-5)
    ae = ParamAutoencoder(90, fold=3, enc_channels=[4, 4, 4, 4], dec_channels=[4, 32, 32, 8])
    assert ae.encode(norm(X)).shape == (40, *ae.latent_shape) and ae.encode(norm(X)).abs().max() <= 1
    m = GeneratorModule(ae, stage="autoencoder", lr=3e-3, weight_decay=0.0, noise_in=1e-3, noise_latent=0.01)
    with torch.no_grad():
        before = float(((ae(norm(X)) - norm(X)) ** 2).mean())
    _fit(m, norm(X), 800)
    ae.eval()
    with torch.no_grad():
        after = float(((ae(norm(X)) - norm(X)) ** 2).mean())
    assert after < 0.1 < before  # the data have unit variance per position: 0.1 is 90% of it explained


def test_the_ddpm_learns_a_2d_toy_distribution_with_per_sample_timesteps():
    torch.manual_seed(0)
    mean = torch.tensor([0.4, -0.3])
    cov = torch.tensor([[0.04, 0.02], [0.02, 0.03]])
    data = torch.distributions.MultivariateNormal(mean, cov).sample((2000,)).view(-1, 1, 2)
    sched = make_scheduler("ddpm", timesteps=1000)
    den = Denoiser(1, channels=[16, 32], d_emb=16)
    m = GeneratorModule(None, den, sched, stage="diffusion", lr=3e-3, weight_decay=0.0, ema_beta=0.99)
    _fit(m, data, 800, bs=128)
    t = m.last_timesteps
    assert t.numel() == 128 and len(t.unique()) > 64  # every sample of a batch at its own timestep
    ddim = make_scheduler("ddim", timesteps=1000)
    z = sample(
        m.sampling_denoiser(), ddim, 1000, (1, 2), steps=25, generator=torch.Generator().manual_seed(1), batch_size=1000
    )
    z = z.view(-1, 2)
    assert (z.mean(0) - mean).abs().max() < 0.06
    assert (torch.cov(z.T) - cov).abs().max() < 0.025
    # an untrained denoiser does not produce this distribution (the test can fail)
    z0 = sample(
        Denoiser(1, channels=[16, 32], d_emb=16).eval(),
        ddim,
        500,
        (1, 2),
        steps=25,
        generator=torch.Generator().manual_seed(1),
        batch_size=500,
    ).view(-1, 2)
    assert (z0.mean(0) - mean).abs().max() > 0.06 or (torch.cov(z0.T) - cov).abs().max() > 0.025


def test_targets_codec_and_memorisation_ratio():
    from gnnzoo.backbones import GCN, GIN

    gcn = GCN(in_channels=10, hidden_channels=8, out_channels=3, num_layers=2)
    assert target_names(gcn, "last") == ["layers.1.bias", "layers.1.lin.weight"]
    assert (
        len(target_names(GIN(in_channels=10, hidden_channels=8, out_channels=3, num_layers=2), "last")) == 4
    )  # eps is a buffer
    assert target_names(gcn, "all") == [n for n, _ in gcn.named_parameters()]
    with pytest.raises(ConfigError, match="not parameters"):
        target_names(gcn, ["layers.7.weight"])
    st = gcn.state_dict()
    codec = ParamCodec.from_state(st, target_names(gcn, "last"))
    v = codec.flatten(st)
    assert v.numel() == 3 * 8 + 3 and torch.equal(
        codec.full_state(st, v)["layers.1.lin.weight"], st["layers.1.lin.weight"]
    )
    X = torch.randn(10, 27)
    assert torch.allclose(nn_ratios(X[:3], X), torch.zeros(3))  # copies: ratio 0
    assert (nn_ratios(X[:3] + 100, X) > 5).all()
    assert len(grid_points({"a": [1, 2, 3, 4], "b": [0, 1, 2, 3, 4]}, 0.1, 42)) == 2


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    cfg = make_cfg(SYN + FAST, tmp, config_name="generate")
    value = run_task(cfg)
    return tmp, cfg, value


def test_generate_runs_end_to_end_and_its_samples_load(pipeline):
    tmp, cfg, value = pipeline
    assert cfg.task._target_ == "gnnzoo.generate.task.run" and cfg.task_name == "generate"
    zoo = Zoo(tmp / "zoo")
    stages = {e.record["generator"]["stage"]: e.run_id for e in zoo.entries() if e.record["kind"] == "generator"}
    assert sorted(stages) == ["autoencoder", "collect", "diffusion"]
    [gid] = zoo.df(kind="generated").run_id
    rec = zoo[gid].record
    m = rec["metrics"]
    assert value == pytest.approx(m["gen/best_val"]) and 0 <= m["test/acc"] <= 1
    for k in ("gen/nn_ratio_median", "gen/nn_ratio_p10", "gen/baseline_perturb_test", "gen/baseline_soup_test"):
        assert k in m
    # the per-parameter Gaussian control, picked by validation like the samples; the share of samples that did not
    # move off the starting point's validation accuracy
    assert 0 <= m["gen/baseline_gaussian_test"] <= 1 and 0 <= m["gen/baseline_gaussian_val"] <= 1
    assert 0 <= m["gen/share_val_equal_base"] <= 1
    assert stages["collect"] in rec["parents"] and rec["parents"] == sorted(rec["parents"])
    assert zoo[stages["diffusion"]].record["parents"] == [stages["autoencoder"]]
    # the selected model loads from the zoo and scores what the record says; every sample loads and runs
    from gnnzoo.data.graph import load_graph

    graph = load_graph(cfg)
    d = graph.data
    model = zoo.load(gid)
    acc = float((model(d.x, d.edge_index).argmax(-1)[d.val_mask] == d.y[d.val_mask]).float().mean())
    assert acc == pytest.approx(m["gen/best_val"], abs=1e-6)
    samples = zoo[gid].file(SAMPLES)
    P = samples["params"]
    assert P.shape[0] == 12 and torch.isfinite(P).all()
    best_state = model.state_dict()
    codec = ParamCodec.from_state(best_state, target_names(model, "last"))
    for i in (0, 5):
        model.load_state_dict(codec.full_state(best_state, P[i]))
        with torch.no_grad():
            out = model(d.x, d.edge_index)
        assert out.shape == (d.num_nodes, graph.num_classes) and torch.isfinite(out).all()
    assert (tmp / "out" / "generate.png").is_file()


def test_generate_resumes_finished_stages(pipeline, monkeypatch, tmp_path):
    tmp, cfg, value = pipeline
    import gnnzoo.generate.search as gsearch
    import gnnzoo.generate.stages as gs
    import gnnzoo.generate.task as gt

    def boom(*a, **k):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(gs, "collect", boom)
    monkeypatch.setattr(gs, "condition_vector", boom)
    monkeypatch.setattr(gsearch, "train_batched", boom)  # the search's runs are in the zoo: not even batched again
    # the search runs are reused through the zoo (train_batched would skip them; here nothing may train at all)
    monkeypatch.setattr(gt, "light_search", lambda c, z: ([z[r] for r in z.df(kind="run").run_id], 0.0))
    res = gt.run(cfg)
    assert res["skipped"] and res["value"] == pytest.approx(value)
    # another sampler re-samples from the trained stages: the sampler is not part of the diffusion stage's key
    monkeypatch.setattr(gs, "fit", boom)
    shutil.copytree(tmp / "zoo", tmp_path / "zoo")  # a copy: the fixture's zoo keeps one generated entry
    ov = ["generator.diffusion.sampler=ddpm", f"paths.zoo_dir={tmp_path / 'zoo'}"]
    other = make_cfg(SYN + FAST + ov, tmp_path, config_name="generate")
    res = gt.run(other)
    assert not res["skipped"] and res["stages"]["diffusion"] != "" and 0 <= res["test/acc"] <= 1


def test_stages_stop_on_a_validation_plateau_of_a_held_out_restart(pipeline):
    tmp, cfg, value = pipeline
    zoo = Zoo(tmp / "zoo")
    gens = [e.record["generator"] for e in zoo.entries() if e.record["kind"] == "generator"]
    st = {g["stage"]: g for g in gens}
    for stage in ("autoencoder", "diffusion"):
        info = st[stage]
        assert 1 <= info["steps"] <= 60 and info["val_history"], stage  # validated (every min(50, 60) steps)
        assert info["val_loss"] == info["val_history"][-1][1]


def test_selection_never_reads_test_labels(pipeline, monkeypatch, tmp_path):
    tmp, cfg, value = pipeline
    zoo_copy = tmp_path / "zoo"
    shutil.copytree(tmp / "zoo", zoo_copy)
    zoo = Zoo(zoo_copy)
    [gid] = zoo.df(kind="generated").run_id
    before = zoo[gid].record
    shutil.rmtree(zoo_copy / gid)  # the sample stage runs again, on a graph whose test labels are shuffled
    import gnnzoo.generate.task as gt

    real = gt.load_graph

    def shuffled(c):
        g = real(c)
        d = g.data
        y = d.y.clone()
        idx = d.test_mask.nonzero().view(-1)
        y[idx] = y[idx[torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(3))]]
        d.y = y
        return g

    monkeypatch.setattr(gt, "load_graph", shuffled)
    c2 = make_cfg(SYN + FAST + [f"paths.zoo_dir={zoo_copy}"], tmp_path, config_name="generate")
    res = gt.run(c2)
    after = Zoo(zoo_copy)[res["run_id"]].record
    assert res["run_id"] == gid and after["generator"]["selected"] == before["generator"]["selected"]
    assert after["metrics"]["gen/best_val"] == before["metrics"]["gen/best_val"]


def test_set_evaluator_scores_like_one_model_at_a_time():
    from gnnzoo.backbones import GCN
    from gnnzoo.data.datasets import synthetic

    graph = synthetic(num_nodes=200)
    d = graph.data
    states = [
        GCN(
            in_channels=graph.num_features, hidden_channels=8, out_channels=graph.num_classes, num_layers=2
        ).state_dict()
        for _ in range(4)
    ]
    template = GCN(in_channels=graph.num_features, hidden_channels=8, out_channels=graph.num_classes, num_layers=2)
    acc = SetEvaluator(template, graph).accuracies(states)
    for i, st in enumerate(states):
        template.load_state_dict(st)
        with torch.no_grad():
            pred = template.eval()(d.x, d.edge_index).argmax(-1)
        assert float(acc["val"][i]) == pytest.approx(float((pred[d.val_mask] == d.y[d.val_mask]).float().mean()))
    assert select(torch.tensor([0.5, 0.7, 0.7]), torch.tensor([0.1, 0.2, 0.9])) == (
        1,
        pytest.approx(0.7),
        pytest.approx(0.2),
    )


def test_generate_errors_are_clear_and_come_before_training(tmp_path, monkeypatch):
    import gnnzoo.generate.search as gsearch

    monkeypatch.setattr(gsearch, "train_batched", lambda *a, **k: pytest.fail("trained before the error"))
    for ov, match in (
        (["generator.collect.k=1"], "collect.k"),
        (["generator.collect.target=[layers.9.weight]"], "not parameters"),
        (["generator.search.fraction=0"], "fraction"),
        (["generator.diffusion.sampler=euler"], "sampler"),
        (["generator.autoencoder.fold=1"], "fold"),
        (["generator.diffusion.channels=[16,0]"], "channels"),
        (["generator.stop.patience=0"], "patience"),
        (["generator.search.query={backbone: sage}"], "selects no completed run"),
    ):
        with pytest.raises(ConfigError, match=match):
            run_task(make_cfg(SYN + FAST + ov, tmp_path, config_name="generate"))
    for grid, match in (
        ({"optimizer.nope": [1]}, "not a config key"),
        ({"optimizer": ["sgd"]}, "config group"),
        ({"optimizer.lr": 0.1}, "non-empty list"),
    ):
        c = make_cfg(SYN + FAST, tmp_path, config_name="generate")
        c.generator.search.grid = grid
        with pytest.raises(ConfigError, match=match):
            run_task(c)
    with pytest.raises(ConfigError, match="one method per run"):
        run_task(make_cfg(SYN + FAST + ["soup=uniform"], tmp_path, config_name="generate"))


def test_a_search_without_a_completed_run_is_one_clear_error(tmp_path, monkeypatch):
    import gnnzoo.generate.search as gsearch
    import gnnzoo.generate.stages as gs

    monkeypatch.setattr(
        gsearch, "train_batched", lambda cfgs, **k: [{"status": "failed", "error": "diverged"}] * len(cfgs)
    )
    monkeypatch.setattr(gs, "collect", lambda *a, **k: pytest.fail("collected after a failed search"))
    with pytest.raises(ConfigError, match="no completed run.*diverged"):
        run_task(make_cfg(SYN + FAST, tmp_path, config_name="generate"))


def test_the_latent_can_come_from_a_trained_neural_graph_encoder(tmp_path):
    for i in range(6):  # a small zoo with snapshots (slow learning rates: accuracies that differ), for the encoder
        run_task(
            make_cfg(
                SYN
                + [f"seed={i}", f"optimizer.lr={[1e-3, 2e-3, 3e-3, 5e-3, 1.5e-3, 4e-3][i]}", "zoo.snapshot_every=3"],
                tmp_path,
            )
        )
    run_task(make_cfg(SYN + ["encoder=stat", "encoder.epochs=3"], tmp_path))
    [eid] = Zoo(tmp_path / "zoo").df(kind="encoder").run_id
    with pytest.raises(ConfigError, match="has no entry"):
        run_task(
            make_cfg(SYN + FAST + ["generator.autoencoder.encoder=0123456789abcdef"], tmp_path, config_name="generate")
        )
    value = run_task(
        make_cfg(
            SYN + FAST + [f"generator.autoencoder.encoder={eid}", "generator.search.query={}"],
            tmp_path,
            config_name="generate",
        )
    )
    zoo = Zoo(tmp_path / "zoo")
    ae = next(
        e for e in zoo.entries() if e.record["kind"] == "generator" and e.record["generator"]["stage"] == "autoencoder"
    )
    assert ae.record["generator"]["kwargs"]["embed_dim"] == 64 and "ae.embed_proj.1.weight" in ae.state_dict()
    [gid] = zoo.df(kind="generated").run_id
    assert 0 < value <= 1 and torch.isfinite(zoo[gid].file(SAMPLES)["params"]).all()
    # a neural-graph encoder trained on this dataset's zoo reads a generation on another one (24 features, never
    # seen): the generator computes that dataset's input basis from its data, as the FMS sweeper does
    run_task(make_cfg(SYN + ["encoder=ng_gnn", "encoder.epochs=2"], tmp_path))
    [ng] = [r for r in Zoo(tmp_path / "zoo").df(kind="encoder").run_id if r != eid]
    other = ["dataset.name=synthetic_b", "dataset.loader.num_features=24"]
    value = run_task(
        make_cfg(SYN + FAST + other + [f"generator.autoencoder.encoder={ng}"], tmp_path, config_name="generate")
    )
    zoo = Zoo(tmp_path / "zoo")
    [gid_b] = [r for r in zoo.df(kind="generated").run_id if r != gid]
    assert 0 < value <= 1 and zoo[gid_b].record["dataset"] == "synthetic_b"
    ae_b = [  # the autoencoder of this generation reads the ng_gnn encoder's embedding
        e.record["generator"]["kwargs"]["embed_dim"]
        for e in zoo.entries()
        if e.record["kind"] == "generator" and e.record["generator"]["stage"] == "autoencoder" and e.run_id != ae.run_id
    ]
    assert ae_b == [TrainedEncoder.from_zoo(zoo, ng).model.embed_dim]


@pytest.mark.slow
@pytest.mark.parametrize(
    "backbone,extra",
    [("sage", []), ("gat", []), ("gin", []), ("appnp", []), ("mlp", []), ("gcn", ["generator.collect.target=all"])],
)
def test_generate_runs_for_every_backbone(backbone, extra, tmp_path):
    value = run_task(make_cfg(SYN + FAST + [f"backbone={backbone}", *extra], tmp_path, config_name="generate"))
    zoo = Zoo(tmp_path / "zoo")
    [gid] = zoo.df(kind="generated").run_id
    model = zoo.load(gid)
    assert value == pytest.approx(zoo[gid].record["metrics"]["gen/best_val"]) and 0 < value <= 1
    names = zoo[
        [
            e.run_id
            for e in zoo.entries()
            if e.record["kind"] == "generator" and e.record["generator"]["stage"] == "collect"
        ][0]
    ].record["generator"]["names"]
    assert set(names) == set(target_names(model, "all" if extra else "last"))


def test_generate_logs_its_stages_and_plot_to_wandb(tmp_path):
    import wandb

    run_task(make_cfg(SYN + FAST + ["logger=wandb"], tmp_path, config_name="generate"))
    assert wandb.run is None and (tmp_path / "out" / "generate.png").is_file()
    runs = sorted((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert runs and any(p.suffix == ".png" for r in runs for p in (r / "files").rglob("*"))


def test_the_condition_propagates_as_gcn_and_reads_sparse_features_as_dense():
    """normalized_adjacency is GCN's propagation (PyG's GCNConv gives the same output); the condition reads CSR
    features as it reads them dense (same output and gradients: the sparse path changes the cost only)."""
    from torch_geometric.nn import GCNConv

    from gnnzoo.generate.condition import GraphCondition, condition_vector, normalized_adjacency

    g = torch.Generator().manual_seed(0)
    n, f = 30, 12
    ei = torch.randint(0, n, (2, 90), generator=g)
    ei = torch.cat([ei, ei.flip(0)], 1)
    x = (torch.rand(n, f, generator=g) < 0.2).float()
    conv = GCNConv(f, 5)
    with torch.no_grad():
        conv.bias.normal_()
    adj = normalized_adjacency(ei, n)
    ref = conv(x, ei)
    mine = torch.sparse.mm(adj, x @ conv.lin.weight.t()) + conv.bias
    assert torch.allclose(ref, mine, atol=1e-5)
    model = GraphCondition(f, 3, dim=8, hidden=6).eval()  # eval: dropout draws differ between the two layouts
    out_d = model.embed(x, adj)
    (gd,) = torch.autograd.grad(out_d.square().sum(), [model.lin_in.weight])
    out_s = model.embed(x.to_sparse_csr(), adj)
    (gs,) = torch.autograd.grad(out_s.square().sum(), [model.lin_in.weight])
    assert torch.allclose(out_d, out_s, atol=1e-5) and torch.allclose(gd, gs, atol=1e-4)
    y = torch.randint(0, 3, (n,), generator=g)
    vec, acc = condition_vector(x.to_sparse_csr(), ei, y, torch.rand(n, generator=g) < 0.5, 8, steps=20, seed=1)
    assert vec.shape == (1, 8) and 0 <= acc <= 1
