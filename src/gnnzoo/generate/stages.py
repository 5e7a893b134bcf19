"""Steps 3-6 of GNN-Diff, one function per stage. Each stage is a zoo entry written through
:func:`gnnzoo.zoo.stage.cached_stage` under an id that hashes what determines it (the stage before it, its own
settings, the seed), so a re-run skips every stage that finished:

* :func:`collect_stage` (kind ``generator``, stage ``collect``): ``k`` checkpoints of the target parameters;
* :func:`autoencoder_stage` (``autoencoder``): the parameter autoencoder and its normaliser;
* :func:`diffusion_stage` (``diffusion``): the graph condition and the latent DDPM's denoiser (its EMA copy);
* :func:`sample_stage` (kind ``generated``): ``n`` sampled parameter sets, evaluated and selected by validation
  accuracy, with the same-budget controls (perturbations of the best checkpoint, the soup of the collected ones)
  and the memorisation ratio; its weights are the selected model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from gnnzoo.generate.autoencoder import ParamAutoencoder
from gnnzoo.generate.checks import neural_graph_encoder
from gnnzoo.generate.collect import collect
from gnnzoo.generate.condition import condition_vector
from gnnzoo.generate.diffusion import Denoiser, make_scheduler, sample
from gnnzoo.generate.evaluate import SetEvaluator, nn_ratios, select
from gnnzoo.generate.fitting import diffusion_val, fit, holdout
from gnnzoo.generate.module import GeneratorModule
from gnnzoo.generate.params import Normalizer, ParamCodec
from gnnzoo.generate.sizing import resolve_autoencoder, resolve_denoiser
from gnnzoo.utils.plots import log_image, png
from gnnzoo.zoo.record import build_record, now_iso
from gnnzoo.zoo.stage import StageOutput, cached_stage
from gnnzoo.zoo.store import Zoo, ZooEntry

CHECKPOINTS = "checkpoints.safetensors"
SAMPLES = "samples.safetensors"
CONDITION = "condition.safetensors"
SAMPLING_KEYS = ("sampler", "sample_steps")


@dataclass
class GenerationContext:
    """What every stage of one generate run reads: the config, the zoo, the best search run and its graph, the
    target parameters' codec, the stages' settings (``plain``), the seed, the loggers and the stage walls."""

    cfg: DictConfig
    zoo: Zoo
    best: ZooEntry
    graph: Any
    template: torch.nn.Module
    names: list[str]
    base: dict[str, torch.Tensor]
    codec: ParamCodec
    plain: dict
    seed: int
    loggers: list
    search_runs: list[str]
    walls: dict[str, float] = field(default_factory=dict)

    @property
    def generator(self) -> DictConfig:
        return self.cfg.generator

    @property
    def batch_size(self) -> int:
        return int(self.generator.get("batch_size") or 0)

    def output(
        self,
        rid: str,
        parents: list[str],
        info: dict,
        weights: dict | None,
        files: dict | None,
        t0: float,
        kind: str = "generator",
        **fields,
    ) -> StageOutput:
        """A stage's record (its config's backbone is the best search run's: that is the model generated for)."""
        rec = build_record(self.cfg, kind, rid, parents=parents, generator=info, **fields)
        rec["config"]["backbone"] = self.best.record["config"]["backbone"]
        rec["backbone"] = self.best.record["backbone"]
        rec.update(status="completed", wall_time_s=time.perf_counter() - t0, finished_at=now_iso())
        return StageOutput(rec, weights, files)


# ------------------------------------------------------------------------------------------- 3. collect
def collect_stage(ctx: GenerationContext) -> tuple[str, torch.Tensor, list[float]]:
    """(stage id, the collected checkpoints ``[k, dim]``, their validation accuracies)."""
    key = {"stage": "collect", "best": ctx.best.run_id, "collect": ctx.plain["collect"], "seed": ctx.seed}

    def compute(rid: str) -> StageOutput:
        t0 = time.perf_counter()
        params, val_acc = collect(ctx.cfg, ctx.best, ctx.graph, ctx.names, ctx.seed)
        info = {
            "stage": "collect",
            "names": ctx.names,
            "shapes": [list(s) for s in ctx.codec.shapes],
            "k": int(params.size(0)),
            "val_acc": val_acc,
        }
        return ctx.output(rid, [ctx.best.run_id], info, None, {CHECKPOINTS: {"params": params}}, t0)

    st = cached_stage(ctx.zoo, key, compute, "collect")
    ctx.walls["collect_s"] = float(st.entry.record["wall_time_s"])
    return st.run_id, st.entry.file(CHECKPOINTS)["params"], st.entry.record["generator"]["val_acc"]


