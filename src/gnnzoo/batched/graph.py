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
        """``H`` [n_in, ...] -> ``A @ H`` [n_out, ...] with the trailing dims flattened and restored."""
        shape = H.shape
        out = SparseMatmul.apply(self.A, self.AT, H.reshape(shape[0], -1).contiguous())
        return out.view(self.A.shape[0], *shape[1:])

    def restrict(self, rows: Tensor, cols: Tensor) -> "SparseOp":
        """The [len(rows), len(cols)] block ``A[rows][:, cols]`` (``cols`` must hold every column
        that the rows use)."""
        n = self.A.shape[1]
        A = self.A.to_sparse_coo().coalesce()
        r, c = A.indices()
        keep = torch.zeros(self.A.shape[0], dtype=torch.bool)
        keep[rows] = True
        sel = keep[r]
        pos_r = torch.full((self.A.shape[0],), -1, dtype=torch.long)
        pos_r[rows] = torch.arange(rows.numel())
        pos_c = torch.full((n,), -1, dtype=torch.long)
        pos_c[cols] = torch.arange(cols.numel())
        rr, cc = pos_r[r[sel]], pos_c[c[sel]]
        if bool((cc < 0).any()):
            raise ValueError("restrict: cols misses columns used by rows")
        B = torch.sparse_coo_tensor(torch.stack([rr, cc]), A.values()[sel], (rows.numel(), cols.numel())).coalesce()
        return SparseOp(B.to_sparse_csr(), B.t().coalesce().to_sparse_csr())

    def in_neighbourhood(self, rows: Tensor) -> Tensor:
        """Sorted columns used by ``rows`` together with ``rows`` themselves."""
        crow, col = self.A.crow_indices(), self.A.col_indices()
        mask = torch.zeros(self.A.shape[1], dtype=torch.bool)
        mask[rows] = True
        starts, lens = crow[rows], crow[rows + 1] - crow[rows]
        idx = torch.repeat_interleave(starts - torch.cumsum(lens, 0) + lens, lens) + torch.arange(int(lens.sum()))
        mask[col[idx]] = True
        return mask.nonzero().view(-1)


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

    def receptive_field(self, kind: str, out_nodes: Tensor, num_layers: int) -> tuple[list[Tensor], list[SparseOp]]:
        """Node sets and operators to compute ``num_layers`` propagations of operator ``kind`` at
        ``out_nodes`` only: ``nodes[0]`` are the input rows, ``ops[l]`` maps ``nodes[l]`` to
        ``nodes[l + 1]``, ``nodes[-1] == sorted(out_nodes)``. Cached per (kind, nodes, layers)."""
        key = ("rf", kind, num_layers, out_nodes.data_ptr(), out_nodes.numel())
        hit = self._cache.get(key)
        if hit is not None and hit[0] is out_nodes:  # the same tensor (a key's memory cannot be reused: held here)
            return hit[1], hit[2]
        full = getattr(self, kind)
        nodes = [torch.unique(out_nodes)]
        for _ in range(num_layers):
            nodes.insert(0, full.in_neighbourhood(nodes[0]))
        ops = [full.restrict(nodes[i + 1], nodes[i]) for i in range(num_layers)]
        self._cache[key] = (out_nodes, nodes, ops)
        return nodes, ops

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
