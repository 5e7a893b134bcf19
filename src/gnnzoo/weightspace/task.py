"""``task=encoder`` (``python train.py encoder=ng_gnn``): learn to predict a checkpoint's validation accuracy
from its weights, on the zoo's own checkpoints.

The zoo query (``encoder.zoo``: kinds, datasets, backbones, snapshots) becomes a cached dataset of neural
graphs (identical weights once); trajectories (runs that share weights; never single runs or checkpoints) are
split into train/val/test; the encoder trains with MSE on
standardised targets and is selected by validation Kendall τ; the test metrics (τ, R², MSE on held-out runs)
and a predicted-vs-true scatter plot are reported; the trained encoder is a zoo entry of kind ``encoder``
(weights + everything needed to rebuild it) that :class:`gnnzoo.weightspace.encoder.TrainedEncoder` loads back,
with ``embed(state)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch_geometric.loader import DataLoader

from gnnzoo.lit.trainer import build_trainer
from gnnzoo.utils.config import check_config, check_one_method
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import close_loggers, console, instantiate_loggers
from gnnzoo.utils.plots import log_image, png
from gnnzoo.utils.seed import seed_everything
from gnnzoo.utils.validate import choice, integer, number
from gnnzoo.weightspace.dataset import (
    ZooGraphs,
    checkpoints,
    dataset_configs,
    graph_loader,
    input_bases,
    split_checkpoints,
)
from gnnzoo.weightspace.encoder import build_encoder
from gnnzoo.weightspace.module import EncoderModule, regression_metrics
from gnnzoo.zoo.record import build_record, now_iso
from gnnzoo.zoo.splits import SPLIT_KINDS
from gnnzoo.zoo.stage import StageOutput, cached_stage
from gnnzoo.zoo.store import Zoo

log = logging.getLogger("gnnzoo")


def check_encoder(cfg: DictConfig) -> None:
    e = cfg.encoder
    if not e.get("name"):
        raise ConfigError(
            "task=encoder needs an encoder: encoder=ng_gnn | ng_transformer | stat | hparams | probe | flat_mlp"
        )
    for key in ("epochs", "batch_size", "eval_batch_size", "inputs"):
        integer(e, key, "encoder", lo=1)
    integer(e, "per_trajectory", "encoder", lo=1, optional=True)
    integer(e, "val_per_trajectory", "encoder", lo=1, optional=True)
    number(e, "max_minutes", "encoder", lo=0, lo_open=True, optional=True)
    fr = list(e.split.fractions)
    if len(fr) != 3 or any(f <= 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise ConfigError(f"encoder.split.fractions={fr}: three positive fractions (train, val, test) summing to 1")
    if choice(e.split, "by", "encoder.split", SPLIT_KINDS) != "random" and not e.split.get("held"):
        raise ConfigError(f"encoder.split.by={e.split.by} holds one {e.split.by} out: set encoder.split.held=<name>")


def _scatter_plot(preds: dict, path: Path, title: str) -> None:
    with png(path, "encoder scatter plot", figsize=(4.2, 4)) as ax:
        lo, hi = 1.0, 0.0
        for split, color in (("val", "C0"), ("test", "C3")):
            if split in preds:
                p, y = preds[split]
                ax.scatter(100 * y.numpy(), 100 * p.numpy(), s=8, alpha=0.6, color=color, label=split)
                lo, hi = min(lo, float(y.min()), float(p.min())), max(hi, float(y.max()), float(p.max()))
        ax.plot([100 * lo, 100 * hi], [100 * lo, 100 * hi], "k--", lw=1)
        ax.set_xlabel("true validation accuracy (%)")
        ax.set_ylabel("predicted (%)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)


def _dataset(cfg: DictConfig, zoo: Zoo) -> tuple[list, ZooGraphs, dict, dict]:
    """The zoo query's checkpoints, what the encoder reads of them (graphs in their datasets' input bases and
    the cached baseline features), the split of trajectories and the checkpoint indices per split."""
    e = cfg.encoder
    q = OmegaConf.to_container(e.zoo, resolve=True)
    items = checkpoints(
        zoo,
        kinds=q.get("kinds") or ["run"],
        datasets=q.get("datasets"),
        backbones=q.get("backbones"),
        snapshots=bool(q.get("snapshots", True)),
        target=e.target,
    )
    configs = dataset_configs(zoo, items)
    ds = ZooGraphs(
        zoo, items, Path(cfg.paths.cache_dir) / "weightspace", input_bases(configs, cfg.paths, int(e.inputs))
    )
    reads = reads_of(e.model)
    if "probe" in reads:
        load = graph_loader(cfg.paths)
        ds.add_probe(lambda name: load(configs[name]))
    ds = ds.view(graphs="graph" in reads, fields=[r for r in reads if r != "graph"])
    sp = e.split
    splits = split_checkpoints(items, sp.get("by", "random"), list(sp.fractions), int(sp.seed), sp.get("held"))
    idx = {k: [i for i, c in enumerate(items) if c.trajectory in trajs] for k, trajs in splits.items()}
    return items, ds, splits, idx


def reads_of(model_cfg) -> tuple[str, ...]:
    """What an encoder class reads of a checkpoint (its ``reads``): ``graph`` and/or cached feature names."""
    from hydra.utils import get_class

    return tuple(getattr(get_class(model_cfg["_target_"]), "reads", ("graph",)))


def _fit(cfg: DictConfig, module: EncoderModule, loaders: dict, loggers: list) -> None:
    e = cfg.encoder
    minutes = e.get("max_minutes")
    trainer = build_trainer(
        cfg,
        loggers=loggers,
        max_epochs=int(e.epochs),
        max_time={"minutes": float(minutes)} if minutes else None,
        log_every_n_steps=50,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=1,
        gradient_clip_val=e.get("clip"),
        default_root_dir=None,
    )
    trainer.fit(module, train_dataloaders=loaders["train"], val_dataloaders=loaders["val"])
    if module.best_state is None:
        raise RuntimeError("the encoder never produced a finite validation τ (check the zoo and the target)")


class TrajectorySampler(torch.utils.data.Sampler):
    """Training order per epoch: every checkpoint (``per=None``), or ``per`` checkpoints drawn from each training
    trajectory (all of a shorter one), shuffled; seeded, and a new draw each epoch. A trajectory's snapshots are
    near-duplicates of one another: drawing a few per epoch gives every trajectory the same weight and bounds an
    epoch's cost by the number of trajectories, for every encoder alike."""

    def __init__(self, groups: list[list[int]], per: int | None, seed: int):
        self.groups, self.per, self.seed, self.epoch = groups, per, seed, 0

    def _draw(self) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        self.epoch += 1
        if self.per is None:
            picked = [i for g in self.groups for i in g]
        else:
            picked = [g[j] for g in self.groups for j in torch.randperm(len(g), generator=gen)[: self.per].tolist()]
        return [picked[j] for j in torch.randperm(len(picked), generator=gen).tolist()]

    def __iter__(self):
        return iter(self._draw())

    def __len__(self) -> int:
        return sum(len(g) if self.per is None else min(self.per, len(g)) for g in self.groups)


