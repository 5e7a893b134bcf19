"""Batched backbones: N models of one architecture with stacked weights, trained as one.

Every parameter of the single backbone (``gnnzoo.backbones``) is stored with a leading model dim
under the same name (``layers.0.lin.weight`` [out, in] -> [N, out, in]), so ``single_state(i)``
is exactly model ``i``'s ``state_dict`` and loads into the single backbone.

What the N models share: the graph and its normalised adjacency (one sparse product over all
models' features side by side), and when input dropout is off (evaluation, or p = 0) the input
features: the first layer is then one product ``X @ [W_1 ... W_N]``. With input dropout each model
gets its own mask (a block-diagonal sparse input for bag-of-words features). Dropout rates may
differ per model. Activations are laid out [N, n, d].

Not batched: ``norm='batch'`` (per-model running statistics are not implemented) and SAGE with
``aggr='max'`` (max aggregation does not commute with the linear map); both raise a clear error.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import softmax as scatter_softmax

from gnnzoo.backbones.models import APPNP, GAT, GCN, GIN, MLP, SAGE, Backbone
from gnnzoo.batched.graph import GraphOps

_ACT = {"relu": F.relu, "elu": F.elu, "gelu": F.gelu, "tanh": torch.tanh}


def arch_signature(model: Backbone) -> tuple:
    """Everything that must be equal for two single models to share a batch (not dropout)."""
    sig = [type(model).__name__, model.in_channels, model.hidden_channels, model.out_channels,
           model.num_layers, model.norm_name, model.act_name]
    for attr in ("heads", "out_heads", "aggr", "train_eps"):
        if hasattr(model, attr):
            sig.append((attr, getattr(model, attr)))
    if isinstance(model, APPNP):
        sig.append(("K", model.prop.K, "alpha", model.prop.alpha))
    if isinstance(model, GCN):
        sig.append(("conv", tuple(sorted(model._conv_kwargs.items()))))
    return tuple(sig)


def _drop(h: Tensor, p: Tensor, training: bool, gen: torch.Generator | None) -> Tensor:
    """Per-model dropout on [N, ...] activations with per-model rates ``p`` [N]."""
    if not training or not bool((p > 0).any()):
        return h
    keep = (1 - p).view(-1, *([1] * (h.dim() - 1)))
    mask = torch.rand(h.shape, generator=gen, dtype=h.dtype) < keep
    return h * mask / keep


class _BlockSparseLinear(torch.autograd.Function):
    """``Xb @ Wflat`` for a constant sparse ``Xb``; the weight gradient uses ``XbT`` (given)."""

    @staticmethod
    def forward(ctx, Xb: Tensor, XbT: Tensor, Wflat: Tensor) -> Tensor:
        ctx.XbT = XbT
        return Xb @ Wflat

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, ctx.XbT @ grad


_TRANSPOSE_CACHE: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}


def _csr_transpose_structure(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(crow, col, perm) of ``x^T`` in CSR, with ``values(x^T) = values(x)[perm]`` (cached)."""
    key = (x.crow_indices().data_ptr(), x.col_indices().data_ptr(), tuple(x.shape))
    if key not in _TRANSPOSE_CACHE:
        n, d = x.shape
        crow, col = x.crow_indices(), x.col_indices()
        rows = torch.repeat_interleave(torch.arange(n), crow[1:] - crow[:-1])
        perm = torch.argsort(col * n + rows)
        crow_t = torch.zeros(d + 1, dtype=crow.dtype)
        torch.cumsum(torch.bincount(col, minlength=d), 0, out=crow_t[1:])
        _TRANSPOSE_CACHE.clear()  # one graph at a time
        _TRANSPOSE_CACHE[key] = (crow_t, rows[perm].to(col.dtype), perm)
    return _TRANSPOSE_CACHE[key]


def _block_diag_csr(crow: Tensor, col: Tensor, vals: Tensor, N: int, nnz: int, n_rows: int, n_cols: int) -> Tensor:
    offs = torch.arange(N).view(N, 1)
    bcrow = torch.cat([(crow[:-1].unsqueeze(0) + offs * nnz).reshape(-1), torch.tensor([N * nnz])])
    bcol = (col.unsqueeze(0) + offs * n_cols).reshape(-1)
    return torch.sparse_csr_tensor(bcrow, bcol, vals.reshape(-1), (N * n_rows, N * n_cols))


