"""How the generator's trainable stages train: :func:`fit` (a step budget, or until the stage's validation loss
plateaus), :func:`holdout` (the collection restarts that validate the denoiser) and :func:`diffusion_val` (its
deterministic validation batch). ``ctx`` is the run's :class:`~gnnzoo.generate.stages.GenerationContext`."""

from __future__ import annotations

import torch

from gnnzoo.generate.module import GeneratorModule, PlateauStop
from gnnzoo.lit.trainer import build_trainer

VAL_DRAWS = 16  # (timestep, noise) draws per held-out latent in the denoiser's validation loss


def fit(
    ctx,
    module: GeneratorModule,
    data: torch.Tensor,
    steps: int,
    seed: int,
    extra: torch.Tensor | None = None,
    val: tuple[torch.Tensor, ...] | None = None,
) -> dict:
    """Train ``module`` on batches drawn with replacement from ``data`` (and ``extra``) for ``steps`` steps, or,
    given ``val`` (the stage's validation batch) and ``generator.stop``, until its validation loss plateaus
    (:class:`PlateauStop`). ``{"loss": mean training loss of the last tenth of the steps run, "steps": steps run,
    "val_loss": last validation loss or None, "val_history": [(step, loss)]}``."""
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    batch_size = ctx.batch_size or data.size(0)
    ds = TensorDataset(data) if extra is None else TensorDataset(data, extra)
    sampler = RandomSampler(
        ds, replacement=True, num_samples=steps * batch_size, generator=torch.Generator().manual_seed(int(seed))
    )
    stop = ctx.generator.get("stop")
    callbacks, val_kw, val_loader = [], {"limit_val_batches": 0}, None
    if val is not None and stop:
        every = min(int(stop.every), steps)
        callbacks.append(PlateauStop(f"gen/{module.stage}_val_loss", int(stop.patience), float(stop.min_delta)))
        val_kw = {"val_check_interval": every, "check_val_every_n_epoch": None}
        val_loader = DataLoader(TensorDataset(*val), batch_size=val[0].size(0))
    trainer = build_trainer(
        ctx.cfg,
        callbacks=callbacks,
        loggers=ctx.loggers,
        max_epochs=1,
        max_steps=steps,
        log_every_n_steps=50,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=None,
        **val_kw,
    )
    trainer.fit(
        module, train_dataloaders=DataLoader(ds, batch_size=batch_size, sampler=sampler), val_dataloaders=val_loader
    )
    module.cpu()
    run = len(module.losses)
    tail = module.losses[-max(1, run // 10) :]
    history = callbacks[0].history if callbacks else []
    return {
        "loss": sum(tail) / len(tail),
        "steps": run,
        "val_loss": history[-1][1] if history else None,
        "val_history": history,
    }


def holdout(ctx, n: int) -> tuple[slice, slice] | None:
    """(train, validation) slices of the ``n`` collected checkpoints (their latents) for the denoiser when
    ``generator.stop`` is on: the last ``stop.holdout`` restarts (whole trajectories) validate; None when stopping
    is off or there are too few."""
    stop, c = ctx.generator.get("stop"), ctx.generator.collect
    if not stop:
        return None
    per = -(-int(c.k) // int(c.restarts))
    held = int(stop.holdout) * per
    if int(stop.holdout) < 1 or held >= n:
        return None
    return slice(0, n - held), slice(n - held, n)


def diffusion_val(ctx, latents: torch.Tensor, split) -> tuple | None:
    """The held-out latents, each at ``VAL_DRAWS`` fixed (timestep, noise) draws: a deterministic validation
    loss for the denoiser (None without a split)."""
    if split is None:
        return None
    z0 = latents[split[1]].repeat_interleave(VAL_DRAWS, 0)
    g = torch.Generator().manual_seed(ctx.seed + 2)
    t = torch.randint(0, int(ctx.generator.diffusion.timesteps), (z0.size(0),), generator=g)
    return z0, t, torch.randn(z0.shape, generator=g)