# ------------------------------------------------------------------------------------------- 4. autoencoder
def _ae_kwargs(a: DictConfig, dim: int, embed_dim: int | None = None) -> dict:
    return {"dim": dim, **resolve_autoencoder(a, dim), "embed_dim": embed_dim}


def autoencoder_stage(
    ctx: GenerationContext, collect_id: str, params: torch.Tensor
) -> tuple[str, ParamAutoencoder, Normalizer, torch.Tensor]:
    """(stage id, the trained autoencoder, its normaliser, the latents of the collected checkpoints)."""
    acfg = ctx.generator.autoencoder
    emb = None
    if acfg.get("encoder"):  # the latent is read from the neural-graph encoder's embedding of each checkpoint
        enc = neural_graph_encoder(ctx.zoo, ctx.cfg)
        states = [ctx.codec.full_state(ctx.base, v) for v in params]
        emb = enc.embed(states, ctx.best.record["backbone"], str(ctx.cfg.dataset.name))
    kwargs = _ae_kwargs(acfg, ctx.codec.dim, None if emb is None else int(emb.size(1)))
    key = {
        "stage": "autoencoder",
        "collect": collect_id,
        "autoencoder": ctx.plain["autoencoder"],
        "sizes": kwargs,  # the resolved (auto) sizes: a change of the sizing rule is a new stage
        "stop": ctx.plain["stop"],
        "seed": ctx.seed,
    }

    def compute(rid: str) -> StageOutput:
        t0 = time.perf_counter()
        norm = Normalizer(ctx.codec.dim)
        norm.fit(params, per_position=bool(acfg.normalize))
        pl.seed_everything(ctx.seed, workers=False, verbose=False)
        ae = ParamAutoencoder(**kwargs)
        module = GeneratorModule(
            ae,
            stage="autoencoder",
            lr=acfg.lr,
            weight_decay=acfg.weight_decay,
            noise_in=acfg.noise_in,
            noise_latent=acfg.noise_latent,
        )
        x = norm(params)
        # the autoencoder compresses this set (a held-out restart is not predictable from the others: its error rose
        # from the first check), so it stops when its noise-free reconstruction of the set plateaus
        val = ((x,) if emb is None else (x, emb)) if ctx.generator.get("stop") else None
        fitted = fit(ctx, module, x, int(acfg.steps), ctx.seed, emb, val)
        ae.eval()
        with torch.no_grad():
            recon = norm.inverse(ae.decode(ae.encode(norm(params) if emb is None else emb)))
        rel = float(((recon - params).norm(dim=1) / params.norm(dim=1).clamp(min=1e-12)).mean())
        info = {
            "stage": "autoencoder",
            "kwargs": kwargs,
            **fitted,
            "recon_rel_error": rel,
            "latent_shape": list(ae.latent_shape),
        }
        weights = {**{f"ae.{k}": v for k, v in ae.state_dict().items()}, "norm.mean": norm.mean, "norm.std": norm.std}
        return ctx.output(rid, [collect_id], info, weights, None, t0)

    st = cached_stage(ctx.zoo, key, compute, "autoencoder")
    state = st.entry.state_dict()
    ae, norm = ParamAutoencoder(**kwargs), Normalizer(ctx.codec.dim)
    ae.load_state_dict({k[3:]: v for k, v in state.items() if k.startswith("ae.")})
    norm.mean.copy_(state["norm.mean"])
    norm.std.copy_(state["norm.std"])
    ae.eval()
    ctx.walls["autoencoder_s"] = float(st.entry.record["wall_time_s"])
    with torch.no_grad():
        latents = ae.encode(norm(params) if emb is None else emb)
    return st.run_id, ae, norm, latents


