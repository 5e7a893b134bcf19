"""Latent DDPM: a 1-D convolutional ε-predictor with time (and graph-condition) embeddings, trained with
per-sample timesteps; noise schedules and sampling steps from ``diffusers`` (DDPM, or DDIM with fewer steps)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of integer timesteps ``t`` [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float, device=t.device) / max(1, half))
    args = t.float().unsqueeze(-1) * freqs
    emb = torch.cat([args.sin(), args.cos()], -1)
    return F.pad(emb, (0, dim % 2))


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, d_emb: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(1, c_out)
        self.emb = nn.Linear(d_emb, c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(1, c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        y = F.silu(self.norm1(self.conv1(h))) + self.emb(emb).unsqueeze(-1)
        y = F.silu(self.norm2(self.conv2(y)))
        return y + self.skip(h)


class Denoiser(nn.Module):
    """ε-predictor over a latent ``[B, C, L]``: conv blocks with widths ``channels`` down and back up (no
    resampling; additive skips from each down block to its up block), every block told the timestep and
    the condition (``cond_dim`` > 0) through a per-channel shift.

    Args:
        latent_channels: ``C`` of the latent; channels: the blocks' widths; d_emb: timestep/condition embedding
            width; cond_dim: width of the graph condition (0: unconditional).

    Shapes:
        - **input:** ``z [B, C, L]``, ``t [B]`` (or one timestep for all), ``cond [1 or B, cond_dim]`` or None
        - **output:** the predicted noise ``[B, C, L]``
    """

    def __init__(
        self, latent_channels: int, channels: Sequence[int] = (64, 128, 256), d_emb: int = 128, cond_dim: int = 0
    ):
        super().__init__()
        self.d_emb, self.cond_dim = int(d_emb), int(cond_dim)
        self.time = nn.Sequential(nn.Linear(d_emb, d_emb), nn.SiLU(), nn.Linear(d_emb, d_emb))
        self.cond = nn.Sequential(nn.Linear(cond_dim, d_emb), nn.SiLU(), nn.Linear(d_emb, d_emb)) if cond_dim else None
        self.inp = nn.Conv1d(latent_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList(_Block(a, b, d_emb) for a, b in zip([channels[0], *channels[:-1]], channels))
        rev = list(reversed(channels))
        self.up = nn.ModuleList(_Block(a, b, d_emb) for a, b in zip(rev, [*rev[1:], channels[0]]))
        self.out = nn.Conv1d(channels[0], latent_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.time(timestep_embedding(t.view(-1).expand(z.size(0)) if t.numel() == 1 else t, self.d_emb))
        if self.cond is not None:
            if cond is None:
                raise ValueError("this denoiser was built with a graph condition: pass cond")
            emb = emb + self.cond(cond.expand(z.size(0), -1) if cond.dim() == 2 and cond.size(0) == 1 else cond)
        h = self.inp(z)
        skips = []
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        for block, s in zip(self.up, reversed(skips)):
            h = block(h + s, emb)
        return self.out(h)


def make_scheduler(
    kind: str = "ddpm",
    timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 2e-2,
    clip: float | None = 1.0,
):
    """A ``diffusers`` scheduler: DDPM (ancestral, ``fixed_large`` variance as GNN-Diff) or DDIM; linear β,
    ε-prediction, the predicted clean latent clipped to ``[-clip, clip]`` (the latents are Tanh-bounded)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(
        num_train_timesteps=int(timesteps),
        beta_start=float(beta_start),
        beta_end=float(beta_end),
        beta_schedule="linear",
        prediction_type="epsilon",
        clip_sample=clip is not None,
        clip_sample_range=float(clip or 1.0),
    )
    if kind == "ddpm":
        return DDPMScheduler(variance_type="fixed_large", **common)
    if kind == "ddim":
        return DDIMScheduler(set_alpha_to_one=True, **common)
    raise ValueError(f"generator.diffusion.sampler={kind!r}: expected ddpm or ddim")


@torch.no_grad()
def sample(
    denoiser: nn.Module,
    scheduler,
    n: int,
    latent_shape: Sequence[int],
    steps: int | None = None,
    cond: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    batch_size: int = 100,
) -> Tensor:
    """``n`` latents by reverse diffusion (``steps`` inference steps: all of them for DDPM by default)."""
    from diffusers import DDIMScheduler

    steps = int(steps or scheduler.config.num_train_timesteps)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        scheduler.set_timesteps(steps)
        z = torch.randn((b, *latent_shape), generator=generator)
        it = scheduler.timesteps
        if progress:
            from rich.progress import track

            it = track(it, description=f"sampling {start + b}/{n}", transient=True)
        for t in it:
            eps = denoiser(z, torch.full((b,), int(t), dtype=torch.long), cond)
            kw = {"eta": 0.0} if isinstance(scheduler, DDIMScheduler) else {}
            z = scheduler.step(eps, t, z, generator=generator, **kw).prev_sample
        out.append(z)
    return torch.cat(out)
