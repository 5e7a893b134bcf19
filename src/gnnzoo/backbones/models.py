"""Backbones: plain ``nn.Module``s on ``torch_geometric.nn`` with one signature.

``Backbone(in_channels, hidden_channels, out_channels, num_layers, dropout, norm, act)`` and
``forward(x, edge_index, edge_weight=None) -> logits [N, out_channels]``.

``edge_weight`` (one real value per edge of ``edge_index``, optional) scales each edge's message; a pruned
edge is removed from ``edge_index`` (it then carries no message and gets no attention). GCN and APPNP pass
it to their normalisation (degrees are recomputed from the weighted, pruned graph) unless
``renormalize`` is False: then the message, already normalised with the degrees of the ``edge_index``
given, is multiplied by the weight (pass the unpruned graph with weight 0 on pruned edges to keep the
dense graph's degrees). SAGE, GIN and GAT multiply each message by its weight (GAT: after the softmax
over the edges given, so attention is renormalised over the kept edges). ``edge_index`` must then hold
no self-loops: the layers add their own, which are never weighted.

Dropout is applied to the input of every layer (input features included), as in Kipf & Welling.
``x`` may be a sparse CSR matrix (bag-of-words features, see ``gnnzoo.data.datasets.maybe_sparse``):
input dropout then acts on the stored values only, and the first layer starts with its linear
map, which CSR supports. For SAGE and GIN, whose PyG layers aggregate before the linear map, the
first layer is computed in the equivalent order (mean/sum aggregation commutes with a linear map).
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import APPNP as APPNPProp
from torch_geometric.nn import GATConv, GCNConv, GINConv, SAGEConv
from torch_geometric.nn.dense.linear import Linear as PygLinear

NORMS = {None: None, "none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}

# CSR transpose structure, keyed by the index tensors' storage: input dropout builds a new CSR each
# step but keeps the index tensors, so the structure is computed once per dataset. Entries hold the
# index tensors themselves, so a key's storage cannot be freed and reused while it is cached.
_TRANSPOSE: OrderedDict = OrderedDict()
_TRANSPOSE_MAX = 4


def csr_transpose_structure(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(perm, crow_t, col_t): the index structure of ``x^T`` for CSR ``x``, with
    ``values(x^T) = values(x)[perm]``."""
    crow, col = x.crow_indices(), x.col_indices()
    n_rows, n_cols = x.shape
    row = torch.repeat_interleave(torch.arange(n_rows, device=col.device), crow.diff())
    perm = torch.argsort(col * n_rows + row, stable=True)
    crow_t = torch.zeros(n_cols + 1, dtype=crow.dtype, device=col.device)
    crow_t[1:] = torch.bincount(col, minlength=n_cols).cumsum(0)
    return perm, crow_t, row[perm].to(col.dtype)


def _transpose_csr(x: Tensor) -> Tensor:
    crow, col = x.crow_indices(), x.col_indices()
    key = (crow.data_ptr(), col.data_ptr(), col.numel(), tuple(x.shape))
    hit = _TRANSPOSE.get(key)
    if hit is None:
        hit = _TRANSPOSE[key] = (crow, col, *csr_transpose_structure(x))
        while len(_TRANSPOSE) > _TRANSPOSE_MAX:
            _TRANSPOSE.popitem(last=False)
    else:
        _TRANSPOSE.move_to_end(key)
    perm, crow_t, col_t = hit[2:]
    return torch.sparse_csr_tensor(crow_t, col_t, x.values()[perm], (x.shape[1], x.shape[0]))


class _SparseLinear(torch.autograd.Function):
    """``x @ W^T`` for a constant CSR ``x``; the weight gradient uses a cached transpose of ``x``
    (torch's own backward re-sorts the matrix on every call, which dominated first-layer cost)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.x = x
        return x @ weight.t()

    @staticmethod
    def backward(ctx, grad: Tensor):
        if not ctx.needs_input_grad[1]:
            return None, None
        return None, (_transpose_csr(ctx.x) @ grad).t()


def sparse_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` for CSR ``x`` (no gradient w.r.t. ``x``); dense ``x`` goes to ``F.linear``."""
    if not x.is_sparse_csr or x.requires_grad:
        return F.linear(x, weight, bias)
    out = _SparseLinear.apply(x, weight)
    return out if bias is None else out + bias