def _fixed_draw(items: list, indices: list[int], per: int | None, seed: int) -> list[int]:
    """At most ``per`` checkpoints of each trajectory (one seeded draw, the same every epoch); all when ``per`` is
    None. Validation reads this subset every epoch; the test split is always read whole."""
    if per is None:
        return list(indices)
    groups: dict[str, list[int]] = {}
    for i in indices:
        groups.setdefault(items[i].trajectory, []).append(i)
    gen = torch.Generator().manual_seed(seed)
    return sorted(g[j] for g in groups.values() for j in torch.randperm(len(g), generator=gen)[: int(per)].tolist())


@torch.no_grad()
def _predict(module: EncoderModule, loader) -> tuple[torch.Tensor, torch.Tensor]:
    module.eval()
    out = [(module(b), b.y.view(-1)) for b in loader]
    return torch.cat([p for p, _ in out]), torch.cat([y for _, y in out])


def _model_and_loaders(cfg: DictConfig, items: list, ds: ZooGraphs, idx: dict):
    """The encoder (seeded), its LightningModule on standardised targets, and the split loaders."""
    e = cfg.encoder
    seed_everything(cfg.seed)
    dims = {"inputs": int(e.inputs), "num_params": ds.num_params() if ds.graphs else set()}
    model, model_kwargs = build_encoder(OmegaConf.to_container(e, resolve=True)["model"], dims)
    ys = torch.tensor([items[i].target for i in idx["train"]])
    y_mean, y_std = float(ys.mean()), float(ys.std()) if len(ys) > 1 else 1.0
    module = EncoderModule(
        model, lr=e.lr, weight_decay=e.weight_decay, y_mean=y_mean, y_std=y_std or 1.0, patience=e.get("patience")
    )
    per = e.get("per_trajectory")
    groups: dict[str, list[int]] = {}
    for pos, i in enumerate(idx["train"]):
        groups.setdefault(items[i].trajectory, []).append(pos)
    sampler = TrajectorySampler(list(groups.values()), None if per is None else int(per), int(cfg.seed))
    loaders = {"train": DataLoader(ds[torch.tensor(idx["train"])], batch_size=int(e.batch_size), sampler=sampler)}
    val = _fixed_draw(items, idx["val"], e.get("val_per_trajectory"), int(cfg.seed))
    loaders["val"] = DataLoader(ds[torch.tensor(val)], batch_size=int(e.eval_batch_size), shuffle=False)
    loaders["test"] = DataLoader(ds[torch.tensor(idx["test"])], batch_size=int(e.eval_batch_size), shuffle=False)
    return model, model_kwargs, module, loaders, (y_mean, y_std)


