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

    ``fused_eval=True`` (full-batch training): the evaluation forward runs right after each
    optimizer step, on the same graph, and Lightning's validation loop is switched off by the task
    (``limit_val_batches=0``). Lightning's loop machinery costs ~5 ms per epoch on CPU, more than a
    GCN epoch on Cora; the results are the same (see tests/test_training.py).

    ``masker`` (optional, e.g. a lottery ticket's masks): an ``nn.Module`` called as
    ``masker(backbone, x, edge_index) -> logits`` in place of ``backbone(x, edge_index)``; its parameters
    (trainable masks) are optimised with the backbone's, without weight decay, and a ``regularizer()``
    method, if it has one, is added to the training loss (not to the logged loss).
    """

    def __init__(
        self,
        backbone: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        metric: Callable[[Tensor, Tensor], float] | None = None,
        monitor: str = "val/acc",
        fused_eval: bool = False,
        masker: nn.Module | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.masker = masker
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.metric = metric or make_metric("acc", getattr(backbone, "out_channels", 0))
        self.monitor = monitor
        self.fused_eval = fused_eval
        # set False when nothing in Lightning reads logged metrics (no progress bar, no extra
        # callbacks, no scheduler): early stopping and best-val selection read last_eval directly
        self.log_to_lightning = True
        self.last_eval_epoch = -1
        # a continued run (zoo.resumable) logs its epochs after the ones it already trained
        self.epoch_offset = 0
        self.last_eval: dict[str, float] = {}
        self._tr_loss = self._tr_correct = self._tr_count = 0.0

    # Plain attributes written several times per step (Lightning sets _current_fx_name around every hook
    # call, ~50 times an epoch): skip nn.Module.__setattr__'s parameter/module/buffer checks, ~3% of a
    # GCN epoch on Cora. None of these names is ever a parameter, submodule or buffer.
    _PLAIN_ATTRS = frozenset(
        {"_current_fx_name", "_tr_loss", "_tr_correct", "_tr_count", "last_eval", "last_eval_epoch"}
    )

    def __setattr__(self, name: str, value: Any) -> None:
        if name in BackboneModule._PLAIN_ATTRS and "_modules" in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        if self.masker is not None:
            return self.masker(self.backbone, x, edge_index)
        return self.backbone(x, edge_index)

    # ---------------------------------------------------------------- training
    @property
    def last_train(self) -> dict[str, float]:
        """Mean train loss/accuracy over the current (or last) epoch's steps so far."""
        if not self._tr_count:
            return {}
        return {"train/loss": self._tr_loss / self._tr_count, "train/acc": self._tr_correct / self._tr_count}

    def on_train_epoch_start(self) -> None:
        self._tr_loss = self._tr_correct = self._tr_count = 0.0

    def training_step(self, batch, batch_idx: int) -> Tensor:
        out = self.forward(batch.x, batch.edge_index)
        if "batch_size" in batch:
            bs = int(batch.batch_size)
            out, y = out[:bs], batch.y[:bs]
        else:
            out, y = out[batch.train_mask], batch.y[batch.train_mask]
        loss = F.cross_entropy(out, y)
        self._tally(loss, float((out.argmax(-1) == y).sum()), y.numel())
        regularizer = getattr(self.masker, "regularizer", None)
        return loss + regularizer() if regularizer is not None else loss

    def _tally(self, loss: Tensor, correct: float, n: int) -> None:
        """Add a step's loss and correct predictions to the epoch's train metrics; a non-finite loss raises
        :class:`DivergenceError` at once."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergenceError(
                f"training loss became {value} at epoch {self.current_epoch}, step {self.global_step}"
            )
        self._tr_loss += value * n
        self._tr_correct += correct
        self._tr_count += n

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.fused_eval:
            self.backbone.eval()
            with torch.no_grad():
                self._record_eval(self._evaluate(batch))
            self.backbone.train()

    def on_train_epoch_end(self) -> None:
        if self.fused_eval:
            self._log_eval()

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, batch) -> dict[str, float]:
        out = self.forward(batch.x, batch.edge_index)
        pred = out.argmax(-1)
        y = batch.y
        res = {}
        for split, mask in (("val", batch.val_mask), ("test", batch.test_mask)):
            res[f"{split}/loss"] = float(F.cross_entropy(out[mask], y[mask])) if mask.any() else float("nan")
            res[f"{split}/acc"] = self.metric(pred[mask], y[mask])
        return res

    def _record_eval(self, res: dict[str, float]) -> None:
        self.last_eval = res
        self.last_eval_epoch = self.current_epoch

    def _log_eval(self) -> None:
        # Only the monitored metric goes through Lightning's logging (early stopping, LR plateau and
        # the progress bar read it): each self.log call costs ~1 ms on CPU, as much as a GCN epoch
        # on Cora. The other metrics go straight to the loggers.
        if not self.last_eval:
            return
        if self.log_to_lightning:
            self.log(self.monitor, self.last_eval[self.monitor], batch_size=1, prog_bar=True)
        if self.loggers:
            metrics = {k: v for k, v in self.last_eval.items() if k.startswith("val/")} | self.last_train
            for lg in self.loggers:
                lg.log_metrics(metrics, step=self.current_epoch + self.epoch_offset)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._record_eval(self._evaluate(batch))

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_eval()

    def test_step(self, batch, batch_idx: int) -> None:
        res = self._evaluate(batch)
        self.last_eval = res
        self.log_dict(res, batch_size=1)

    # ---------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        params = self.backbone.parameters()
        extra = [p for p in self.masker.parameters() if p.requires_grad] if self.masker is not None else []
        if extra:
            params = [{"params": list(params)}, {"params": extra, "weight_decay": 0.0}]
        opt = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return opt
        sch = self.scheduler_factory(optimizer=opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sch, "interval": "epoch", "monitor": self.monitor}}
