"""``pruning=one_shot``: the dense run's best-val weights pruned by magnitude to the target at once; edges pruned
by saliency ``|∂L/∂w_e|`` at ``w = 1`` (L: cross-entropy of the dense model against its own predictions on every
node, so every edge gets a score and no label is read); the ticket retrained from ``rewind``.

Its ``search_wall_s`` includes the dense run's training (the ticket cannot exist without it), so a benchmark
must not add it again."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnzoo.backbones.pruned import EdgeUnits
from gnnzoo.pruning.context import PruningContext
from gnnzoo.pruning.masks import top_keep
from gnnzoo.pruning.objective import self_loss


def edge_saliency(backbone: nn.Module, data, edge_index: Tensor, units: EdgeUnits) -> Tensor:
    """``|∂L/∂w_u|`` at ``w = 1`` per edge unit; L: cross-entropy of ``backbone`` against its own predictions
    on every node, or on the training edges of a link predictor (eval mode, no labels read; see
    :func:`gnnzoo.pruning.objective.self_loss`)."""
    backbone.eval()
    w = torch.ones(units.num_units, requires_grad=True)
    out = backbone(data.x, edge_index, edge_weight=units.per_edge(w))
    loss = self_loss(backbone, out, data)
    (grad,) = torch.autograd.grad(loss, w)
    return grad.abs()


def one_shot(ctx: PruningContext) -> list[dict]:
    dense = ctx.zoo[ctx.dense["run_id"]]
    dense_state = dense.state_dict()
    wmasks = ctx.magnitude(dense_state, float(ctx.p.weight_sparsity))
    edge_keep = None
    if ctx.prune_graph:
        model = ctx.new_model()
        model.load_state_dict(dense_state)
        score = edge_saliency(model, ctx.graph.data, ctx.edge_index, ctx.units)
        edge_keep = top_keep(score, ctx.units.num_units - ctx.targets()[1])
    wall = float(dense.record.get("wall_time_s") or 0.0) + ctx.elapsed()
    start = dense_state if ctx.p.rewind == "dense" else None
    return [ctx.retrain(ctx.ticket_id(), wmasks, edge_keep, ctx.info(wmasks, edge_keep, wall), start=start)]
