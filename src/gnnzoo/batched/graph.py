"""Graph operators shared by every model of a batch, computed once per graph.

Each operator is a sparse CSR matrix ``A`` [n, n] with rows = target nodes, columns = source nodes,
applied to node features of all models at once: ``A @ H`` with ``H`` [n, N * d] (the N models'
features side by side). Their values reproduce PyG's layers exactly:

* ``gcn``: ``gcn_norm`` with self-loops (GCNConv, APPNP): D^-1/2 (A + I) D^-1/2, degree on targets;
* ``mean``: mean over incoming edges (SAGEConv, aggr='mean'); nodes without in-edges get 0;
* ``sum``: sum over incoming edges, duplicates counted (GINConv).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import add_self_loops, remove_self_loops


class SparseMatmul(torch.autograd.Function):
    """``A @ H`` for a constant sparse ``A``; backward uses the given transpose (``A^T @ dY``).
    torch's own backward for CSR products goes through a far slower path on CPU."""

    @staticmethod
    def forward(ctx, A: Tensor, AT: Tensor, H: Tensor) -> Tensor:
        ctx.AT = AT
        return A @ H

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, ctx.AT @ grad


@dataclass
class SparseOp:
    A: Tensor  # CSR [n, n]
    AT: Tensor  # CSR [n, n], the transpose

    @classmethod
    def from_edges(cls, row: Tensor, col: Tensor, value: Tensor, n: int) -> "SparseOp":
        A = torch.sparse_coo_tensor(torch.stack([row, col]), value, (n, n)).coalesce()
        return cls(A.to_sparse_csr(), A.t().coalesce().to_sparse_csr())

    def __call__(self, H: Tensor) -> Tensor:
        """``H`` [n, ...] -> ``A @ H`` with the trailing dims flattened and restored."""
        shape = H.shape
        out = SparseMatmul.apply(self.A, self.AT, H.reshape(shape[0], -1).contiguous())
        return out.view(shape[0], *shape[1:])


class GraphOps:
    """Lazily built, cached operators of one graph (``edge_index`` [2, E], source -> target)."""

    def __init__(self, edge_index: Tensor, num_nodes: int):
        self.edge_index = edge_index
        self.n = int(num_nodes)
        self._cache: dict[str, object] = {}

    def _get(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @property
    def gcn(self) -> SparseOp:
        def build():
            ei, w = gcn_norm(self.edge_index, None, self.n, add_self_loops=True)
            return SparseOp.from_edges(ei[1], ei[0], w, self.n)
        return self._get("gcn", build)

    @property
    def mean(self) -> SparseOp:
        def build():
            src, dst = self.edge_index
            deg = torch.bincount(dst, minlength=self.n).clamp(min=1).float()
            return SparseOp.from_edges(dst, src, 1.0 / deg[dst], self.n)
        return self._get("mean", build)

    @property
    def sum(self) -> SparseOp:
        def build():
            src, dst = self.edge_index
            return SparseOp.from_edges(dst, src, torch.ones(src.numel()), self.n)
        return self._get("sum", build)

    @property
    def gat_edges(self) -> tuple[Tensor, Tensor, Tensor]:
        """(src, dst, in-degree) with self-loops as GATConv builds them (remove, then add one per
        node), sorted by dst so that per-node reductions are contiguous segments."""
        def build():
            ei, _ = remove_self_loops(self.edge_index)
            ei, _ = add_self_loops(ei, num_nodes=self.n)
            order = torch.argsort(ei[1], stable=True)
            src, dst = ei[0][order], ei[1][order]
            return src, dst, torch.bincount(dst, minlength=self.n)
        return self._get("gat", build)


class SegmentSum(torch.autograd.Function):
    """Sum of contiguous segments along dim 0 (``segment_reduce``); backward is a gather, which is
    much faster on CPU than autograd's default for ``segment_reduce`` or ``index_add_``."""

    @staticmethod
    def forward(ctx, x: Tensor, lengths: Tensor, seg_of_row: Tensor) -> Tensor:
        ctx.seg_of_row = seg_of_row
        return torch.segment_reduce(x, "sum", lengths=lengths, axis=0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad.index_select(0, ctx.seg_of_row), None, None


def segment_softmax(a: Tensor, dst: Tensor, lengths: Tensor) -> Tensor:
    """Softmax of ``a`` [E, ...] over the edges of each destination (edges sorted by ``dst``);
    the same values as ``torch_geometric.utils.softmax(a, dst)``."""
    mx = torch.segment_reduce(a.detach(), "max", lengths=lengths, axis=0)  # shift only: no gradient needed
    e = (a - mx.index_select(0, dst)).exp()
    s = SegmentSum.apply(e, lengths, dst)
    return e / (s.index_select(0, dst) + 1e-16)
