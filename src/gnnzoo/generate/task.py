"""``python generate.py`` (task=generate): GNN-Diff, one command, one pipeline.

1. **light search**: a seeded random ``fraction`` of ``generator.search.grid`` trained (batched where it can
   be) into the zoo, or the completed runs of a zoo query (``generator.search.query``);
2. **pick** the configuration with the best validation accuracy;
3. **collect** ``k`` checkpoints of the target parameters (the last layer by default) by training on from
   the best-val model, the rest frozen (``restarts`` restarts from that model);
4. train the **parameter autoencoder** (1-D convs, noise on input and latent, per-position normalisation);
5. train the **latent DDPM** (T = 1000, linear β, ε-prediction, per-sample timesteps, optional EMA), told the
   task through the **graph condition** (a small GNN trained on the training nodes, mean-pooled);
6. **sample** ``n`` parameter sets, evaluate them in one batched pass, select by validation accuracy and
   report the test accuracy of the pick; with it, the same-budget controls that are cheap here (``n``
   Gaussian perturbations of the best checkpoint, the uniform soup of the collected checkpoints) and the
   memorisation ratio (distance to the nearest collected checkpoint / median nearest-neighbour distance
   among the collected checkpoints).

Every stage is a zoo entry (kind ``generator``, its ``generator.stage`` names it; the samples: kind
``generated``, whose weights are the selected model, loadable with ``Zoo.load``) with an id that hashes what
determines it, so a re-run skips the stages that finished. Selection never reads test labels.
"""
from __future__ import annotations

import copy
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from gnnzoo.batched.trainer import group_configs, train_batched
from gnnzoo.data.graph import graph_spec, load_graph
from gnnzoo.generate.autoencoder import ParamAutoencoder
from gnnzoo.generate.condition import condition_vector
from gnnzoo.generate.diffusion import Denoiser, make_scheduler, sample
from gnnzoo.generate.module import GeneratorModule
from gnnzoo.generate.params import Normalizer, ParamCodec, target_names
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.config import backbone_config, check_config, check_one_method
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import close_loggers, console, instantiate_loggers
from gnnzoo.utils.plots import log_image, png
from gnnzoo.zoo.ids import hash_id
from gnnzoo.zoo.record import build_record, now_iso
from gnnzoo.zoo.store import Zoo, ZooEntry

log = logging.getLogger("gnnzoo")
CHECKPOINTS = "checkpoints.safetensors"
SAMPLES = "samples.safetensors"
CONDITION = "condition.safetensors"


# ------------------------------------------------------------------------------------------- checks
def _pos_int(g: DictConfig, key: str, where: str, minimum: int = 1) -> int:
    v = g.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{where}.{key}={v!r}: expected an integer >= {minimum}")
    return v


def check_generator(cfg: DictConfig) -> None:
    """Everything that can be checked before any training: one clear error, nothing spent."""
    g = cfg.generator
    if not g.get("name"):
        raise ConfigError("task=generate needs a generator: generator=latent_ddpm")
    _pos_int(g.collect, "k", "generator.collect", minimum=2)
    _pos_int(g.collect, "restarts", "generator.collect")
    for stage in ("autoencoder", "diffusion"):
        _pos_int(g[stage], "steps", f"generator.{stage}")
    _pos_int(g.sample, "n", "generator.sample")
    s = g.search
    qf = s.get("query_fraction", 1.0)
    if isinstance(qf, bool) or not isinstance(qf, (int, float)) or not 0 < qf <= 1:
        raise ConfigError(f"generator.search.query_fraction={qf!r}: expected a fraction in (0, 1]")
    if s.get("query") is None:
        if not s.get("grid"):
            raise ConfigError("generator.search: give a grid (generator.search.grid) or a zoo query "
                              "(generator.search.query)")
        fr = s.get("fraction")
        if isinstance(fr, bool) or not isinstance(fr, (int, float)) or not 0 < fr <= 1:
            raise ConfigError(f"generator.search.fraction={fr!r}: expected a fraction in (0, 1]")
        for key, values in s.grid.items():
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                raise ConfigError(f"generator.search.grid: {key!r} is not a config key (grid keys are values such "
                                  "as optimizer.lr; for config groups such as optimizer=sgd,adam, train the grid with "
                                  "`train.py -m` and pass generator.search.query)")
            if isinstance(OmegaConf.select(cfg, key), DictConfig):
                raise ConfigError(f"generator.search.grid: {key!r} is a config group or a node, not a value")
            if not isinstance(values, (list, tuple)) and not OmegaConf.is_list(values) or not len(values):
                raise ConfigError(f"generator.search.grid.{key}: expected a non-empty list of values")
    if g.diffusion.sampler not in ("ddpm", "ddim"):
        raise ConfigError(f"generator.diffusion.sampler={g.diffusion.sampler!r}: expected ddpm or ddim")
    from hydra.utils import instantiate

    target_names(instantiate(cfg.backbone), g.collect.target)  # a target that does not exist fails here
    if g.autoencoder.get("encoder"):
        neural_graph_encoder(Zoo(cfg.paths.zoo_dir), g.autoencoder.encoder)