def _linear_first(x: Tensor, W: Tensor, p: Tensor, training: bool, gen) -> Tensor:
    """Dropout(x) @ W_i^T for every model i; ``x`` [n, in] shared (dense or CSR), W [N, out, in]."""
    N, out, din = W.shape
    n = x.size(0)
    if not training or not bool((p > 0).any()):
        return F.linear(x, W.reshape(N * out, din)).view(n, N, out).transpose(0, 1)
    if x.is_sparse_csr:
        # per-model dropout masks on the stored values -> block-diagonal input [N*n, N*in]
        vals = x.values()
        nnz = vals.numel()
        keep = (1 - p).view(N, 1)
        v = vals.unsqueeze(0) * ((torch.rand(N, nnz, generator=gen) < keep) / keep)  # [N, nnz]
        crow_t, col_t, perm = _csr_transpose_structure(x)
        xb = _block_diag_csr(x.crow_indices(), x.col_indices(), v, N, nnz, n, din)
        xbt = _block_diag_csr(crow_t, col_t, v[:, perm], N, nnz, din, n)
        wflat = W.transpose(1, 2).reshape(N * din, out)
        return _BlockSparseLinear.apply(xb, xbt, wflat).view(N, n, out)
    xb = _drop(x.unsqueeze(0).expand(N, n, din), p, True, gen)
    return torch.bmm(xb, W.transpose(1, 2))