# ------------------------------------------------------------------------------------------- 5. diffusion
def diffusion_stage(
    ctx: GenerationContext, ae_id: str, latents: torch.Tensor
) -> tuple[str, Denoiser, Any, torch.Tensor | None]:
    """(stage id, the sampling denoiser, the noise scheduler, the graph condition or None)."""
    dcfg, ccfg = ctx.generator.diffusion, ctx.generator.condition
    cond_dim = int(ccfg.dim) if ccfg.enabled else 0
    den_kwargs = {
        "latent_channels": int(latents.size(1)),
        **resolve_denoiser(dcfg, int(latents[0].numel())),
        "cond_dim": cond_dim,
    }
    scheduler = make_scheduler(
        str(dcfg.sampler), int(dcfg.timesteps), float(dcfg.beta_start), float(dcfg.beta_end), dcfg.get("clip")
    )
    key = {
        "stage": "diffusion",
        "autoencoder": ae_id,
        # the sampler is not part of training (every scheduler adds noise the same way): the sample stage's key
        "diffusion": {k: v for k, v in ctx.plain["diffusion"].items() if k not in SAMPLING_KEYS},
        "sizes": den_kwargs,
        "stop": ctx.plain["stop"],
        "condition": ctx.plain["condition"],
        "seed": ctx.seed,
    }

    def compute(rid: str) -> StageOutput:
        t0 = time.perf_counter()
        cond, cond_acc = None, None
        if ccfg.enabled:
            data = ctx.graph.data
            cond, cond_acc = condition_vector(
                data.x,
                data.edge_index,
                data.y,
                data.get("train_mask"),
                cond_dim,
                int(ccfg.steps),
                float(ccfg.lr),
                ctx.seed,
                train_pos=data.get("train_pos"),  # link prediction: the condition learns the link task
            )
        pl.seed_everything(ctx.seed, workers=False, verbose=False)
        module = GeneratorModule(
            None,
            Denoiser(**den_kwargs),
            scheduler,
            stage="diffusion",
            lr=dcfg.lr,
            weight_decay=dcfg.weight_decay,
            cond=cond,
            ema_beta=dcfg.get("ema"),
        )
        split = holdout(ctx, latents.size(0))
        tr = split[0] if split else slice(None)
        fitted = fit(ctx, module, latents[tr], int(dcfg.steps), ctx.seed + 1, val=diffusion_val(ctx, latents, split))
        info = {
            "stage": "diffusion",
            "kwargs": den_kwargs,
            **fitted,
            "condition_train_acc": cond_acc,
            "ema": dcfg.get("ema"),
        }
        files = {CONDITION: {"cond": cond}} if cond is not None else None
        return ctx.output(rid, [ae_id], info, module.sampling_denoiser().state_dict(), files, t0)

    st = cached_stage(ctx.zoo, key, compute, "diffusion")
    denoiser = Denoiser(**den_kwargs)
    denoiser.load_state_dict(st.entry.state_dict())
    denoiser.eval()
    ctx.walls["diffusion_s"] = float(st.entry.record["wall_time_s"])
    cond = st.entry.file(CONDITION)["cond"] if cond_dim else None
    return st.run_id, denoiser, scheduler, cond


# ------------------------------------------------------------------------------------------- 6. sample
def _plot(path: Path, collected_val: list[float], gen_val, perturb_val, title: str) -> None:
    with png(path, "generator plot") as ax:
        series = [
            ([100 * float(v) for v in vals], label, color)
            for vals, label, color in (
                (collected_val, "collected", "C0"),
                (gen_val, "generated", "C3"),
                (perturb_val, "perturbed best", "C7"),
            )
        ]
        values = [v for vals, _, _ in series for v in vals]
        lo, hi = min(values), max(values)
        bins = torch.linspace(lo - 0.05, hi + 0.05, 31).tolist()  # one set of bins for the three series
        for vals, label, color in series:
            ax.hist(vals, bins=bins, alpha=0.55, label=label, color=color)
        ax.set_xlabel("validation accuracy (%)")
        ax.set_ylabel("parameter sets")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)


def _sample_metrics(
    ctx: GenerationContext,
    generated: torch.Tensor,
    collected: torch.Tensor,
    collected_val: list[float],
    gen: torch.Generator,
) -> tuple[dict, dict, int, dict]:
    """Evaluate the samples and the same-budget controls: (metrics, sample accuracies, pick, control accuracies)."""
    n = generated.size(0)
    ev = SetEvaluator(ctx.template, ctx.graph)
    acc = ev.accuracies([ctx.codec.full_state(ctx.base, v) for v in generated])
    pick, pick_val, pick_test = select(acc["val"], acc["test"])
    ratios = nn_ratios(generated, collected)
    # controls under the same selection budget: n perturbations of the best checkpoint (σ per position = the
    # spread of the collected checkpoints), n draws of a per-parameter Gaussian (below) and the uniform soup of the
    # collected checkpoints
    sigma = collected.std(0, unbiased=False)
    perturbed = ctx.codec.flatten(ctx.base) + sigma * torch.randn((n, ctx.codec.dim), generator=gen)
    perturb_acc = ev.accuracies([ctx.codec.full_state(ctx.base, v) for v in perturbed])
    _, perturb_val, perturb_test = select(perturb_acc["val"], perturb_acc["test"])
    soup_acc = ev.accuracies([ctx.codec.full_state(ctx.base, collected.mean(0))])
    base_acc = ev.accuracies([ctx.base])
    # a per-parameter Gaussian fitted to the collected checkpoints (mean and spread of each position), the
    # generator baseline no published weight generator beats (../shared/reference/zoos_and_encoders.md)
    gauss = collected.mean(0) + sigma * torch.randn((n, ctx.codec.dim), generator=gen)
    gauss_acc = ev.accuracies([ctx.codec.full_state(ctx.base, v) for v in gauss])
    _, gauss_val, gauss_test = select(gauss_acc["val"], gauss_acc["test"])
    metrics = {
        "gen/best_val": pick_val,
        f"test/{ev.metric}": pick_test,  # accuracy, or AUC for link prediction
        f"val/{ev.metric}": pick_val,
        "gen/test_at_best_val": pick_test,
        "gen/val_mean": float(acc["val"].mean()),
        "gen/val_median": float(acc["val"].median()),
        "gen/test_mean": float(acc["test"].mean()),
        "gen/test_max": float(acc["test"].max()),
        "gen/nn_ratio_median": float(ratios.median()),
        "gen/nn_ratio_p10": float(torch.quantile(ratios, 0.1)),
        "gen/nn_ratio_selected": float(ratios[pick]),
        "gen/baseline_perturb_val": perturb_val,
        "gen/baseline_perturb_test": perturb_test,
        "gen/baseline_gaussian_val": gauss_val,
        "gen/baseline_gaussian_test": gauss_test,
        # samples that score exactly the starting point's validation value: generation that did not move it
        "gen/share_val_equal_base": float((acc["val"] == base_acc["val"][0]).float().mean()),
        "gen/baseline_soup_val": float(soup_acc["val"][0]),
        "gen/baseline_soup_test": float(soup_acc["test"][0]),
        "gen/search_best_val": float(base_acc["val"][0]),
        "gen/search_best_test": float(base_acc["test"][0]),
        "gen/collected_val_max": max(collected_val),
        "gen/n": n,
    }
    return metrics, {**acc, "nn_ratio": ratios}, pick, perturb_acc


