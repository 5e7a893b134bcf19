"""EncoderModule: trains an encoder of neural graphs to predict a checkpoint's target (validation accuracy)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def regression_metrics(pred: Tensor, y: Tensor) -> dict[str, float]:
    """Kendall τ (rank agreement), R² and MSE of ``pred`` against ``y``."""
    from scipy.stats import kendalltau

    pred, y = pred.double().cpu(), y.double().cpu()
    mse = float(((pred - y) ** 2).mean())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((pred - y) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    tau = kendalltau(pred.numpy(), y.numpy()).statistic if len(y) > 1 else float("nan")
    return {"tau": float(tau) if tau == tau else float("nan"), "r2": r2, "mse": mse}


class EncoderModule(pl.LightningModule):
    """MSE on standardised targets (``y_mean``, ``y_std`` of the training split). Validation runs on the val
    loader (index 0) and the test loader (index 1) every epoch; the weights with the best validation τ are
    kept (``best_state``, ``best``), and training stops after ``patience`` epochs without improvement."""

    def __init__(
        self,
        encoder: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        y_mean: float = 0.0,
        y_std: float = 1.0,
        patience: int | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.y_mean, self.y_std = float(y_mean), float(y_std) or 1.0
        self.patience = patience
        self.best: dict[str, float] = {}
        self.best_state: dict[str, Tensor] | None = None
        self.best_epoch: int | None = None
        self.best_preds: dict[str, tuple[Tensor, Tensor]] = {}
        self.curves: dict[str, list] = {"epoch": []}
        self._out: dict[int, list] = {}
        self._train_loss: list[float] = []

    def forward(self, batch) -> Tensor:
        return self.encoder(batch) * self.y_std + self.y_mean

    def training_step(self, batch, batch_idx: int) -> Tensor:
        pred = self.encoder(batch)
        loss = F.mse_loss(pred, (batch.y.view(-1) - self.y_mean) / self.y_std)
        if not math.isfinite(float(loss.detach())):
            from gnnzoo.utils.errors import DivergenceError

            raise DivergenceError(f"encoder training loss became {float(loss)} at epoch {self.current_epoch}")
        self._train_loss.append(float(loss.detach()))
        return loss

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._out.setdefault(dataloader_idx, []).append((self(batch).detach(), batch.y.view(-1)))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._out.clear()
            return
        res, preds = {}, {}
        for idx, split in ((0, "val"), (1, "test")):
            if idx not in self._out:
                continue
            p = torch.cat([a for a, _ in self._out[idx]])
            y = torch.cat([b for _, b in self._out[idx]])
            preds[split] = (p, y)
            for k, v in regression_metrics(p, y).items():
                res[f"encoder/{split}_{k}"] = v
        self._out.clear()
        if self._train_loss:
            res["encoder/train_loss"] = sum(self._train_loss) / len(self._train_loss)
            self._train_loss.clear()
        self.curves["epoch"].append(int(self.current_epoch))
        for k, v in res.items():
            self.curves.setdefault(k, []).append(v)
        tau = res.get("encoder/val_tau", float("nan"))
        self.log("encoder/val_tau", tau if tau == tau else -1.0, prog_bar=True, batch_size=1)
        for lg in self.loggers:
            lg.log_metrics(res, step=int(self.current_epoch))
        if tau == tau and (not self.best or tau > self.best["encoder/val_tau"]):
            self.best = res
            self.best_epoch = int(self.current_epoch)
            self.best_state = {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}
            self.best_preds = preds
        elif (
            self.patience is not None
            and self.best_epoch is not None
            and self.current_epoch - self.best_epoch >= self.patience
        ):
            self.trainer.should_stop = True

    def configure_optimizers(self):
        return torch.optim.AdamW(self.encoder.parameters(), lr=self.lr, weight_decay=self.weight_decay, amsgrad=True)