# ------------------------------------------------------------------------------------------- 1-2. search
def grid_points(grid: dict, fraction: float, seed: int) -> list[dict]:
    """A seeded random ``fraction`` of the grid's points (at least one), in grid order."""
    keys = sorted(grid)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*(list(grid[k]) for k in keys))]
    n = max(1, int(round(fraction * len(points))))
    pick = torch.randperm(len(points), generator=torch.Generator().manual_seed(int(seed)))[:n].sort().values
    return [points[i] for i in pick.tolist()]


def search_configs(cfg: DictConfig) -> list[DictConfig]:
    s = cfg.generator.search
    out = []
    base = backbone_config(cfg)
    for point in grid_points(OmegaConf.to_container(s.grid, resolve=True), float(s.fraction), int(s.seed)):
        c = copy.deepcopy(base)
        for k, v in point.items():
            OmegaConf.update(c, k, v, merge=False)
        c.zoo.enabled = True
        out.append(c)
    return out


def light_search(cfg: DictConfig, zoo: Zoo) -> tuple[list[ZooEntry], float]:
    """The search's completed runs (trained now, or reused from the zoo) and the wall time it took."""
    t0 = time.perf_counter()
    q = cfg.generator.search.get("query")
    if q is not None:
        filters = {"dataset": cfg.dataset.name, "backbone": cfg.backbone.name,
                   **OmegaConf.to_container(q, resolve=True), "kind": "run", "status": "completed"}
        df = zoo.df(**filters) if len(zoo) else None
        if df is None or df.empty:
            raise ConfigError(f"generator.search.query {filters} selects no completed run in {zoo.root}")
        ids = sorted(df.run_id)
        fr = float(cfg.generator.search.get("query_fraction") or 1.0)
        if fr < 1.0:  # a seeded random subset of the query (e.g. 10% of a grid that is already in the zoo)
            n = max(1, int(round(fr * len(ids))))
            pick = torch.randperm(len(ids), generator=torch.Generator().manual_seed(int(cfg.generator.search.seed)))
            ids = [ids[i] for i in sorted(pick[:n].tolist())]
        return [zoo[r] for r in ids], time.perf_counter() - t0
    cfgs = search_configs(cfg)
    console.print(f"[bold]light search[/]: {len(cfgs)} configurations of the grid "
                  f"({float(cfg.generator.search.fraction):.0%}, seed {int(cfg.generator.search.seed)})")
    results: list[dict] = []
    progress = bool(cfg.trainer.get("enable_progress_bar", True))
    for group in group_configs(cfgs, 64):
        sub = [cfgs[i] for i in group]
        try:
            results += train_batched(sub, progress=progress)
        except NotImplementedError as e:
            log.info("light search runs one by one (%s)", e)
            for c in sub:
                try:
                    results.append(train(c))
                except Exception as err:  # a failed run is recorded by train(); the search goes on
                    results.append({"status": "failed", "error": str(err)})
    done = [zoo[r["run_id"]] for r in results if r.get("status") == "completed" and r.get("run_id")]
    if not done:
        errs = [r.get("error") for r in results if r.get("error")]
        raise ConfigError(f"the light search produced no completed run ({len(results)} tried"
                          + (f"; first error: {errs[0]}" if errs else "") + ")")
    return done, time.perf_counter() - t0