def _test_metrics(module: EncoderModule, loaders: dict, items: list, idx: dict, rec: dict, wall: float) -> dict:
    """Read the test split once, with the selected weights: the metrics, and each test checkpoint's prediction in
    the record."""
    module.best_preds["test"] = _predict(module, loaders["test"])
    test = {f"encoder/test_{k}": v for k, v in regression_metrics(*module.best_preds["test"]).items()}
    seen = module.curves["epoch"] and len(module.curves["epoch"]) * len(loaders["train"].sampler)
    p_test, y_test = module.best_preds["test"]
    rec["encoder"]["test_predictions"] = {
        "checkpoints": [[items[i].run_id, items[i].epoch, items[i].snapshot is not None] for i in idx["test"]],
        "pred": [round(float(v), 6) for v in p_test],
        "y": [round(float(v), 6) for v in y_test],
    }
    return {
        **module.best,
        **test,
        "best_epoch": module.best_epoch,
        "epochs_run": len(module.curves["epoch"]),
        "train_graphs_per_s": seen / wall if seen else float("nan"),  # training + validation, per wall second
    }


def _train(cfg: DictConfig, zoo: Zoo, rid: str, items: list, ds: ZooGraphs, splits: dict, idx: dict) -> StageOutput:
    """Train the encoder as the zoo entry ``rid``; a failure is recorded (status failed) and re-raised."""
    enc = cfg.encoder
    model, model_kwargs, module, loaders, (y_mean, y_std) = _model_and_loaders(cfg, items, ds, idx)
    n_traj = {k: len(v) for k, v in splits.items()}
    console.print(
        f"[bold]encoder[/] {enc.name}: {len(items)} checkpoints of {len(ds.runs)} runs "
        f"(train/val/test trajectories {n_traj['train']}/{n_traj['val']}/{n_traj['test']}), "
        f"{sum(p.numel() for p in model.parameters())} parameters"
    )
    rec = build_record(
        cfg,
        "encoder",
        rid,
        parents=ds.runs,
        dataset="+".join(sorted({c.dataset for c in items})),
        backbone="+".join(sorted({c.backbone for c in items})),
        encoder={
            "name": enc.name,
            "model": model_kwargs,
            "y_mean": y_mean,
            "y_std": y_std,
            "target": enc.target,
            "checkpoints": len(items),
            "runs": len(ds.runs),
            "splits": {k: sorted(v) for k, v in splits.items()},  # trajectories
            "split_by": str(cfg.encoder.split.get("by", "random")),
            "split_checkpoints": {k: len(v) for k, v in idx.items()},
        },
    )
    loggers = instantiate_loggers(cfg)
    t0 = time.perf_counter()
    try:
        for lg in loggers:
            lg.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "run_id": rid})
        _fit(cfg, module, loaders, loggers)
        model.load_state_dict(module.best_state)
        metrics = _test_metrics(module, loaders, items, idx, rec, time.perf_counter() - t0)
        rec.update(
            status="completed",
            metrics=metrics,
            best_epoch=module.best_epoch,
            best_val=metrics["encoder/val_tau"],
            test_at_best_val=metrics.get("encoder/test_tau"),
            curves=module.curves,
            wall_time_s=time.perf_counter() - t0,
            finished_at=now_iso(),
        )
        for lg in loggers:
            lg.log_metrics({f"best/{k.split('/')[-1]}": v for k, v in metrics.items() if k.startswith("encoder/")})
        out_dir = cfg.paths.get("output_dir")
        if out_dir:
            plot = Path(out_dir) / f"encoder_{enc.name}.png"
            _scatter_plot(
                module.best_preds,
                plot,
                f"{enc.name}: τ val {metrics['encoder/val_tau']:.3f}, test "
                f"{metrics.get('encoder/test_tau', float('nan')):.3f}",
            )
            log_image(loggers, "encoder/predicted_vs_true", plot)
    except Exception as err:
        rec["error"] = f"{type(err).__name__}: {err}"
        rec.update(wall_time_s=time.perf_counter() - t0, finished_at=now_iso())
        zoo.write(rec, None)
        raise
    finally:
        close_loggers(loggers)
    bases = {k: v for b in ds.bases.values() for k, v in b.tensors().items()}
    return StageOutput(rec, {**model.state_dict(), **bases})


