"""``pruning=fastglt`` (one-shot pruning + gradual denoising): train dense weights and an edge mask for
``pretrain_epochs``; prune once by magnitude to the targets; for ``denoise_epochs`` drop, every ``delta`` epochs,
the fraction ``f(t) = alpha/2 (1 + cos(pi t / T))`` of the active entries with the smallest magnitude and regrow
as many pruned ones with the largest score (weights: accumulated |dense gradient|; edges: a degree score
``(d_u d_v)^-1/2`` plus the |gradient| of the edge's weight at 0, each scaled to [0, 1]); the masks at the
best-val epoch are the ticket, retrained from the initialization (``retrain``)."""

from __future__ import annotations

import math
import time

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from gnnzoo.backbones.build import build_backbone
from gnnzoo.backbones.pruned import EdgeUnits
from gnnzoo.lit.problems import train_loss
from gnnzoo.pruning.context import PruningContext, attach_masks, phase_config
from gnnzoo.pruning.masks import Ticket, top_keep
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.logging import console


def zero_optimizer_state(optimizer: torch.optim.Optimizer | None, param: Tensor, where: Tensor) -> None:
    """Zero the optimizer state (Adam moments, momentum) of ``param``'s entries ``where``."""
    if optimizer is None:
        return
    state = optimizer.state.get(param, {})
    for buf in state.values():
        if torch.is_tensor(buf) and buf.shape == param.shape:
            buf[where] = 0


class DropAndRegrow(pl.Callback):
    """FastGLT's gradual denoising (see the module docstring): every ``delta`` epochs, drop and regrow.

    Args:
        ticket: the masks being denoised (its ``edge_score`` holds the trainable edge mask).
        grads: where :class:`MaskEnforcer` accumulates the dense gradients of the weights (the regrow score).
        total: ``T``, the length of the denoising phase in epochs.
        delta: epochs between two updates.
        alpha: the initial drop fraction.
        accumulation: steps whose dense gradients score the weights to regrow.
        units: the graph's edge units, or None when the graph is not pruned.
    """

    def __init__(
        self,
        ticket: Ticket,
        grads: dict[str, Tensor],
        total: int,
        delta: int,
        alpha: float,
        accumulation: int,
        units: EdgeUnits | None,
    ):
        self.ticket, self.grads = ticket, grads
        self.total, self.delta, self.alpha, self.accumulation = total, delta, alpha, accumulation
        self.units = units
        self.updates = 0
        if units is not None:
            self.unit_src, self.unit_dst = units.endpoints(ticket.edge_index)

    def fraction(self, t: int) -> float:
        return self.alpha / 2 * (1 + math.cos(math.pi * t / self.total))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        to_update = (-(trainer.current_epoch + 1)) % self.delta
        if to_update == min(self.accumulation, self.delta) - 1:
            self.grads.clear()  # the dense gradients of the last `accumulation` steps before an update

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        t = trainer.current_epoch + 1
        if t % self.delta or t > self.total:
            return
        f = self.fraction(t)
        opt = trainer.optimizers[0] if trainer.optimizers else None
        self._update_weights(f, pl_module.backbone, opt)
        if self.units is not None:
            self._update_edges(f, pl_module.backbone, batch, opt)
        self.updates += 1
        self.grads.clear()

    @torch.no_grad()
    def _update_weights(self, f: float, backbone: nn.Module, opt) -> None:
        params = dict(backbone.named_parameters())
        masks = self.ticket.weight_masks
        new = {}
        for name, m in masks.items():
            n_active = int(m.sum())
            n = int(math.floor(f * n_active))
            if n == 0 or name not in self.grads or n_active == m.numel():
                continue
            w = params[name]
            kept = top_keep(w.abs(), n_active - n, m)
            grow = top_keep(self.grads[name], n, ~kept)
            new[name] = kept | grow
            w[grow] = 0.0  # regrown weights start at zero
            zero_optimizer_state(opt, w, ~new[name] | grow)
        if new:
            self.ticket.set_weight_masks({**masks, **new})
            for name, m in new.items():
                params[name].mul_(m)

    def _edge_grad(self, backbone: nn.Module, batch, keep: Tensor, score: Tensor) -> Tensor:
        """The gradient of each edge unit's weight at its current value (0 for pruned ones), on the full graph."""
        u = (keep.float() * score).requires_grad_()
        was_training = backbone.training
        backbone.eval()
        with torch.enable_grad():
            out = backbone(batch.x, self.ticket.edge_index, edge_weight=self.units.per_edge(u))
            loss = train_loss(backbone, out, batch)
            (grad,) = torch.autograd.grad(loss, u)
        backbone.train(was_training)
        return grad

    def _update_edges(self, f: float, backbone: nn.Module, batch, opt) -> None:
        keep = self.ticket.edge_keep
        n_active = int(keep.sum())
        n = int(math.floor(f * n_active))
        if n == 0:
            return
        score = self.ticket.edge_score.detach().clamp(min=0)
        grad = self._edge_grad(backbone, batch, keep, score)
        with torch.no_grad():
            kept = top_keep(score, n_active - n, keep)
            kept_dir = self.units.directed(kept) & ~self.units.loops
            num_nodes = int(self.ticket.edge_index.max()) + 1
            deg = 1 + torch.bincount(self.ticket.edge_index[1][kept_dir], minlength=num_nodes)
            deg_score = (deg[self.unit_src] * deg[self.unit_dst]).float().rsqrt()
            g = grad.abs()
            grow_score = deg_score / deg_score.max().clamp(min=1e-12) + g / g.max().clamp(min=1e-12)
            grow = top_keep(grow_score, n, ~kept)
            self.ticket.set_edge_keep(kept | grow)
            self.ticket.edge_score[grow] = score[kept].mean()  # regrown edges start at the mean active value
            zero_optimizer_state(opt, self.ticket.edge_score, grow)


