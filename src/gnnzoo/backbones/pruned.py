"""A pruned graph: which edges a ticket keeps, and a backbone that runs on the kept edges only.

Edges are counted in *units*: with ``symmetric=True`` the two directions (u, v) and (v, u) of an undirected
edge are one unit (kept or pruned together); with ``symmetric=False`` every directed edge is its own unit.
Self-loops are outside the mask: they are always kept (the layers add their own anyway) and never counted.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EdgeUnits:
    """The unit of every edge of ``edge_index`` (``-1`` for self-loops) and the number of units."""

    def __init__(self, edge_index: Tensor, symmetric: bool = True):
        self.symmetric = bool(symmetric)
        self.num_edges = int(edge_index.size(1))
        src, dst = edge_index[0].long(), edge_index[1].long()
        self.loops = src == dst
        n = int(edge_index.max()) + 1 if self.num_edges else 1
        a, b = (torch.minimum(src, dst), torch.maximum(src, dst)) if self.symmetric else (src, dst)
        uniq, inv = torch.unique(a[~self.loops] * n + b[~self.loops], return_inverse=True)
        self.unit = torch.full((self.num_edges,), -1, dtype=torch.long, device=edge_index.device)
        self.unit[~self.loops] = inv
        self.num_units = int(uniq.numel())

    def endpoints(self, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """(source, target) of one directed edge of every unit (the graph these units were built from)."""
        rep = torch.zeros(self.num_units, dtype=torch.long, device=edge_index.device)
        rep[self.unit[~self.loops]] = torch.arange(self.num_edges, device=edge_index.device)[~self.loops]
        return edge_index[0, rep], edge_index[1, rep]

    def directed(self, keep: Tensor) -> Tensor:
        """Bool per edge: kept if its unit is kept (self-loops always)."""
        if keep.numel() != self.num_units:
            raise ValueError(
                f"edge mask has {keep.numel()} entries, the graph has {self.num_units} "
                f"{'undirected' if self.symmetric else 'directed'} edges (another graph?)"
            )
        out = keep.to(self.unit.device)[self.unit.clamp(min=0)]
        return out | self.loops

    def per_edge(self, value: Tensor) -> Tensor:
        """A per-unit value spread to the edges (self-loops get 1)."""
        out = value[self.unit.clamp(min=0)]
        return torch.where(self.loops, torch.ones_like(out), out)


class PrunedBackbone(nn.Module):
    """A backbone with a ticket: its pruned weights are zeros in ``backbone``; ``edge_keep`` (bool per edge
    unit, or None) removes the pruned edges of the graph it was pruned on before every forward. A link predictor's
    ticket embeds nodes on the kept edges; its pairs are scored by ``backbone.score`` (the decoder is not pruned)."""

    def __init__(
        self,
        backbone: nn.Module,
        weight_masks: dict[str, Tensor] | None = None,
        edge_keep: Tensor | None = None,
        symmetric: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        self.weight_masks = dict(weight_masks or {})
        self.symmetric = symmetric
        self.register_buffer("edge_keep", None if edge_keep is None else edge_keep.bool())
        self._units: tuple | None = None

    @property
    def out_channels(self) -> int:
        return self.backbone.out_channels

    def kept(self, edge_index: Tensor) -> Tensor:
        """Bool per edge of ``edge_index``: kept by the ticket."""
        key = (edge_index.data_ptr(), edge_index.size(1))
        if self._units is None or self._units[0] != key:
            self._units = (key, EdgeUnits(edge_index, self.symmetric))
        return self._units[1].directed(self.edge_keep)

    def forward(self, x: Tensor, edge_index: Tensor, **kwargs) -> Tensor:
        """The ticket's output on the kept edges (``kwargs``: e.g. a graph classifier's ``batch``, a link
        predictor's ``pairs``)."""
        if self.edge_keep is None:
            return self.backbone(x, edge_index, **kwargs)
        kept = self.kept(edge_index)
        gnn = getattr(self.backbone, "gnn", self.backbone)  # a link predictor's backbone reads the edges
        if getattr(gnn, "renormalize", True):
            return self.backbone(x, edge_index[:, kept], **kwargs)
        # dense graph's degrees, pruned edges' messages times 0 (pruning.renormalize=false)
        return self.backbone(x, edge_index, edge_weight=kept.float(), **kwargs)