def run(cfg: DictConfig) -> dict[str, Any]:
    """The encoder task: returns the test metrics with ``value`` = the best validation Kendall τ."""
    check_config(cfg)
    check_one_method(cfg, "encoder")
    check_encoder(cfg)
    zoo = Zoo(cfg.paths.zoo_dir)
    items, ds, splits, idx = _dataset(cfg, zoo)
    digest = hashlib.sha256(json.dumps([c.__dict__ for c in items], sort_keys=True).encode()).hexdigest()[:16]
    key = {
        "kind": "encoder",
        "encoder": OmegaConf.to_container(cfg.encoder, resolve=True),
        "checkpoints": digest,
        "seed": int(cfg.seed),
    }
    st = cached_stage(
        zoo,
        key,
        lambda rid: _train(cfg, zoo, rid, items, ds, splits, idx),
        "encoder",
        skip=bool(cfg.zoo.skip_completed),
    )
    metrics = st.entry.record["metrics"]
    if st.skipped:
        return {**metrics, "run_id": st.run_id, "skipped": True, "value": metrics.get("encoder/val_tau")}
    console.print(
        f"[green]encoder[/] {cfg.encoder.name}: val τ {metrics['encoder/val_tau']:.3f}, test τ "
        f"{metrics.get('encoder/test_tau', float('nan')):.3f}, R² "
        f"{metrics.get('encoder/test_r2', float('nan')):.3f} (epoch {metrics['best_epoch']}); "
        f"run_id={st.run_id}"
    )
    return {
        **metrics,
        "run_id": st.run_id,
        "skipped": False,
        "entry_dir": str(st.entry.path),
        "value": metrics["encoder/val_tau"],
    }