def _pretrain(ctx: PruningContext) -> tuple[dict, Tensor | None]:
    """Step 1: dense weights and edge scores to prune from (pretrained, or the initialization and degrees)."""
    p, cfg = ctx.p, ctx.cfg
    if int(p.pretrain_epochs) > 0:
        console.print(f"[bold]fastglt[/]: pretraining {p.pretrain_epochs} epochs")
        holder: dict = {}
        pre = ctx.new_ticket(edge_scores=ctx.prune_graph, l1_graph=float(p.l1_graph))
        train(
            phase_config(cfg, int(p.pretrain_epochs), patience=None),
            prepare=lambda b: holder.update(backbone=b) or [],
            masker=pre,
        )
        state = {k: v.clone() for k, v in holder["backbone"].state_dict().items()}
        return state, (pre.edge_score.detach().clamp(min=0) if ctx.prune_graph else None)
    # prune the initialization (weights by magnitude, edges by degree)
    state = build_backbone(cfg).state_dict()
    if not ctx.prune_graph:
        return state, None
    deg = torch.bincount(ctx.edge_index[1], minlength=ctx.graph.num_nodes).float() + 1
    src, dst = ctx.units.endpoints(ctx.edge_index)
    return state, (deg[src] * deg[dst]).rsqrt()


def _prune_once(ctx: PruningContext, state: dict, edge_score: Tensor | None) -> Ticket:
    """Step 2: one-shot magnitude pruning to the targets."""
    ticket = ctx.new_ticket(edge_scores=ctx.prune_graph, l1_graph=float(ctx.p.l1_graph))
    ticket.set_weight_masks(ctx.magnitude(state, float(ctx.p.weight_sparsity)))
    if ctx.prune_graph:
        ticket.set_edge_keep(top_keep(edge_score, ctx.units.num_units - ctx.targets()[1]))
        with torch.no_grad():
            ticket.edge_score.copy_(torch.where(edge_score > 0, edge_score, torch.ones_like(edge_score)))
    return ticket


def fastglt(ctx: PruningContext) -> list[dict]:
    p, cfg = ctx.p, ctx.cfg
    rid = ctx.ticket_id()
    done = ctx.zoo.completed(rid)
    if done is not None:
        console.print(f"[yellow]skip[/] fastglt ticket {rid}: already in the zoo")
        return [ctx.skipped(rid, done)]
    t = time.perf_counter()
    state, edge_score = _pretrain(ctx)
    ticket = _prune_once(ctx, state, edge_score)
    initial_masks = {k: v.clone() for k, v in ticket.weight_masks.items()}
    # 3. denoise (prune and regrow every delta epochs); the masks at the best-val epoch are the ticket
    grads: dict[str, Tensor] = {}
    denoiser = DropAndRegrow(
        ticket, grads, int(p.denoise_epochs), int(p.delta), float(p.alpha), int(p.accumulation), ctx.units
    )
    prepare = attach_masks(lambda: ticket.weight_masks, grads, load=state, extra=[denoiser])
    console.print(f"[bold]fastglt[/]: denoising {p.denoise_epochs} epochs (update every {p.delta})")
    if not p.retrain:  # the denoised model itself is the entry
        c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        c.trainer.max_epochs = int(p.denoise_epochs)
        c.monitor.patience = None
        info = ctx.info(
            initial_masks,
            ticket.edge_keep.clone() if ctx.prune_graph else None,
            time.perf_counter() - t,
            retrained=False,
            denoise_updates=len(range(p.delta, p.denoise_epochs + 1, p.delta)),
        )
        res = train(
            c,
            kind="pruned",
            rid=rid,
            parents=[ctx.dense["run_id"]],
            prepare=prepare,
            fields={"pruning": info},
            masker=ticket,
            files=lambda: ctx.files(ticket.weight_masks, ticket.edge_keep if ctx.prune_graph else None),
        )
        return [{**res, "pruning": info}]
    train(phase_config(cfg, int(p.denoise_epochs), patience=None), prepare=prepare, masker=ticket)
    wmasks = {k: v.clone() for k, v in ticket.weight_masks.items()}
    edge_keep = ticket.edge_keep.clone() if ctx.prune_graph else None
    info = ctx.info(wmasks, edge_keep, time.perf_counter() - t, retrained=True, denoise_updates=denoiser.updates)
    # 4. retrain the ticket from the initialization
    return [{**ctx.retrain(rid, wmasks, edge_keep, info), "pruning": info}]