class _SparseAwareLinear(nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        return sparse_linear(x, self.weight, self.bias)


class _SparseAwarePygLinear(PygLinear):
    def forward(self, x: Tensor) -> Tensor:
        return sparse_linear(x, self.weight, self.bias) if x.is_sparse_csr else super().forward(x)


def _scale_messages(conv, inputs, out: Tensor) -> Tensor | None:
    """Message forward hook: multiply each edge's message by ``conv._edge_weight`` (self-loops the layer
    appended after the given edges keep weight 1)."""
    w = conv.__dict__.get("_edge_weight")
    if w is None:
        return None
    n = out.size(0)
    if n != w.numel():
        if n < w.numel():
            raise ValueError(f"{type(conv).__name__}: {w.numel()} edge weights for {n} messages")
        w = torch.cat([w, w.new_ones(n - w.numel())])  # the layer's own self-loops, appended last
    return out * w.view(-1, *([1] * (out.dim() - 1)))


@contextmanager
def message_weights(conv, edge_weight: Tensor | None):
    """Inside the block every message of ``conv`` is scaled by ``edge_weight`` (see ``_scale_messages``)."""
    if edge_weight is None:
        yield
        return
    if not conv.__dict__.get("_scale_hooked"):
        conv.register_message_forward_hook(_scale_messages)
        conv.__dict__["_scale_hooked"] = True
    conv.__dict__["_edge_weight"] = edge_weight
    try:
        yield
    finally:
        conv.__dict__["_edge_weight"] = None


def weighted_call(conv, edge_weight: Tensor | None, *args, **kwargs):
    """``conv(*args, **kwargs)`` with every message scaled by ``edge_weight``."""
    if edge_weight is None:
        return conv(*args, **kwargs)
    with message_weights(conv, edge_weight):
        return conv(*args, **kwargs)


ACTS = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "tanh": nn.Tanh}