def sample_stage(
    ctx: GenerationContext,
    collect_id: str,
    diffusion_id: str,
    collected: torch.Tensor,
    collected_val: list[float],
    ae: ParamAutoencoder,
    norm: Normalizer,
    denoiser: Denoiser,
    scheduler,
    cond: torch.Tensor | None,
    latent_shape: tuple,
) -> tuple[str, dict, bool]:
    """(stage id, the metrics of the selected sample and its controls, whether the stage was skipped)."""
    sc, dcfg = ctx.generator.sample, ctx.generator.diffusion
    sampling = {k: ctx.plain["diffusion"].get(k) for k in SAMPLING_KEYS}
    key = {"stage": "sample", "diffusion": diffusion_id, "sample": ctx.plain["sample"], **sampling, "seed": ctx.seed}

    def compute(rid: str) -> StageOutput:
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(ctx.seed)
        steps = dcfg.get("sample_steps") or (None if dcfg.sampler == "ddpm" else 50)
        lat = sample(
            denoiser,
            scheduler,
            int(sc.n),
            latent_shape,
            steps,
            cond,
            gen,
            progress=bool(ctx.cfg.trainer.get("enable_progress_bar", True)),
            batch_size=int(sc.batch_size),
        )
        with torch.no_grad():
            generated = norm.inverse(ae.decode(lat))
        metrics, acc, pick, perturb_acc = _sample_metrics(ctx, generated, collected, collected_val, gen)
        ctx.walls["sample_s"] = time.perf_counter() - t0
        out = ctx.output(
            rid,
            [collect_id, ctx.best.run_id],
            {
                "stage": "sample",
                "selected": pick,
                "walls": dict(ctx.walls),
                "search_runs": len(ctx.search_runs),
                "search_ids": sorted(ctx.search_runs),
            },
            ctx.codec.full_state(ctx.base, generated[pick]),
            {
                SAMPLES: {
                    "params": generated,
                    "val_acc": acc["val"],
                    "test_acc": acc["test"],
                    "nn_ratio": acc["nn_ratio"],
                }
            },
            t0,
            kind="generated",
            metrics=metrics,
            best_val=metrics["gen/best_val"],
            test_at_best_val=metrics["gen/test_at_best_val"],
        )
        out_dir = ctx.cfg.paths.get("output_dir")
        if out_dir:
            plot = Path(out_dir) / "generate.png"
            _plot(
                plot,
                collected_val,
                acc["val"].tolist(),
                perturb_acc["val"].tolist(),
                f"{ctx.cfg.dataset.name}/{ctx.best.record['backbone']}: pick val {100 * metrics['gen/best_val']:.1f}, "
                f"test {100 * metrics['gen/test_at_best_val']:.1f}; nn ratio {metrics['gen/nn_ratio_median']:.2f}",
            )
            log_image(ctx.loggers, "gen/val_histogram", plot)
        for lg in ctx.loggers:
            lg.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        return out

    st = cached_stage(ctx.zoo, key, compute, "sample")
    return st.run_id, st.entry.record["metrics"], st.skipped
