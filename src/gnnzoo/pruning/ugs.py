"""``pruning=imp_ugs`` (UGS, iterative magnitude pruning of trainable masks): per round, train weights and
real-valued masks (weights ``m_θ``, edges ``m_g``) from the initialization with L1 penalties; at the best-val
epoch prune ``rate_weight`` of the remaining weights (one threshold over ``|m_θ|``, every output neuron keeping
at least ``pruning.min_per_neuron`` weights) and ``rate_graph`` of the remaining edges (``|m_g|``), the last
round clipped to land on the targets; retrain from the initialization with the masks: one zoo entry per round."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from gnnzoo.pruning.context import PruningContext, attach_masks, load_ticket, phase_config
from gnnzoo.pruning.masks import Masks, sparsity, top_keep
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.logging import console
from gnnzoo.zoo.store import TICKET


def prune_edges(score: Tensor, n_prune: int, keep: Tensor) -> Tensor:
    """``keep`` with ``n_prune`` more units removed: the kept ones with the smallest ``score``."""
    return top_keep(score, int(keep.sum()) - n_prune, keep)


def _pruned(masks: Masks) -> int:
    return sum(int((~m).sum()) for m in masks.values())


def _train_masks(
    ctx: PruningContext, round_no: int, wmasks: Masks, edge_keep: Tensor | None, generator: torch.Generator
):
    """Round ``round_no``'s mask phase: weights and real-valued masks trained from the initialization."""
    p = ctx.p
    ticket = ctx.new_ticket(
        weight_scores=ctx.targets()[0] > 0,
        edge_scores=ctx.prune_graph,
        l1_weight=float(p.l1_weight),
        l1_graph=float(p.l1_graph),
        score_noise=1e-5,
        generator=generator,
    )
    ticket.set_weight_masks(wmasks)
    if edge_keep is not None:
        ticket.set_edge_keep(edge_keep)
    edges_pruned = 0 if edge_keep is None else float((~edge_keep).float().mean())
    console.print(
        f"[bold]UGS round {round_no}[/]: training masks (weights {100 * sparsity(wmasks)['sparsity']:.1f}% "
        f"pruned, edges {100 * edges_pruned:.1f}%)"
    )
    frozen = {n: m.clone() for n, m in wmasks.items()}
    train(phase_config(ctx.cfg, patience=None), prepare=attach_masks(frozen), masker=ticket)
    return ticket


def _prune_round(ctx: PruningContext, ticket, wmasks: Masks, edge_keep: Tensor | None) -> tuple[Masks, Tensor | None]:
    """Prune ``rate_weight`` / ``rate_graph`` of what remains by mask magnitude, clipped to the targets."""
    p = ctx.p
    target_w, target_g = ctx.targets()
    w_total = sum(m.numel() for m in wmasks.values())
    pruned_w = _pruned(wmasks)
    if target_w > pruned_w:
        n = min(int(round(float(p.rate_weight) * (w_total - pruned_w))), target_w - pruned_w)
        wmasks = ctx.magnitude(ticket.weight_scores(), (pruned_w + n) / w_total, keep=wmasks)
    if edge_keep is not None:
        pruned_g = int((~edge_keep).sum())
        if target_g > pruned_g:
            n = min(int(round(float(p.rate_graph) * int(edge_keep.sum()))), target_g - pruned_g)
            edge_keep = prune_edges(ticket.edge_score.detach().clamp(min=0), n, edge_keep)
    return wmasks, edge_keep


def imp_ugs(ctx: PruningContext) -> list[dict]:
    target_w, target_g = ctx.targets()
    wmasks, edge_keep = ctx.all_kept()
    results, search_s = [], 0.0
    generator = torch.Generator().manual_seed(int(ctx.cfg.seed))
    for round_no in range(1, int(ctx.p.rounds) + 1):
        rid = ctx.ticket_id(round=round_no)
        done = ctx.zoo.completed(rid)
        if done is not None and done.record.get("files", {}).get(TICKET):
            wmasks, edge_keep = load_ticket(done)
            search_s = float(done.record["pruning"]["search_wall_s"])
            console.print(f"[yellow]skip[/] UGS round {round_no}: ticket {rid} already in the zoo")
            results.append(ctx.skipped(rid, done))
        else:
            t = time.perf_counter()
            ticket = _train_masks(ctx, round_no, wmasks, edge_keep, generator)
            wmasks, edge_keep = _prune_round(ctx, ticket, wmasks, edge_keep)
            search_s += time.perf_counter() - t
            info = ctx.info(wmasks, edge_keep, search_s, round=round_no)
            results.append({**ctx.retrain(rid, wmasks, edge_keep, info), "pruning": info})
        reached_g = edge_keep is None or int((~edge_keep).sum()) >= target_g
        if _pruned(wmasks) >= target_w and reached_g:
            break
    return results
