"""BackboneModule: the LightningModule that trains one backbone for node classification."""
from __future__ import annotations

import math
from typing import Any, Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnzoo.lit.metrics import make_metric
from gnnzoo.utils.errors import DivergenceError


class BackboneModule(pl.LightningModule):
    """Trains ``backbone`` (an ``nn.Module(x, edge_index) -> logits``) with cross-entropy.

    * full-batch batches carry ``train_mask``; neighbour-sampled ones carry ``batch_size`` (seed
      nodes first) and the loss is taken on the seeds;
    * validation is one full-graph forward in eval mode that yields val loss/accuracy and the test
      accuracy of the same epoch (kept in ``last_eval`` for the learning curves, not logged);
    * a non-finite training loss raises :class:`DivergenceError` at once.
    """

    def __init__(self, backbone: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None,
                 metric: Callable[[Tensor, Tensor], float] | None = None,
                 monitor: str = "val/acc"):
        super().__init__()
        self.backbone = backbone
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.metric = metric or make_metric("acc", getattr(backbone, "out_channels", 0))
        self.monitor = monitor
        self.last_eval: dict[str, float] = {}
        self.last_train: dict[str, float] = {}
        self._tr_loss = self._tr_correct = self._tr_count = 0.0

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.backbone(x, edge_index)

    # ---------------------------------------------------------------- training
    def on_train_epoch_start(self) -> None:
        self._tr_loss = self._tr_correct = self._tr_count = 0.0

    def training_step(self, batch, batch_idx: int) -> Tensor:
        out = self.backbone(batch.x, batch.edge_index)
        if "batch_size" in batch:
            bs = int(batch.batch_size)
            out, y = out[:bs], batch.y[:bs]
        else:
            out, y = out[batch.train_mask], batch.y[batch.train_mask]
        loss = F.cross_entropy(out, y)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergenceError(f"training loss became {value} at epoch {self.current_epoch}, "
                                  f"step {self.global_step}")
        n = y.numel()
        self._tr_loss += value * n
        self._tr_correct += float((out.argmax(-1) == y).sum())
        self._tr_count += n
        return loss

    def on_train_epoch_end(self) -> None:
        if self._tr_count:
            self.last_train = {"train/loss": self._tr_loss / self._tr_count,
                               "train/acc": self._tr_correct / self._tr_count}
            self.log_dict(self.last_train, on_epoch=True, batch_size=1)

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, batch) -> dict[str, float]:
        out = self.backbone(batch.x, batch.edge_index)
        pred = out.argmax(-1)
        y = batch.y
        res = {}
        for split, mask in (("val", batch.val_mask), ("test", batch.test_mask)):
            res[f"{split}/loss"] = float(F.cross_entropy(out[mask], y[mask])) if mask.any() else float("nan")
            res[f"{split}/acc"] = self.metric(pred[mask], y[mask])
        return res

    def validation_step(self, batch, batch_idx: int) -> None:
        res = self._evaluate(batch)
        self.last_eval = res
        self.log_dict({"val/acc": res["val/acc"], "val/loss": res["val/loss"]}, batch_size=1, prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        res = self._evaluate(batch)
        self.last_eval = res
        self.log_dict(res, batch_size=1)

    # ---------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        opt = self.optimizer_factory(params=self.backbone.parameters())
        if self.scheduler_factory is None:
            return opt
        sch = self.scheduler_factory(optimizer=opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sch, "interval": "epoch", "monitor": self.monitor}}
