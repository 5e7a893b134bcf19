"""ZooRecorder: a Lightning callback that keeps learning curves, best-val weights and snapshots."""

from __future__ import annotations

import math
from pathlib import Path

import pytorch_lightning as pl
import torch

from gnnzoo.zoo.store import SNAPSHOTS, save_weights


class ZooRecorder(pl.Callback):
    """Reads ``pl_module.last_eval`` at the end of every training epoch that was evaluated.

    * appends the epoch's metrics to ``curves``;
    * keeps an in-memory copy of the weights at the best value of ``monitor`` (strictly better,
      so ties keep the earliest epoch);
    * stops training when ``monitor`` has not improved for ``patience`` evaluated epochs
      (``None`` = never), so one monitor block drives selection and early stopping;
    * every ``snapshot_every`` epochs writes ``snapshots/epoch_XXXX.safetensors`` into ``entry_dir``.

    A continued run (``zoo.resumable``) starts from its earlier state with :meth:`resume_from`: its curves,
    best value, best weights and snapshots, and ``epoch_offset`` = the epochs it has already trained.
    """

    def __init__(
        self,
        monitor: str = "val/acc",
        mode: str = "max",
        snapshot_every: int = 0,
        entry_dir: str | Path | None = None,
        patience: int | None = None,
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"monitor.mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.snapshot_every = int(snapshot_every or 0)
        self.patience = None if patience is None else int(patience)
        self.stopped_epoch: int | None = None
        self.entry_dir = Path(entry_dir) if entry_dir else None
        self.curves: dict[str, list] = {"epoch": []}
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_masker_state: dict[str, torch.Tensor] | None = None  # pl_module.masker's, if it has one
        self.snapshots: list[dict] = []
        self.epoch_offset = 0

    def resume_from(self, record: dict, best_state: dict[str, torch.Tensor], epochs_done: int) -> None:
        self.curves = {k: list(v) for k, v in (record.get("curves") or {"epoch": []}).items()}
        self.curves.setdefault("epoch", [])
        self.best_value, self.best_epoch = record.get("best_val"), record.get("best_epoch")
        self.best_state = {k: v.detach().clone() for k, v in best_state.items()}
        self.snapshots = list(record.get("snapshots") or [])
        self.epoch_offset = int(epochs_done)

    def _better(self, v: float) -> bool:
        if math.isnan(v):
            return False
        if self.best_value is None:
            return True
        return v > self.best_value if self.mode == "max" else v < self.best_value

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning 2 runs the validation loop inside the epoch, before on_train_epoch_end; with
        # fused evaluation the module evaluates after the optimizer step. Either way last_eval is fresh.
        if pl_module.last_eval_epoch != trainer.current_epoch:
            return  # not evaluated this epoch (check_val_every_n_epoch > 1)
        epoch = int(trainer.current_epoch) + self.epoch_offset
        metrics = dict(pl_module.last_eval)
        metrics.update(pl_module.last_train)
        self.curves["epoch"].append(epoch)
        n = len(self.curves["epoch"])
        for k, v in metrics.items():
            col = self.curves.setdefault(k, [float("nan")] * (n - 1))
            col.append(float(v))
        for col in self.curves.values():  # keep columns aligned when a metric is missing this epoch
            if len(col) < n:
                col.append(float("nan"))
        if self.monitor not in metrics:
            raise KeyError(f"monitor metric {self.monitor!r} is not computed; available: {sorted(metrics)}")
        value = float(metrics[self.monitor])
        if self._better(value):
            self.best_value, self.best_epoch = value, epoch
            self.best_state = {k: v.detach().clone() for k, v in pl_module.backbone.state_dict().items()}
            masker = getattr(pl_module, "masker", None)
            if masker is not None:
                self.best_masker_state = {k: v.detach().clone() for k, v in masker.state_dict().items()}
        elif self.patience is not None and self.best_epoch is not None:
            waited = sum(1 for e in self.curves["epoch"] if e > self.best_epoch)
            if waited >= self.patience:
                trainer.should_stop = True
                self.stopped_epoch = epoch
        if self.snapshot_every and self.entry_dir and trainer.is_global_zero and (epoch + 1) % self.snapshot_every == 0:
            rel = f"{SNAPSHOTS}/epoch_{epoch + 1:04d}.safetensors"
            digest = save_weights(
                self.entry_dir / rel, pl_module.backbone.state_dict(), metadata={"epoch": str(epoch + 1)}
            )
            self.snapshots = [s for s in self.snapshots if s["epoch"] != epoch + 1] + [
                {"epoch": epoch + 1, "file": rel, "sha256": digest}
            ]

    def metric_at_best(self, key: str) -> float | None:
        if self.best_epoch is None or key not in self.curves:
            return None
        return self.curves[key][self.curves["epoch"].index(self.best_epoch)]
