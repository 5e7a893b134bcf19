"""The training loop of :func:`gnnzoo.batched.trainer.train_batched`: one training step of every model per
epoch (their losses summed, so each gets exactly its own gradient), one eval-mode forward for val and test, and
per-model bookkeeping (curves, snapshots, best-val weights, early stopping, divergence)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gnnzoo.batched.graph import GraphOps
from gnnzoo.batched.models import BatchedBackbone
from gnnzoo.batched.optim import BatchedOptimizer
from gnnzoo.data.datasets import GraphData
from gnnzoo.lit.metrics import make_metric
from gnnzoo.utils.logging import console
from gnnzoo.zoo.store import SNAPSHOTS, Zoo, save_weights


class BatchEvaluator:
    """Losses and metrics of the N models on a node set, from their logits ``[N, nodes, classes]``."""

    def __init__(self, graph: GraphData, n_models: int):
        d = graph.data
        self.graph, self.y, self.n = graph, d.y, n_models
        self.idx = {k: getattr(d, f"{k}_mask").nonzero().view(-1) for k in ("train", "val", "test")}
        self.metric = make_metric(graph.metric, graph.num_classes, graph.ogb_name)

    def ce_and_pred(
        self, logits: torch.Tensor, nodes: torch.Tensor, rows_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lp = torch.log_softmax(logits if rows_only else logits[:, nodes], dim=-1)  # [N, |nodes|, C]
        loss = -lp.gather(2, self.y[nodes].view(1, -1, 1).expand(self.n, -1, 1)).squeeze(2).mean(1)
        return loss, lp.detach().argmax(-1)

    def score(self, pred: torch.Tensor, nodes: torch.Tensor) -> list[float]:
        if self.graph.metric == "acc":
            return (pred == self.y[nodes]).float().mean(1).tolist()
        return [self.metric(pred[m], self.y[nodes]) for m in range(self.n)]


class LinkBatchEvaluator:
    """Link prediction's losses and metrics of the N models from their node embeddings ``[N, nodes, D]`` (inner
    product decoder): every model draws its own training negatives each epoch (its own generator), and is scored
    on the split's fixed validation / test pairs."""

    def __init__(self, graph: GraphData, n_models: int, generators: Sequence[torch.Generator], hits_k: int):
        self.d, self.n, self.generators, self.hits_k = graph.data, n_models, generators, int(hits_k)

    @staticmethod
    def scores(z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        return (z[:, pairs[0]] * z[:, pairs[1]]).sum(-1)  # [N, P]

    def train_loss(self, z: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        """Per-model BCE of the training edges against as many random pairs, and the training accuracy at 0.5."""
        pos = self.d.train_pos
        n_nodes, p = int(self.d.num_nodes), pos.size(1)
        neg = torch.stack(
            [torch.randint(0, n_nodes, (2, p), generator=g) for g in self.generators]
        )  # [N, 2, P]: uniform node pairs, as negative_sampling's sparse method draws them (collisions not removed)
        pos_logit = self.scores(z, pos)
        neg_logit = (
            z.gather(1, neg[:, 0, :, None].expand(-1, -1, z.size(2)))
            * z.gather(1, neg[:, 1, :, None].expand(-1, -1, z.size(2)))
        ).sum(-1)
        logits = torch.cat([pos_logit, neg_logit], dim=1)
        labels = torch.cat([torch.ones(p), torch.zeros(p)]).expand(self.n, -1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1)
        acc = ((logits.detach() > 0).float() == labels).float().mean(1).tolist()
        return loss, acc

    def evaluate(self, z: torch.Tensor) -> dict[str, list[float]]:
        from gnnzoo.lit.problems import link_metrics

        out: dict[str, list[float]] = {}
        for split in ("val", "test"):
            logits = self.scores(z, self.d[f"{split}_edges"])
            for m in range(self.n):
                for k, v in link_metrics(logits[m], self.d[f"{split}_labels"], self.hits_k).items():
                    out.setdefault(f"{split}/{k}", []).append(v)
        return out


class BatchTracker:
    """Per-model bookkeeping of a batched fit: curves, snapshots, best value / epoch / weights, divergence
    errors and which models still train (early stopping, NaN)."""

    def __init__(self, model: BatchedBackbone, n: int, mode: str, snap_every: list[int], snap_dirs: list):
        self.n, self.mode = n, mode
        self.curves = [{"epoch": []} for _ in range(n)]
        self.snapshots: list[list[dict]] = [[] for _ in range(n)]
        self.snap_every, self.snap_dirs = snap_every, snap_dirs
        self.best_val = torch.full((n,), -math.inf if mode == "max" else math.inf, dtype=torch.float64)
        self.best_epoch: list[int | None] = [None] * n
        self.best_state = {name: p.detach().clone() for name, p in model.parameters_by_name().items()}
        self.errors: list[str | None] = [None] * n
        self.active = torch.ones(n, dtype=torch.bool)

    def diverged(self, losses: torch.Tensor, epoch: int) -> None:
        finite = torch.isfinite(losses.detach())
        for m in (~finite & self.active).nonzero().view(-1).tolist():
            self.errors[m] = (
                f"DivergenceError: training loss became {float(losses[m].detach())} at epoch {epoch}, step {epoch}"
            )
            self.active[m] = False

    def observe(self, model: BatchedBackbone, epoch: int, res: dict[str, list[float]], monitor: str) -> None:
        """Record the epoch's metrics, write due snapshots, keep improved best-val weights."""
        value = torch.tensor(res[monitor], dtype=torch.float64)
        improved = (value > self.best_val) if self.mode == "max" else (value < self.best_val)
        improved &= self.active & ~torch.isnan(value)
        running = self.active.nonzero().view(-1).tolist()
        for m in running:
            c = self.curves[m]
            c["epoch"].append(epoch)
            for k, v in res.items():
                c.setdefault(k, []).append(float(v[m]))
        for m in running:  # zoo.snapshot_every, as the single path's recorder
            if self.snap_every[m] and (epoch + 1) % self.snap_every[m] == 0:
                rel = f"{SNAPSHOTS}/epoch_{epoch + 1:04d}.safetensors"
                digest = save_weights(
                    self.snap_dirs[m] / rel, model.single_state(m), metadata={"epoch": str(epoch + 1)}
                )
                self.snapshots[m].append({"epoch": epoch + 1, "file": rel, "sha256": digest})
        if bool(improved.any()):
            self.best_val = torch.where(improved, value, self.best_val)
            for m in improved.nonzero().view(-1).tolist():
                self.best_epoch[m] = epoch
            with torch.no_grad():
                for name, p in model.parameters_by_name().items():
                    sel = improved.view(-1, *([1] * (p.dim() - 1)))
                    self.best_state[name] = torch.where(sel, p.detach(), self.best_state[name])

    def stop_patient(self, patience: int | None) -> None:
        if patience is None:
            return
        for m in self.active.nonzero().view(-1).tolist():
            best = self.best_epoch[m]
            if best is not None and sum(e > best for e in self.curves[m]["epoch"]) >= patience:
                self.active[m] = False

    def best_so_far(self) -> float:
        return float(self.best_val.max()) if self.mode == "max" else float(self.best_val.min())


def _step(
    model: BatchedBackbone,
    opt: BatchedOptimizer,
    ev: BatchEvaluator,
    ops: GraphOps,
    x: torch.Tensor,
    tracker: BatchTracker,
    stacked_masks: dict[str, torch.Tensor],
    epoch: int,
) -> dict[str, list[float]] | None:
    """One training step of every active model, then one eval-mode forward; the epoch's metrics (None when no
    model is left to train)."""
    model.train()
    opt.zero_grad()
    if isinstance(ev, LinkBatchEvaluator):
        return _link_step(model, opt, ev, ops, x, tracker, epoch)
    logits = model(x, ops, out_nodes=ev.idx["train"])  # training loss: train nodes' receptive field only
    losses, tr_pred = ev.ce_and_pred(logits, ev.idx["train"], rows_only=True)
    tracker.diverged(losses, epoch)
    opt.active = tracker.active.clone()
    if not bool(tracker.active.any()):
        return None
    torch.where(tracker.active, losses, torch.zeros_like(losses)).sum().backward()
    params = model.parameters_by_name() if stacked_masks else {}
    for n, mask in stacked_masks.items():
        if params[n].grad is not None:
            params[n].grad.mul_(mask)  # pruned entries: no gradient, so no optimizer state either
    opt.step()
    with torch.no_grad():
        for n, mask in stacked_masks.items():
            params[n].mul_(mask)
        model.eval()
        out = model(x, ops)
        v_loss, v_pred = ev.ce_and_pred(out, ev.idx["val"])
        t_loss, t_pred = ev.ce_and_pred(out, ev.idx["test"])
        return {
            "val/loss": v_loss.tolist(),
            "val/acc": ev.score(v_pred, ev.idx["val"]),
            "test/loss": t_loss.tolist(),
            "test/acc": ev.score(t_pred, ev.idx["test"]),
            "train/loss": losses.detach().tolist(),
            "train/acc": ev.score(tr_pred, ev.idx["train"]),
        }


def _link_step(
    model: BatchedBackbone,
    opt: BatchedOptimizer,
    ev: LinkBatchEvaluator,
    ops: GraphOps,
    x: torch.Tensor,
    tracker: BatchTracker,
    epoch: int,
) -> dict[str, list[float]] | None:
    """:func:`_step` for link prediction: embeddings of every node, the link loss, then one eval-mode forward."""
    losses, tr_acc = ev.train_loss(model(x, ops))
    tracker.diverged(losses, epoch)
    opt.active = tracker.active.clone()
    if not bool(tracker.active.any()):
        return None
    torch.where(tracker.active, losses, torch.zeros_like(losses)).sum().backward()
    opt.step()
    with torch.no_grad():
        model.eval()
        res = ev.evaluate(model(x, ops))
    return {**res, "train/loss": losses.detach().tolist(), "train/acc": tr_acc}


def fit_batch(
    cfgs: Sequence[DictConfig],
    todo: list[tuple[int, str]],
    model: BatchedBackbone,
    opt: BatchedOptimizer,
    stacked_masks: dict[str, torch.Tensor],
    graph: GraphData,
    progress: bool,
) -> BatchTracker:
    """Train until every model stopped (epochs, patience or divergence), under one progress bar."""
    cfg0, n = cfgs[todo[0][0]], len(todo)
    if (cfg0.get("problem") or {}).get("name", "node") == "link":
        gens = [torch.Generator().manual_seed(int(cfgs[i].seed) + 1) for i, _ in todo]  # negatives' own stream
        ev = LinkBatchEvaluator(graph, n, gens, int(cfg0.problem.hits_k))
    else:
        ev = BatchEvaluator(graph, n)
    ops = GraphOps(graph.data.edge_index, graph.data.num_nodes)
    snap_every = [int(cfgs[i].zoo.get("snapshot_every") or 0) if cfgs[i].zoo.enabled else 0 for i, _ in todo]
    snap_dirs = [Zoo(cfgs[i].paths.zoo_dir).entry_dir(rid) for i, rid in todo]
    tracker = BatchTracker(model, n, cfg0.monitor.mode, snap_every, snap_dirs)
    limits = torch.tensor([int(cfgs[i].trainer.max_epochs) for i, _ in todo])  # each model's own length
    epochs, patience = int(limits.max()), cfg0.monitor.get("patience")
    bar = Progress(
        TextColumn("[bold]batched[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not progress,
        transient=True,
    )
    with bar:
        task = bar.add_task(f"{n} x {cfg0.backbone.name} on {cfg0.dataset.name}", total=epochs, info="")
        for epoch in range(epochs):
            res = _step(model, opt, ev, ops, graph.data.x, tracker, stacked_masks, epoch)
            if res is None:
                break
            tracker.observe(model, epoch, res, cfg0.monitor.metric)
            tracker.stop_patient(patience)
            tracker.active &= limits > epoch + 1  # a model stops after its own max_epochs
            opt.active = tracker.active.clone()
            bar.update(
                task, advance=1, info=f"{int(tracker.active.sum())} training, best val {tracker.best_so_far():.3f}"
            )
            if not bool(tracker.active.any()):
                break
    return tracker