def dropout_input(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout that keeps sparse CSR input sparse (drops stored values only)."""
    if x.is_sparse_csr:
        if not training or p == 0.0:
            return x
        vals = F.dropout(x.values(), p, True)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), vals, x.size())
    return F.dropout(x, p, training)


def _check(
    name: str,
    in_channels: int,
    hidden_channels: int,
    out_channels: int,
    num_layers: int,
    dropout: float,
    norm: str | None,
    act: str,
) -> None:
    for key, v in (
        ("in_channels", in_channels),
        ("hidden_channels", hidden_channels),
        ("out_channels", out_channels),
        ("num_layers", num_layers),
    ):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: {key} must be a positive integer, got {v!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
    if norm not in NORMS:
        raise ValueError(f"{name}: norm must be one of {[k for k in NORMS if k]}, or null, got {norm!r}")
    if act not in ACTS:
        raise ValueError(f"{name}: act must be one of {list(ACTS)}, got {act!r}")


class Backbone(nn.Module):
    """Shared skeleton: ``layers[i]`` with dropout before, norm + activation after (but the last)."""

    name = "backbone"

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.5,
        norm: str | None = None,
        act: str = "relu",
        name: str | None = None,
    ):
        super().__init__()
        if name is not None and name != self.name:
            raise ValueError(
                f"config name {name!r} does not match backbone class {type(self).__name__} ({self.name!r})"
            )
        _check(self.name, in_channels, hidden_channels, out_channels, num_layers, dropout, norm, act)
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers, self.dropout = num_layers, float(dropout)
        self.norm_name, self.act_name = norm if norm != "none" else None, act
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        dims = self.layer_dims()
        for i, (d_in, d_out) in enumerate(dims):
            self.layers.append(self.make_layer(i, d_in, d_out))
            if i < len(dims) - 1 and self.norm_name:
                self.norms.append(NORMS[self.norm_name](d_out))
        self.act = ACTS[act]()
        # the first layer may see sparse CSR input: its linear maps take the cached-transpose path
        # (same parameters and names, same results; only the class changes)
        for m in self.layers[0].modules():
            if type(m) is nn.Linear:
                m.__class__ = _SparseAwareLinear
            elif type(m) is PygLinear:
                m.__class__ = _SparseAwarePygLinear

    def layer_dims(self) -> list[tuple[int, int]]:
        dims = [self.in_channels] + [self.hidden_channels] * (self.num_layers - 1) + [self.out_channels]
        return list(zip(dims[:-1], dims[1:]))

    def make_layer(self, i: int, d_in: int, d_out: int) -> nn.Module:
        raise NotImplementedError

    def apply_layer(self, i: int, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return weighted_call(self.layers[i], edge_weight, x, edge_index)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            x = dropout_input(x, self.dropout, self.training)
            x = self.apply_layer(i, x, edge_index, edge_weight)
            if i < last:
                if self.norm_name:
                    x = self.norms[i](x)
                x = self.act(x)
        return x

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}, norm={self.norm_name}, act={self.act_name}"


class MLP(Backbone):
    """Graph-agnostic baseline: ignores ``edge_index``."""

    name = "mlp"

    def make_layer(self, i, d_in, d_out):
        return nn.Linear(d_in, d_out)

    def apply_layer(self, i, x, edge_index, edge_weight=None):
        return self.layers[i](x)


class GCN(Backbone):
    name = "gcn"
    # edge weights enter the normalisation (True) or scale the normalised messages (False); see module doc
    renormalize = True

    def __init__(self, *args, cached: bool = False, add_self_loops: bool = True, **kwargs):
        self._conv_kwargs = dict(cached=cached, add_self_loops=add_self_loops)
        super().__init__(*args, **kwargs)

    def make_layer(self, i, d_in, d_out):
        return GCNConv(d_in, d_out, **self._conv_kwargs)

    def apply_layer(self, i, x, edge_index, edge_weight=None):
        if self.renormalize:
            return self.layers[i](x, edge_index, edge_weight)
        return weighted_call(self.layers[i], edge_weight, x, edge_index)


class SAGE(Backbone):
    name = "sage"

    def __init__(self, *args, aggr: str = "mean", **kwargs):
        if aggr not in ("mean", "add", "sum", "max"):
            raise ValueError(f"sage: aggr must be mean, sum or max, got {aggr!r}")
        self.aggr = aggr
        super().__init__(*args, **kwargs)

    def make_layer(self, i, d_in, d_out):
        return SAGEConv(d_in, d_out, aggr=self.aggr)

    def apply_layer(self, i, x, edge_index, edge_weight=None):
        conv = self.layers[i]
        if not x.is_sparse_csr:
            return weighted_call(conv, edge_weight, x, edge_index)
        if self.aggr == "max":
            return weighted_call(conv, edge_weight, x.to_dense(), edge_index)
        # lin_l(aggr(x_j)) + lin_r(x_i) == aggr(W_l x_j) + b_l + lin_r(x_i) for mean/sum
        h = sparse_linear(x, conv.lin_l.weight)
        with message_weights(conv, edge_weight):
            out = conv.propagate(edge_index, x=(h, h), size=None)
        if conv.lin_l.bias is not None:
            out = out + conv.lin_l.bias
        return out + conv.lin_r(x)


class GAT(Backbone):
    """GAT; ``hidden_channels`` is the total width of a hidden layer (``heads`` x per-head size)."""

    name = "gat"

    def __init__(self, *args, heads: int = 8, out_heads: int = 1, attn_dropout: float = 0.6, **kwargs):
        hidden = kwargs.get("hidden_channels", args[1] if len(args) > 1 else None)
        if not isinstance(heads, int) or heads < 1 or (hidden and hidden % heads):
            raise ValueError(f"gat: heads must be a positive integer dividing hidden_channels={hidden}, got {heads!r}")
        if not 0.0 <= float(attn_dropout) < 1.0:
            raise ValueError(f"gat: attn_dropout must be in [0, 1), got {attn_dropout}")
        self.heads, self.out_heads, self.attn_dropout = heads, out_heads, float(attn_dropout)
        super().__init__(*args, **kwargs)

    def make_layer(self, i, d_in, d_out):
        if i < self.num_layers - 1:
            return GATConv(d_in, d_out // self.heads, heads=self.heads, dropout=self.attn_dropout)
        return GATConv(d_in, d_out, heads=self.out_heads, concat=False, dropout=self.attn_dropout)


class GIN(Backbone):
    """GIN; each layer's MLP is Linear -> act -> Linear."""

    name = "gin"

    def __init__(self, *args, train_eps: bool = False, **kwargs):
        self.train_eps = train_eps
        super().__init__(*args, **kwargs)

    def make_layer(self, i, d_in, d_out):
        mlp = nn.Sequential(
            nn.Linear(d_in, self.hidden_channels), ACTS[self.act_name](), nn.Linear(self.hidden_channels, d_out)
        )
        return GINConv(mlp, train_eps=self.train_eps)

    def apply_layer(self, i, x, edge_index, edge_weight=None):
        conv = self.layers[i]
        if not x.is_sparse_csr:
            return weighted_call(conv, edge_weight, x, edge_index)
        # nn[0]((1+eps) x_i + sum_j x_j) == (1+eps) W x_i + sum_j W x_j + b
        first = conv.nn[0]
        h = sparse_linear(x, first.weight)
        with message_weights(conv, edge_weight):
            out = conv.propagate(edge_index, x=(h, h), size=None)
        out = out + (1 + conv.eps) * h + first.bias
        for m in list(conv.nn)[1:]:
            out = m(out)
        return out


class APPNP(Backbone):
    """APPNP: an MLP of ``num_layers`` linear layers, then ``K`` steps of personalised PageRank."""

    name = "appnp"

    def __init__(self, *args, K: int = 10, alpha: float = 0.1, **kwargs):
        if not isinstance(K, int) or K < 1:
            raise ValueError(f"appnp: K must be a positive integer, got {K!r}")
        if not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"appnp: alpha must be in (0, 1], got {alpha}")
        super().__init__(*args, **kwargs)
        self.prop = APPNPProp(K=K, alpha=float(alpha))

    def make_layer(self, i, d_in, d_out):
        return nn.Linear(d_in, d_out)

    renormalize = True  # as GCN

    def apply_layer(self, i, x, edge_index, edge_weight=None):
        return self.layers[i](x)

    def forward(self, x, edge_index, edge_weight=None):
        h = super().forward(x, edge_index)
        if self.renormalize:
            return self.prop(h, edge_index, edge_weight)
        return weighted_call(self.prop, edge_weight, h, edge_index)


BACKBONES = {cls.name: cls for cls in (MLP, GCN, SAGE, GAT, GIN, APPNP)}