def pick_best(entries: list[ZooEntry]) -> ZooEntry:
    """The run with the best validation score (ties: the smaller run id); never looks at test metrics."""
    ok = [e for e in entries if e.record.get("best_val") is not None and e.record["best_val"] == e.record["best_val"]]
    if not ok:
        raise ConfigError("no run of the light search has a validation score")
    return sorted(ok, key=lambda e: (-float(e.record["best_val"]), e.run_id))[0]


# ------------------------------------------------------------------------------------------- evaluation
class SetEvaluator:
    """Accuracy of many parameter sets on one graph: the sets stacked into one batched backbone (one forward for
    all of them), or one by one where the backbone cannot be batched."""

    def __init__(self, template: torch.nn.Module, graph):
        self.template = template.eval()
        d = graph.data
        self.d = d
        self.masks = {k: getattr(d, f"{k}_mask") for k in ("train", "val", "test")}
        if d.y.dim() != 1:
            raise ConfigError(f"generate.py selects by accuracy; {graph.name} has multi-label targets")

    @torch.no_grad()
    def logits(self, states: list[dict], chunk: int = 50) -> torch.Tensor:
        from gnnzoo.batched.graph import GraphOps
        from gnnzoo.batched.models import BatchedBackbone

        out = []
        try:
            ops = GraphOps(self.d.edge_index, self.d.num_nodes)
            for s in range(0, len(states), chunk):
                part = states[s:s + chunk]
                bb = BatchedBackbone(self.template, part, [0.0] * len(part)).eval()
                out.append(bb(self.d.x, ops))
        except NotImplementedError:
            from torch.func import functional_call

            out = [torch.stack([functional_call(self.template, st, (self.d.x, self.d.edge_index)) for st in states])]
        return torch.cat(out)

    def accuracies(self, states: list[dict], y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"val": [N], "test": [N]}`` (``y``: labels to score with; default the graph's)."""
        y = self.d.y if y is None else y
        pred = self.logits(states).argmax(-1)
        return {k: (pred[:, m] == y[m]).float().mean(1) for k, m in self.masks.items() if k != "train"}


def select(val: torch.Tensor, test: torch.Tensor) -> tuple[int, float, float]:
    """The index with the best validation accuracy (first on ties), its val and its test accuracy."""
    i = int(torch.argmax(val))  # torch.argmax returns the first maximal index
    return i, float(val[i]), float(test[i])


def nn_ratios(generated: torch.Tensor, collected: torch.Tensor) -> torch.Tensor:
    """Per generated set: distance to the nearest collected checkpoint / median nearest-neighbour distance among
    the collected checkpoints (≈ 0: a copy; ≈ 1: as far as two collected checkpoints are from each other)."""
    d_gc = torch.cdist(generated.double(), collected.double()).min(1).values
    d_cc = torch.cdist(collected.double(), collected.double())
    d_cc.fill_diagonal_(float("inf"))
    scale = d_cc.min(1).values.median().clamp(min=1e-12)
    return (d_gc / scale).float()


# ------------------------------------------------------------------------------------------- 3. collect
def collect(cfg: DictConfig, best: ZooEntry, graph, names: list[str], seed: int) -> tuple[torch.Tensor, list[float]]:
    """``k`` checkpoints of the target parameters: ``restarts`` times, reload the best-val model and train
    only the targets (Adam, ``collect.lr``) on the training nodes, one checkpoint per epoch."""
    from rich.progress import track

    c = cfg.generator.collect
    k, restarts = int(c.k), int(c.restarts)
    per = -(-k // restarts)
    model = best.load(eval_mode=False)
    base = {n: t.clone() for n, t in model.state_dict().items()}
    codec = ParamCodec.from_state(base, names)
    params = dict(model.named_parameters())
    for p in params.values():
        p.requires_grad_(False)
    targets = [params[n] for n in names]
    for p in targets:
        p.requires_grad_(True)
    d = graph.data
    torch.manual_seed(int(seed))
    vecs, vals = [], []
    steps = [(r, e) for r in range(restarts) for e in range(per)][:k]
    for r, e in track(steps, description="collecting checkpoints", transient=True,
                      disable=not cfg.trainer.get("enable_progress_bar", True)):
        if e == 0:
            model.load_state_dict(base)
            opt = torch.optim.Adam(targets, lr=float(c.lr), weight_decay=float(c.get("weight_decay", 0.0)))
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(d.x, d.edge_index)[d.train_mask], d.y[d.train_mask])
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(d.x, d.edge_index).argmax(-1)
        vals.append(float((pred[d.val_mask] == d.y[d.val_mask]).float().mean()))
        vecs.append(codec.flatten(model.state_dict()))
    return torch.stack(vecs), vals


# ------------------------------------------------------------------------------------------- 4-5. train
def _fit(module: GeneratorModule, data: torch.Tensor, steps: int, batch_size: int, seed: int, cfg: DictConfig,
         loggers: list, extra: torch.Tensor | None = None) -> float:
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    ds = TensorDataset(data) if extra is None else TensorDataset(data, extra)
    sampler = RandomSampler(ds, replacement=True, num_samples=steps * batch_size,
                            generator=torch.Generator().manual_seed(int(seed)))
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler)
    t = cfg.trainer
    trainer = pl.Trainer(max_epochs=1, max_steps=steps, accelerator=t.get("accelerator", "auto"),
                         devices=t.get("devices", "auto"), logger=loggers or False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=50,
                         enable_progress_bar=bool(t.get("enable_progress_bar", True)))
    trainer.fit(module, train_dataloaders=loader)
    module.cpu()
    tail = module.losses[-max(1, steps // 10):]
    return sum(tail) / len(tail)


def _ae_kwargs(a: DictConfig, dim: int, embed_dim: int | None = None) -> dict:
    return {"dim": dim, "fold": int(a.fold), "enc_channels": list(a.enc_channels), "dec_channels": list(a.dec_channels),
            "embed_dim": embed_dim}


def neural_graph_encoder(zoo: Zoo, run_id: str):
    """The trained neural-graph encoder ``generator.autoencoder.encoder`` names (a zoo entry of kind encoder)."""
    from gnnzoo.weightspace.encoder import TrainedEncoder

    entry = zoo.get(str(run_id))
    if entry is None or entry.status != "completed" or entry.record.get("kind") != "encoder":
        what = "no entry" if entry is None else f"a {entry.record.get('kind')!r} entry ({entry.status})"
        raise ConfigError(f"generator.autoencoder.encoder={run_id}: {zoo.root} has {what} there; train one with "
                          "`python train.py encoder=ng_gnn` on this zoo and pass its run id")
    return TrainedEncoder.from_zoo(zoo, str(run_id))


def _write_stage(zoo: Zoo, cfg: DictConfig, rid: str, parents: list[str], best: ZooEntry, info: dict,
                 weights: dict | None, files: dict | None, t0: float, kind: str = "generator", **fields) -> ZooEntry:
    rec = build_record(cfg, kind, rid, parents=parents, generator=info, **fields)
    rec["config"]["backbone"] = best.record["config"]["backbone"]  # the generated model is the best config's
    rec["backbone"] = best.record["backbone"]
    rec.update(status="completed", wall_time_s=time.perf_counter() - t0, finished_at=now_iso())
    zoo.write(rec, weights, files)
    return zoo[rid]


def _plot(path: Path, collected_val: list[float], gen_val, perturb_val, title: str) -> None:
    with png(path, "generator plot") as ax:
        series = [([100 * float(v) for v in vals], label, color) for vals, label, color in
                  ((collected_val, "collected", "C0"), (gen_val, "generated", "C3"), (perturb_val, "perturbed best", "C7"))]
        values = [v for vals, _, _ in series for v in vals]
        lo, hi = min(values), max(values)
        bins = torch.linspace(lo - 0.05, hi + 0.05, 31).tolist()  # one set of bins for the three series
        for vals, label, color in series:
            ax.hist(vals, bins=bins, alpha=0.55, label=label, color=color)
        ax.set_xlabel("validation accuracy (%)")
        ax.set_ylabel("parameter sets")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)


def run(cfg: DictConfig) -> dict[str, Any]:
    """The GNN-Diff pipeline; returns the metrics of the selected sample, ``value`` = its validation accuracy."""
    check_config(cfg)
    check_one_method(cfg, "generate")
    check_generator(cfg)
    g = cfg.generator
    seed = int(g.seed)
    zoo = Zoo(cfg.paths.zoo_dir)
    zoo.check_writable()
    walls: dict[str, float] = {}
    # 1-2. search and pick (each search run logs to its own W&B run and finishes it: this run's loggers start after)
    entries, walls["search_s"] = light_search(cfg, zoo)
    loggers = instantiate_loggers(cfg)
    try:
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        best = pick_best(entries)
        if graph_spec(best.record["config"]) != graph_spec(cfg):
            raise ConfigError(f"the best search run {best.run_id} was trained on another graph than "
                              f"{cfg.dataset.name} ({graph_spec(best.record['config'])})")
        graph = load_graph(cfg)
        template = best.build_backbone()
        names = target_names(template, g.collect.target)
        base = best.state_dict()
        codec = ParamCodec.from_state(base, names)
        console.print(f"[bold]best of {len(entries)}[/]: {best.run_id} (val {best.record['best_val']:.4f}); "
                      f"generating {codec.dim} parameters ({', '.join(names)})")
        plain = {k: OmegaConf.to_container(g[k], resolve=True) for k in
                 ("collect", "autoencoder", "diffusion", "condition", "sample")}

        # 3. collect
        t0 = time.perf_counter()
        cid = hash_id({"stage": "collect", "best": best.run_id, "collect": plain["collect"], "seed": seed})
        centry = zoo.completed(cid)
        if centry is None:
            X, cvals = collect(cfg, best, graph, names, seed)
            centry = _write_stage(zoo, cfg, cid, [best.run_id], best,
                                  {"stage": "collect", "names": names, "shapes": [list(s) for s in codec.shapes],
                                   "k": int(X.size(0)), "val_acc": cvals}, None, {CHECKPOINTS: {"params": X}}, t0)
        else:
            console.print(f"[yellow]skip[/] collect {cid}: in the zoo")
        X = centry.file(CHECKPOINTS)["params"]
        cvals = centry.record["generator"]["val_acc"]
        walls["collect_s"] = float(centry.record["wall_time_s"])

        # 4. autoencoder
        a = g.autoencoder
        t0 = time.perf_counter()
        aid = hash_id({"stage": "autoencoder", "collect": cid, "autoencoder": plain["autoencoder"], "seed": seed})
        aentry = zoo.completed(aid)
        emb = None
        if a.get("encoder"):  # the latent is read from the neural-graph encoder's embedding of each checkpoint
            enc = neural_graph_encoder(zoo, a.encoder)
            emb = enc.embed([codec.full_state(base, v) for v in X], best.record["backbone"])
        kwargs = _ae_kwargs(a, codec.dim, None if emb is None else int(emb.size(1)))
        ae = ParamAutoencoder(**kwargs)
        norm = Normalizer(codec.dim)
        bs = int(g.get("batch_size") or X.size(0))
        if aentry is None:
            norm.fit(X, per_position=bool(a.normalize))
            pl.seed_everything(seed, workers=False, verbose=False)
            ae = ParamAutoencoder(**kwargs)
            module = GeneratorModule(ae, stage="autoencoder", lr=a.lr, weight_decay=a.weight_decay,
                                     noise_in=a.noise_in, noise_latent=a.noise_latent)
            loss = _fit(module, norm(X), int(a.steps), bs, seed, cfg, loggers, extra=emb)
            ae.eval()
            with torch.no_grad():
                recon = norm.inverse(ae.decode(ae.encode(norm(X) if emb is None else emb)))
            rel = float(((recon - X).norm(dim=1) / X.norm(dim=1).clamp(min=1e-12)).mean())
            aentry = _write_stage(zoo, cfg, aid, [cid], best,
                                  {"stage": "autoencoder", "kwargs": kwargs, "loss": loss,
                                   "recon_rel_error": rel, "latent_shape": list(ae.latent_shape)},
                                  {**{f"ae.{k}": v for k, v in ae.state_dict().items()},
                                   "norm.mean": norm.mean, "norm.std": norm.std}, None, t0)
        else:
            console.print(f"[yellow]skip[/] autoencoder {aid}: in the zoo")
        st = aentry.state_dict()
        ae.load_state_dict({k[3:]: v for k, v in st.items() if k.startswith("ae.")})
        norm.mean.copy_(st["norm.mean"])
        norm.std.copy_(st["norm.std"])
        ae.eval()
        walls["autoencoder_s"] = float(aentry.record["wall_time_s"])
        with torch.no_grad():
            Z = ae.encode(norm(X) if emb is None else emb)

        # 5. graph condition + latent diffusion
        dcfg, ccfg = g.diffusion, g.condition
        t0 = time.perf_counter()
        did = hash_id({"stage": "diffusion", "autoencoder": aid, "diffusion": plain["diffusion"],
                       "condition": plain["condition"], "seed": seed})
        dentry = zoo.completed(did)
        cond_dim = int(ccfg.dim) if ccfg.enabled else 0
        den_kwargs = {"latent_channels": int(Z.size(1)), "channels": list(dcfg.channels), "d_emb": int(dcfg.d_emb),
                      "cond_dim": cond_dim}
        scheduler = make_scheduler(str(dcfg.sampler), int(dcfg.timesteps), float(dcfg.beta_start),
                                   float(dcfg.beta_end), dcfg.get("clip"))
        denoiser = Denoiser(**den_kwargs)
        if dentry is None:
            cond, cond_acc = None, None
            if ccfg.enabled:
                d = graph.data
                cond, cond_acc = condition_vector(d.x, d.edge_index, d.y, d.train_mask, cond_dim, int(ccfg.steps),
                                                  float(ccfg.lr), seed)
            pl.seed_everything(seed, workers=False, verbose=False)
            denoiser = Denoiser(**den_kwargs)
            module = GeneratorModule(None, denoiser, scheduler, stage="diffusion", lr=dcfg.lr,
                                     weight_decay=dcfg.weight_decay, cond=cond, ema_beta=dcfg.get("ema"))
            loss = _fit(module, Z, int(dcfg.steps), bs, seed + 1, cfg, loggers)
            files = {CONDITION: {"cond": cond}} if cond is not None else None
            dentry = _write_stage(zoo, cfg, did, [aid], best,
                                  {"stage": "diffusion", "kwargs": den_kwargs, "loss": loss,
                                   "condition_train_acc": cond_acc, "ema": dcfg.get("ema")},
                                  module.sampling_denoiser().state_dict(), files, t0)
        else:
            console.print(f"[yellow]skip[/] diffusion {did}: in the zoo")
        denoiser.load_state_dict(dentry.state_dict())
        denoiser.eval()
        cond = dentry.file(CONDITION)["cond"] if cond_dim else None
        walls["diffusion_s"] = float(dentry.record["wall_time_s"])

        # 6. sample, evaluate, select
        sc = g.sample
        t0 = time.perf_counter()
        gid = hash_id({"stage": "sample", "diffusion": did, "sample": plain["sample"], "seed": seed})
        gentry = zoo.completed(gid)
        if gentry is None:
            gen = torch.Generator().manual_seed(seed)
            steps = dcfg.get("sample_steps") or (None if dcfg.sampler == "ddpm" else 50)
            lat = sample(denoiser, scheduler, int(sc.n), tuple(Z.shape[1:]), steps, cond, gen,
                         progress=bool(cfg.trainer.get("enable_progress_bar", True)), batch_size=int(sc.batch_size))
            with torch.no_grad():
                P = norm.inverse(ae.decode(lat))
            ev = SetEvaluator(template, graph)
            acc = ev.accuracies([codec.full_state(base, v) for v in P])
            pick, pv, pt = select(acc["val"], acc["test"])
            ratios = nn_ratios(P, X)
            # controls under the same selection budget: n perturbations of the best checkpoint (σ per position =
            # the spread of the collected checkpoints) and the uniform soup of the collected checkpoints
            sigma = X.std(0, unbiased=False)
            x0 = codec.flatten(base)
            Q = x0 + sigma * torch.randn((int(sc.n), codec.dim), generator=gen)
            qacc = ev.accuracies([codec.full_state(base, v) for v in Q])
            qi, qv, qt = select(qacc["val"], qacc["test"])
            sacc = ev.accuracies([codec.full_state(base, X.mean(0))])
            bacc = ev.accuracies([base])
            metrics = {"gen/best_val": pv, "test/acc": pt, "val/acc": pv, "gen/test_at_best_val": pt,
                       "gen/val_mean": float(acc["val"].mean()), "gen/val_median": float(acc["val"].median()),
                       "gen/test_mean": float(acc["test"].mean()), "gen/test_max": float(acc["test"].max()),
                       "gen/nn_ratio_median": float(ratios.median()),
                       "gen/nn_ratio_p10": float(torch.quantile(ratios, 0.1)),
                       "gen/nn_ratio_selected": float(ratios[pick]),
                       "gen/baseline_perturb_val": qv, "gen/baseline_perturb_test": qt,
                       "gen/baseline_soup_val": float(sacc["val"][0]), "gen/baseline_soup_test": float(sacc["test"][0]),
                       "gen/search_best_val": float(bacc["val"][0]), "gen/search_best_test": float(bacc["test"][0]),
                       "gen/collected_val_max": max(cvals), "gen/n": int(sc.n)}
            walls["sample_s"] = time.perf_counter() - t0
            gentry = _write_stage(zoo, cfg, gid, [cid, best.run_id], best,
                                  {"stage": "sample", "selected": pick, "walls": walls, "search_runs": len(entries),
                                   "search_ids": sorted(e.run_id for e in entries)},
                                  codec.full_state(base, P[pick]),
                                  {SAMPLES: {"params": P, "val_acc": acc["val"], "test_acc": acc["test"],
                                             "nn_ratio": ratios}}, t0, kind="generated", metrics=metrics,
                                  best_val=pv, test_at_best_val=pt)
            out_dir = cfg.paths.get("output_dir")
            if out_dir:
                plot = Path(out_dir) / "generate.png"
                _plot(plot, cvals, acc["val"].tolist(), qacc["val"].tolist(),
                      f"{cfg.dataset.name}/{best.record['backbone']}: pick val {100 * pv:.1f}, test {100 * pt:.1f}; "
                      f"nn ratio {metrics['gen/nn_ratio_median']:.2f}")
                log_image(loggers, "gen/val_histogram", plot)
            for lg in loggers:
                lg.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
            skipped = False
        else:
            console.print(f"[yellow]skip[/] sample {gid}: in the zoo")
            metrics = gentry.record["metrics"]
            skipped = True
    finally:
        close_loggers(loggers)
    console.print(f"[green]generated[/] {int(g.sample.n)} sets: pick val {100 * metrics['gen/best_val']:.2f}, test "
                  f"{100 * metrics['test/acc']:.2f} (search best {100 * metrics['gen/search_best_test']:.2f}, perturb "
                  f"{100 * metrics['gen/baseline_perturb_test']:.2f}, soup {100 * metrics['gen/baseline_soup_test']:.2f}); "
                  f"nn ratio median {metrics['gen/nn_ratio_median']:.2f}; run_id={gid}")
    return {**metrics, "run_id": gid, "skipped": skipped, "value": metrics["gen/best_val"],
            "stages": {"search": [e.run_id for e in entries], "best": best.run_id, "collect": cid,
                       "autoencoder": aid, "diffusion": did, "sample": gid}}
