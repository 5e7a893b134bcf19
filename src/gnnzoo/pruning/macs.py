"""Inference cost of a ticket in multiply-accumulates (the ``mac_saving`` of a pruned entry's record)."""

from __future__ import annotations

from torch import nn

from gnnzoo.pruning.masks import Masks


def macs(model: nn.Module, masks: Masks, num_nodes: int, num_edges: int) -> int:
    """Inference multiply-accumulates: nodes x nnz(W) over every linear map, plus aggregation over the kept
    (directed) edges, approximated as edges x the layer's output width (APPNP: x K steps; MLP: none)."""
    total = 0
    for name, p in model.named_parameters():
        if name.split(".")[-1] == "weight" and p.dim() == 2:
            nnz = int(masks[name].sum()) if name in masks else p.numel()
            total += num_nodes * nnz
    gnn = getattr(model, "gnn", model)  # a link predictor's / graph classifier's backbone aggregates
    if type(gnn).__name__ != "MLP":
        widths = [d_out for _, d_out in gnn.layer_dims()] if hasattr(gnn, "layer_dims") else []
        steps = getattr(getattr(gnn, "prop", None), "K", 1)
        total += num_edges * (sum(widths) if type(gnn).__name__ != "APPNP" else widths[-1] * steps)
    return total