def _linear(h: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    out = torch.bmm(h, W.transpose(1, 2))
    return out if b is None else out + b.unsqueeze(1)


def _prop(op, h: Tensor) -> Tensor:
    """Apply a shared sparse operator to [N, n, d] features of all models in one product."""
    return op(h.transpose(0, 1)).transpose(0, 1)


class BatchedBackbone(nn.Module):
    """N single backbones of the same architecture, stacked. Build with :meth:`from_singles`."""

    def __init__(self, template: Backbone, states: Sequence[dict[str, Tensor]], dropout: Sequence[float],
                 attn_dropout: Sequence[float] | None = None):
        super().__init__()
        if template.norm_name == "batch":
            raise NotImplementedError("norm='batch' cannot be batched (per-model running statistics); "
                                      "use norm=null or norm=layer, or train these models one by one")
        if isinstance(template, SAGE) and template.aggr == "max":
            raise NotImplementedError("SAGE with aggr='max' cannot be batched (max does not commute with "
                                      "the linear map); use mean or sum")
        self.template = [template]  # kept out of the module tree (not a submodule)
        self.family = type(template).__name__.lower()
        self.num_models = len(states)
        single_params = dict(template.named_parameters())
        self.names = list(states[0].keys())
        self.params = nn.ParameterDict()
        for name in self.names:
            stacked = torch.stack([s[name].detach().clone() for s in states])
            key = name.replace(".", "__")
            if name in single_params:
                self.params[key] = nn.Parameter(stacked)
            else:
                self.register_buffer(f"buf__{key}", stacked)
        self.register_buffer("dropout", torch.tensor(list(dropout), dtype=torch.float))
        ad = attn_dropout if attn_dropout is not None else [0.0] * self.num_models
        self.register_buffer("attn_dropout", torch.tensor(list(ad), dtype=torch.float))
        self.generator: torch.Generator | None = None

    # ------------------------------------------------------------------ construction / export
    @classmethod
    def from_singles(cls, models: Sequence[Backbone]) -> "BatchedBackbone":
        if not models:
            raise ValueError("need at least one model")
        sig = arch_signature(models[0])
        for i, m in enumerate(models[1:], 1):
            if arch_signature(m) != sig:
                raise ValueError(f"model {i} has architecture {arch_signature(m)}, model 0 has {sig}: "
                                 "models of different shapes go into separate batches")
        return cls(models[0], [m.state_dict() for m in models], [m.dropout for m in models],
                   [getattr(m, "attn_dropout", 0.0) for m in models])

    def p(self, name: str) -> Tensor:
        key = name.replace(".", "__")
        if key in self.params:
            return self.params[key]
        return getattr(self, f"buf__{key}")

    def single_state(self, i: int) -> dict[str, Tensor]:
        return {name: self.p(name)[i].detach().clone() for name in self.names}

    def parameters_by_name(self) -> dict[str, nn.Parameter]:
        return {k.replace("__", "."): v for k, v in self.params.items()}

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, ops: GraphOps) -> Tensor:
        """``x`` [n, F] (dense or CSR), shared -> logits [N, n, C]."""
        t = self.template[0]
        fwd = getattr(self, f"_forward_{self.family}")
        return fwd(t, x, ops)

    def _post(self, t: Backbone, i: int, h: Tensor) -> Tensor:
        if t.norm_name == "layer":
            h = F.layer_norm(h, h.shape[-1:], eps=1e-5)
            h = h * self.p(f"norms.{i}.weight").unsqueeze(1) + self.p(f"norms.{i}.bias").unsqueeze(1)
        return _ACT[t.act_name](h)

    def _lin_in(self, i: int, h: Tensor, W: Tensor) -> Tensor:
        """Dropout then ``h @ W^T`` for layer i (shared input for i == 0)."""
        if i == 0:
            return _linear_first(h, W, self.dropout, self.training, self.generator)
        return _linear(_drop(h, self.dropout, self.training, self.generator), W)

    def _stack(self, t: Backbone, x: Tensor, layer) -> Tensor:
        h = x
        for i in range(t.num_layers):
            h = layer(i, h)
            if i < t.num_layers - 1:
                h = self._post(t, i, h)
        return h

    def _forward_mlp(self, t: MLP, x: Tensor, ops: GraphOps) -> Tensor:
        return self._stack(t, x, lambda i, h: self._lin_in(i, h, self.p(f"layers.{i}.weight"))
                           + self.p(f"layers.{i}.bias").unsqueeze(1))

    def _forward_gcn(self, t: GCN, x: Tensor, ops: GraphOps) -> Tensor:
        def layer(i, h):
            h = self._lin_in(i, h, self.p(f"layers.{i}.lin.weight"))
            return _prop(ops.gcn, h) + self.p(f"layers.{i}.bias").unsqueeze(1)
        return self._stack(t, x, layer)

    def _forward_appnp(self, t: APPNP, x: Tensor, ops: GraphOps) -> Tensor:
        h = self._forward_mlp(t, x, ops)
        z = h
        alpha = t.prop.alpha
        for _ in range(t.prop.K):
            z = _prop(ops.gcn, z) * (1 - alpha) + alpha * h
        return z

    def _forward_sage(self, t: SAGE, x: Tensor, ops: GraphOps) -> Tensor:
        op = ops.mean if t.aggr == "mean" else ops.sum

        def layer(i, h):
            Wl, Wr = self.p(f"layers.{i}.lin_l.weight"), self.p(f"layers.{i}.lin_r.weight")
            out = Wl.size(1)
            both = self._lin_in(i, h, torch.cat([Wl, Wr], dim=1))  # same dropout mask for both maps
            return _prop(op, both[..., :out]) + self.p(f"layers.{i}.lin_l.bias").unsqueeze(1) + both[..., out:]
        return self._stack(t, x, layer)

    def _forward_gin(self, t: GIN, x: Tensor, ops: GraphOps) -> Tensor:
        act = _ACT[t.act_name]

        def layer(i, h):
            a = self._lin_in(i, h, self.p(f"layers.{i}.nn.0.weight"))
            eps = self.p(f"layers.{i}.eps").view(-1, 1, 1)
            a = (1 + eps) * a + _prop(ops.sum, a) + self.p(f"layers.{i}.nn.0.bias").unsqueeze(1)
            return _linear(act(a), self.p(f"layers.{i}.nn.2.weight"), self.p(f"layers.{i}.nn.2.bias"))
        return self._stack(t, x, layer)

    def _forward_gat(self, t: GAT, x: Tensor, ops: GraphOps) -> Tensor:
        src, dst = ops.gat_edges
        n = ops.n
        N = self.num_models

        def layer(i, h):
            last = i == t.num_layers - 1
            heads = t.out_heads if last else t.heads
            h = self._lin_in(i, h, self.p(f"layers.{i}.lin.weight"))
            C = h.size(-1) // heads
            h = h.view(N, n, heads, C)
            a_src = (h * self.p(f"layers.{i}.att_src")).sum(-1)  # [N, n, H]
            a_dst = (h * self.p(f"layers.{i}.att_dst")).sum(-1)
            alpha = F.leaky_relu(a_src[:, src] + a_dst[:, dst], 0.2)  # [N, E, H]
            alpha = scatter_softmax(alpha, dst, num_nodes=n, dim=1)
            alpha = _drop(alpha, self.attn_dropout, self.training, self.generator)
            msg = h[:, src] * alpha.unsqueeze(-1)  # [N, E, H, C]
            out = torch.zeros(N, n, heads, C, dtype=h.dtype).index_add_(1, dst, msg)
            out = out.mean(dim=2) if last else out.reshape(N, n, heads * C)
            return out + self.p(f"layers.{i}.bias").unsqueeze(1)
        return self._stack(t, x, layer)
