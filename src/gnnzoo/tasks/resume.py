"""Resumable runs (``zoo.resumable=true``, what the FMS sweeper trains): a run trained E epochs keeps its last
weights and its optimizer, scheduler and RNG state, so continuing it Δ epochs gives the curve E + Δ epochs give."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from gnnzoo.zoo.record import now_iso
from gnnzoo.zoo.recorder import ZooRecorder
from gnnzoo.zoo.store import SNAPSHOTS, Zoo, ZooEntry, save_weights

RESUME = "resume"  # a resumable run's training state: resume/epoch_XXXX.pt (optimizer, scheduler, RNG)


class TrainingState(pl.Callback):
    """Restores a continued run's optimizer, scheduler and RNG state when training starts, and keeps
    them when it ends (``zoo.resumable``), so E epochs then Δ more give the curve E + Δ epochs give."""

    def __init__(self, state: dict | None):
        self.state = state
        self.final: dict | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.state is None:
            return
        trainer.optimizers[0].load_state_dict(self.state["optimizer"])
        if self.state.get("scheduler") is not None and trainer.lr_scheduler_configs:
            trainer.lr_scheduler_configs[0].scheduler.load_state_dict(self.state["scheduler"])
        torch.set_rng_state(self.state["rng"])

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sch = trainer.lr_scheduler_configs[0].scheduler.state_dict() if trainer.lr_scheduler_configs else None
        self.final = {"optimizer": trainer.optimizers[0].state_dict(), "scheduler": sch, "rng": torch.get_rng_state()}
        # the last epoch's weights (the backbone is set to the best-val ones after the fit)
        self.last_weights = {k: v.detach().clone() for k, v in pl_module.backbone.state_dict().items()}


def resume_point(entry: ZooEntry) -> tuple[int, dict, dict]:
    """(epochs trained, last weights, training state) of a resumable entry; ZooError if they are unusable."""
    from gnnzoo.zoo.store import ZooError

    rec = entry.record
    done = int(rec.get("epochs_trained") or 0)
    info = rec.get("resume") or {}
    if not done or info.get("epoch") != done:
        raise ZooError(f"zoo entry {entry.run_id} has no training state to continue from (not a resumable run)")
    try:
        state = torch.load(str(entry.path / info["file"]), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ZooError(
            f"training state {entry.path / info['file']} of zoo entry {entry.run_id} cannot be read "
            f"({type(e).__name__}: {e}); delete the entry to train the run from scratch"
        ) from e
    return done, entry.snapshot(done), state


def record_resume(
    cfg: DictConfig,
    zoo: Zoo,
    rid: str,
    rec: dict,
    recorder: ZooRecorder,
    state_cb: TrainingState,
    prior,
    trainer: pl.Trainer,
    metrics: dict,
    t0: float,
) -> None:
    """A resumable run's epochs so far, its training state on disk and its stage in the record."""
    epochs = (prior[0] if prior else 0) + int(trainer.current_epoch)
    metrics["epochs_trained"] = epochs
    if cfg.zoo.enabled and rank_zero_only.rank == 0:
        write_resume_point(zoo.entry_dir(rid), recorder, state_cb, epochs)
    rec.update(
        epochs_trained=epochs,
        stopped_early=recorder.stopped_epoch is not None,
        resume={"file": f"{RESUME}/epoch_{epochs:04d}.pt", "epoch": epochs},
        stages=rec.get("stages", [])
        + [{"epochs": epochs, "wall_time_s": time.perf_counter() - t0, "finished_at": now_iso()}],
    )


def write_resume_point(entry_dir, recorder: ZooRecorder, state_cb: TrainingState, epochs: int) -> None:
    """A resumable run's last weights (as the snapshot of its last epoch) and its training state, written
    before its record: the record names them, so a kill at any point leaves the old record and its old state."""
    import io

    from gnnzoo.utils.io import atomic_write_bytes

    rel = f"{SNAPSHOTS}/epoch_{epochs:04d}.safetensors"
    digest = save_weights(entry_dir / rel, state_cb.last_weights, metadata={"epoch": str(epochs)})
    recorder.snapshots = [s for s in recorder.snapshots if s["epoch"] != epochs] + [
        {"epoch": epochs, "file": rel, "sha256": digest}
    ]
    buf = io.BytesIO()
    torch.save(state_cb.final, buf)
    atomic_write_bytes(entry_dir / RESUME / f"epoch_{epochs:04d}.pt", buf.getvalue())
