"""``python generate.py`` (task=generate): GNN-Diff, one command, one pipeline.

1. **light search** (:mod:`~gnnzoo.generate.search`): a seeded random ``fraction`` of ``generator.search.grid``
   trained (batched where it can be) into the zoo, or the completed runs of a zoo query (``generator.search.query``);
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

Steps 3-6 are the stage functions of :mod:`~gnnzoo.generate.stages`: each a zoo entry (kind ``generator``, its
``generator.stage`` names it; the samples: kind ``generated``, whose weights are the selected model, loadable with
``Zoo.load``) with an id that hashes what determines it, so a re-run skips the stages that finished. Selection
never reads test labels. This module only wires them.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from gnnzoo.data.graph import graph_spec, load_graph
from gnnzoo.generate.checks import check_generator
from gnnzoo.generate.params import ParamCodec, target_names
from gnnzoo.generate.search import light_search, pick_best
from gnnzoo.generate.stages import GenerationContext, autoencoder_stage, collect_stage, diffusion_stage, sample_stage
from gnnzoo.utils.config import check_config, check_one_method
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import close_loggers, console, instantiate_loggers
from gnnzoo.zoo.store import Zoo

STAGE_SETTINGS = ("collect", "autoencoder", "diffusion", "condition", "sample", "stop")


def _context(cfg: DictConfig, zoo: Zoo, entries: list, loggers: list) -> GenerationContext:
    best = pick_best(entries)
    if graph_spec(best.record["config"]) != graph_spec(cfg):
        raise ConfigError(
            f"the best search run {best.run_id} was trained on another graph than "
            f"{cfg.dataset.name} ({graph_spec(best.record['config'])})"
        )
    template = best.build_backbone()
    names = target_names(template, cfg.generator.collect.target)
    base = best.state_dict()
    codec = ParamCodec.from_state(base, names)
    console.print(
        f"[bold]best of {len(entries)}[/]: {best.run_id} (val {best.record['best_val']:.4f}); "
        f"generating {codec.dim} parameters ({', '.join(names)})"
    )
    settings = OmegaConf.to_container(cfg.generator, resolve=True)
    plain = {k: settings.get(k) for k in STAGE_SETTINGS}
    return GenerationContext(
        cfg=cfg,
        zoo=zoo,
        best=best,
        graph=load_graph(cfg),
        template=template,
        names=names,
        base=base,
        codec=codec,
        plain=plain,
        seed=int(cfg.generator.seed),
        loggers=loggers,
        search_runs=[e.run_id for e in entries],
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    """The GNN-Diff pipeline; returns the metrics of the selected sample, ``value`` = its validation accuracy."""
    check_config(cfg)
    check_one_method(cfg, "generate")
    check_generator(cfg)
    zoo = Zoo(cfg.paths.zoo_dir)
    zoo.check_writable()
    # 1-2. search and pick (each search run logs to its own W&B run and finishes it: this run's loggers start after)
    entries, search_s = light_search(cfg, zoo)
    loggers = instantiate_loggers(cfg)
    try:
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        ctx = _context(cfg, zoo, entries, loggers)
        ctx.walls["search_s"] = search_s
        cid, collected, collected_val = collect_stage(ctx)
        aid, ae, norm, latents = autoencoder_stage(ctx, cid, collected)
        did, denoiser, scheduler, cond = diffusion_stage(ctx, aid, latents)
        gid, metrics, skipped = sample_stage(
            ctx, cid, did, collected, collected_val, ae, norm, denoiser, scheduler, cond, tuple(latents.shape[1:])
        )
    finally:
        close_loggers(loggers)
    console.print(
        f"[green]generated[/] {int(cfg.generator.sample.n)} sets: pick val {100 * metrics['gen/best_val']:.2f}, "
        f"test {100 * metrics['gen/test_at_best_val']:.2f} (search best {100 * metrics['gen/search_best_test']:.2f}, "
        f"perturb {100 * metrics['gen/baseline_perturb_test']:.2f}, soup "
        f"{100 * metrics['gen/baseline_soup_test']:.2f}); nn ratio median "
        f"{metrics['gen/nn_ratio_median']:.2f}; run_id={gid}"
    )
    return {
        **metrics,
        "run_id": gid,
        "skipped": skipped,
        "value": metrics["gen/best_val"],
        "stages": {
            "search": [e.run_id for e in entries],
            "best": ctx.best.run_id,
            "collect": cid,
            "autoencoder": aid,
            "diffusion": did,
            "sample": gid,
        },
    }
