"""GeneratorModule: the two trainable stages of GNN-Diff in one LightningModule. ``stage="autoencoder"``
trains the parameter autoencoder on the (normalised) collected parameters with noise on its input and on its
latent; ``stage="diffusion"`` trains the ε-predictor on the autoencoder's latents, each sample of a batch at
its own timestep, with an optional EMA copy of the denoiser. Given validation data, each stage reports its
validation loss (``gen/<stage>_val_loss``: reconstruction without noise; the ε-prediction error at fixed draws of
timestep and noise) and :class:`PlateauStop` ends it when that loss stops falling."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnzoo.generate.autoencoder import ParamAutoencoder


class GeneratorModule(pl.LightningModule):
    def __init__(
        self,
        autoencoder: ParamAutoencoder | None,
        denoiser: nn.Module | None = None,
        scheduler=None,
        stage: str = "autoencoder",
        lr: float = 1e-3,
        weight_decay: float = 2e-3,
        noise_in: float = 1e-3,
        noise_latent: float = 0.1,
        cond: Tensor | None = None,
        ema_beta: float | None = None,
    ):
        super().__init__()
        if stage not in ("autoencoder", "diffusion"):
            raise ValueError(f"stage must be autoencoder or diffusion, got {stage!r}")
        if stage == "autoencoder" and autoencoder is None:
            raise ValueError("the autoencoder stage needs an autoencoder")
        if stage == "diffusion" and (denoiser is None or scheduler is None):
            raise ValueError("the diffusion stage needs a denoiser and a noise scheduler")
        self.autoencoder, self.denoiser, self.scheduler = autoencoder, denoiser, scheduler
        self.stage, self.lr, self.weight_decay = stage, float(lr), float(weight_decay)
        self.noise_in, self.noise_latent = float(noise_in), float(noise_latent)
        self.register_buffer("cond", cond if cond is not None else torch.zeros(0))
        self.ema = None
        if stage == "diffusion" and ema_beta:
            from ema_pytorch import EMA

            self.ema = EMA(
                denoiser, beta=float(ema_beta), update_after_step=0, update_every=1, include_online_model=False
            )
            self.ema.train()  # never trained (no dropout or norms that care); train mode keeps Lightning quiet
        self.losses: list[float] = []
        self.last_timesteps: Tensor | None = None  # the timesteps of the last diffusion batch (one per sample)

    def ae_loss(self, x: Tensor, embedding: Tensor | None = None) -> Tensor:
        """Reconstruction MSE of ``x``; with ``embedding`` (an autoencoder built with ``embed_dim``) the latent is
        read from the embedding of ``x`` (no input noise then: the embedding is fixed)."""
        if embedding is not None:
            z = self.autoencoder.encode(embedding)
        else:
            z = self.autoencoder.encode(x + self.noise_in * torch.randn_like(x))
        z = z + self.noise_latent * torch.randn_like(z)
        return F.mse_loss(self.autoencoder.decode(z), x)

    def diffusion_loss(self, z0: Tensor) -> Tensor:
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (z0.size(0),), device=z0.device)
        self.last_timesteps = t
        eps = torch.randn_like(z0)
        zt = self.scheduler.add_noise(z0, eps, t)
        cond = self.cond if self.cond.numel() else None
        return F.mse_loss(self.denoiser(zt, t, cond), eps)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, emb = batch[0], (batch[1] if len(batch) > 1 else None)
        loss = self.ae_loss(x, emb) if self.stage == "autoencoder" else self.diffusion_loss(x)
        if not math.isfinite(float(loss.detach())):
            from gnnzoo.utils.errors import DivergenceError

            raise DivergenceError(f"generator {self.stage} loss became {float(loss)} at step {self.global_step}")
        self.losses.append(float(loss.detach()))
        self.log(f"gen/{self.stage}_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x.size(0))
        return loss

    def validation_step(self, batch, batch_idx: int) -> Tensor:
        """Autoencoder: ``(x[, embedding])``, the reconstruction error without noise; diffusion: ``(z0, t, eps)``,
        the ε-prediction error at those (fixed) timesteps and noises."""
        if self.stage == "autoencoder":
            x, emb = batch[0], (batch[1] if len(batch) > 1 else None)
            loss = F.mse_loss(self.autoencoder.decode(self.autoencoder.encode(x if emb is None else emb)), x)
        else:
            z0, t, eps = batch
            cond = self.cond if self.cond.numel() else None
            den = self.sampling_denoiser()  # (the EMA copy when there is one: the denoiser that samples)
            loss = F.mse_loss(den(self.scheduler.add_noise(z0, eps, t), t, cond), eps)
        self.log(f"gen/{self.stage}_val_loss", loss, on_step=False, on_epoch=True, batch_size=batch[0].size(0))
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update()

    def sampling_denoiser(self) -> nn.Module:
        """The denoiser to sample with: the EMA copy when there is one."""
        return (self.ema.ema_model if self.ema is not None else self.denoiser).eval()

    def configure_optimizers(self):
        params = self.autoencoder.parameters() if self.stage == "autoencoder" else self.denoiser.parameters()
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)


class PlateauStop(pl.Callback):
    """Stop training when ``monitor`` has not fallen below ``(1 - min_delta)`` x its best value for ``patience``
    validations in a row (a relative plateau: the stages' losses live on different scales)."""

    def __init__(self, monitor: str, patience: int = 4, min_delta: float = 0.01):
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.best, self.wait, self.history = math.inf, 0, []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.history.append((int(trainer.global_step), value))
        if value < self.best * (1 - self.min_delta) or self.best == math.inf:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True
