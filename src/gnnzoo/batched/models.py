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

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnzoo.backbones.models import APPNP, GAT, GCN, GIN, MLP, SAGE, Backbone, csr_transpose_structure
from gnnzoo.batched.graph import GraphOps, SegmentSum, SparseMatmul, segment_softmax
from gnnzoo.data.sampler import gather_rows

_ACT = {"relu": F.relu, "elu": F.elu, "gelu": F.gelu, "tanh": torch.tanh}


def arch_signature(model: Backbone) -> tuple:
    """Everything that must be equal for two single models to share a batch (not dropout)."""
    sig = [
        type(model).__name__,
        model.in_channels,
        model.hidden_channels,
        model.out_channels,
        model.num_layers,
        model.norm_name,
        model.act_name,
    ]
    for attr in ("heads", "out_heads", "aggr", "train_eps"):
        if hasattr(model, attr):
            sig.append((attr, getattr(model, attr)))
    if isinstance(model, APPNP):
        sig.append(("K", model.prop.K, "alpha", model.prop.alpha))
    if isinstance(model, GCN):
        sig.append(("conv", tuple(sorted(model._conv_kwargs.items()))))
    return tuple(sig)


def _keep_mask(shape: tuple, keep: Tensor, gen) -> tuple[Tensor, Tensor]:
    """Bernoulli(keep[i]) mask of ``shape`` ([N, ...]) and the exact keep rates used.

    ``gen``: one generator per model (model ``i``'s mask is drawn from ``gen[i]`` alone, so it does not
    depend on the other models of the batch), or a single generator (or None) for the whole mask.
    Draws 16-bit uniforms four at a time from 64-bit random integers (3x faster than torch.rand on
    CPU); keep probabilities are rounded to multiples of 1/65536 and the returned rates are the
    rounded ones, so scaling by them keeps dropout unbiased."""
    lo, hi = -(2**63), 2**63 - 1
    if isinstance(gen, (list, tuple)):
        if len(gen) != shape[0]:
            raise ValueError(f"{len(gen)} generators for a mask over {shape[0]} models")
        per = math.prod(shape[1:])
        bits = torch.empty((shape[0], (per + 3) // 4), dtype=torch.int64)
        for i, g in enumerate(gen):
            torch.randint(lo, hi, (bits.size(1),), dtype=torch.int64, generator=g, out=bits[i])
        u = bits.view(torch.int16)[:, :per].reshape(shape)
    else:
        numel = math.prod(shape)
        bits = torch.randint(lo, hi, ((numel + 3) // 4,), dtype=torch.int64, generator=gen)
        u = bits.view(torch.int16)[:numel].view(shape)
    # keep u < ticks - 32768, written as u <= ticks - 32769 so the threshold fits int16 (an int16
    # comparison is ~6x faster than one promoted to int32); keep > 0 (dropout < 1), so ticks >= 1
    ticks = torch.round(keep.double() * 65536).clamp(1, 65536)
    thresh = (ticks - 32769).to(torch.int16).view(-1, *([1] * (len(shape) - 1)))
    return u <= thresh, (ticks / 65536).to(torch.float32)


def _drop(h: Tensor, p: Tensor, training: bool, gen: torch.Generator | None) -> Tensor:
    """Per-model dropout on [N, ...] activations with per-model rates ``p`` [N]."""
    if not training or not bool((p > 0).any()):
        return h
    mask, keep = _keep_mask(tuple(h.shape), 1 - p, gen)
    scale = (1.0 / keep).view(-1, *([1] * (h.dim() - 1)))
    return h * mask.to(h.dtype).mul_(scale)  # (bool * float broadcast would take twice as long)


_BLOCK_CACHE: dict[tuple, dict[str, Tensor]] = {}


def _block_structure(x: Tensor, N: int) -> dict[str, Tensor]:
    """Index structure of the block-diagonal ``[N*n, N*in]`` copy of CSR ``x`` and of its transpose,
    with ``perm`` such that ``values(x^T) = values(x)[perm]``. Built once per (graph, N): only the
    values change between epochs."""
    key = (x.crow_indices().data_ptr(), x.col_indices().data_ptr(), tuple(x.shape), N)
    if key not in _BLOCK_CACHE:
        n, d = x.shape
        crow, col = x.crow_indices(), x.col_indices()
        nnz = col.numel()
        perm, crow_t, col_t = csr_transpose_structure(x)
        offs = torch.arange(N).view(N, 1)

        def block(cr, cl, n_cols):
            bcrow = torch.cat([(cr[:-1].unsqueeze(0) + offs * nnz).reshape(-1), torch.tensor([N * nnz])])
            return bcrow.to(cr.dtype), (cl.unsqueeze(0) + offs * n_cols).reshape(-1).to(cl.dtype)

        bcrow, bcol = block(crow, col, d)
        bcrow_t, bcol_t = block(crow_t, col_t, n)
        _BLOCK_CACHE.clear()  # one graph at a time
        # the index tensors are held so that their storage (the key) cannot be reused while cached
        _BLOCK_CACHE[key] = {
            "crow": bcrow,
            "col": bcol,
            "crow_t": bcrow_t,
            "col_t": bcol_t,
            "perm": perm,
            "source": (crow, col),
        }
    return _BLOCK_CACHE[key]


def _linear_first(x: Tensor, W: Tensor, p: Tensor, training: bool, gen) -> Tensor:
    """Dropout(x) @ W_i^T for every model i; ``x`` [n, in] shared (dense or CSR), W [N, out, in]."""
    N, out, din = W.shape
    n = x.size(0)
    if not training or not bool((p > 0).any()):
        wt = W.permute(2, 0, 1).reshape(din, N * out)  # contiguous [in, N*out]: rows gathered by the CSR product
        return (x @ wt).view(n, N, out).transpose(0, 1)
    if x.is_sparse_csr:
        # per-model dropout masks on the stored values -> block-diagonal input [N*n, N*in]
        st = _block_structure(x, N)
        nnz = x.values().numel()
        mask, keep = _keep_mask((N, nnz), 1 - p, gen)
        v = mask.to(x.dtype).mul_(x.values()).mul_((1.0 / keep).view(N, 1))  # [N, nnz]
        vt = v.index_select(1, st["perm"])
        xb = torch.sparse_csr_tensor(st["crow"], st["col"], v.reshape(-1), (N * n, N * din))
        xbt = torch.sparse_csr_tensor(st["crow_t"], st["col_t"], vt.reshape(-1), (N * din, N * n))
        wflat = W.transpose(1, 2).reshape(N * din, out)
        return SparseMatmul.apply(xb, xbt, wflat).view(N, n, out)
    xb = _drop(x.unsqueeze(0).expand(N, n, din), p, True, gen)
    return torch.bmm(xb, W.transpose(1, 2))


def _linear(h: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    out = torch.bmm(h, W.transpose(1, 2))
    return out if b is None else out + b.unsqueeze(1)


def _prop(op, h: Tensor) -> Tensor:
    """Apply a shared sparse operator to [N, n, d] features of all models in one product."""
    return op(h.transpose(0, 1)).transpose(0, 1)


# the operator whose receptive field a training step computes (None: the MLP reads only its own rows); GAT and
# APPNP compute every node
_RF_OPERATOR = {
    "gcn": lambda t: "gcn",
    "sage": lambda t: "mean" if t.aggr == "mean" else "sum",
    "gin": lambda t: "sum",
    "mlp": lambda t: None,
}


class BatchedBackbone(nn.Module):
    """N single backbones of the same architecture, stacked. Build with :meth:`from_singles`."""

    def __init__(
        self,
        template: Backbone,
        states: Sequence[dict[str, Tensor]],
        dropout: Sequence[float],
        attn_dropout: Sequence[float] | None = None,
    ):
        super().__init__()
        if template.norm_name == "batch":
            raise NotImplementedError(
                "norm='batch' cannot be batched (per-model running statistics); "
                "use norm=null or norm=layer, or train these models one by one"
            )
        if isinstance(template, SAGE) and template.aggr == "max":
            raise NotImplementedError(
                "SAGE with aggr='max' cannot be batched (max does not commute with the linear map); use mean or sum"
            )
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
        # dropout randomness: one generator per model (set by the trainer), or one for all, or torch's global one
        self.generators: list[torch.Generator] | torch.Generator | None = None

    # ------------------------------------------------------------------ construction / export
    @classmethod
    def from_singles(cls, models: Sequence[Backbone]) -> "BatchedBackbone":
        if not models:
            raise ValueError("need at least one model")
        sig = arch_signature(models[0])
        for i, m in enumerate(models[1:], 1):
            if arch_signature(m) != sig:
                raise ValueError(
                    f"model {i} has architecture {arch_signature(m)}, model 0 has {sig}: "
                    "models of different shapes go into separate batches"
                )
        return cls(
            models[0],
            [m.state_dict() for m in models],
            [m.dropout for m in models],
            [getattr(m, "attn_dropout", 0.0) for m in models],
        )

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
    def forward(self, x: Tensor, ops: GraphOps, out_nodes: Tensor | None = None) -> Tensor:
        """``x`` [n, F] (dense or CSR), shared -> logits [N, n, C], or [N, len(out_nodes), C].

        With ``out_nodes`` (sorted, unique), GCN, SAGE, GIN and the MLP compute only the receptive field of those
        nodes: each layer's rows are the nodes the next layer reads (the operators are the full graph's, so the
        outputs are the same). On Cora a GCN training step then touches 62% of the input's nonzeros and 24% of the
        hidden rows that feed the last layer; an MLP step on PubMed reads 60 of 19,717 rows."""
        t = self.template[0]
        kind = _RF_OPERATOR.get(self.family, lambda t: "")(t)
        if out_nodes is not None and kind != "":
            if kind is None:  # MLP: every layer reads its own rows only
                nodes, props = [torch.unique(out_nodes)] * (t.num_layers + 1), None
            else:
                nodes, props = ops.receptive_field(kind, out_nodes, t.num_layers)
            if torch.equal(nodes[-1], out_nodes):
                # a layer's own rows among its input rows (the root term of SAGE and GIN)
                rows = [torch.searchsorted(nodes[i], nodes[i + 1]) for i in range(t.num_layers)]
                forward = getattr(self, f"_forward_{self.family}")
                return forward(t, self._input_rows(x, nodes[0]), ops, props, rows)
        out = getattr(self, f"_forward_{self.family}")(t, x, ops)
        return out if out_nodes is None else out[:, out_nodes]

    def _input_rows(self, x: Tensor, rows: Tensor) -> Tensor:
        """Rows of the input, cached: the sparse first layer caches its block structure per tensor."""
        cached = getattr(self, "_rows_cache", None)
        if cached is None or cached[0] is not x or cached[1] is not rows:
            cached = self._rows_cache = (x, rows, gather_rows(x, rows))
        return cached[2]

    def _post(self, t: Backbone, i: int, h: Tensor) -> Tensor:
        if t.norm_name == "layer":
            h = F.layer_norm(h, h.shape[-1:], eps=1e-5)
            h = h * self.p(f"norms.{i}.weight").unsqueeze(1) + self.p(f"norms.{i}.bias").unsqueeze(1)
        return _ACT[t.act_name](h)

    def _lin_in(self, i: int, h: Tensor, W: Tensor) -> Tensor:
        """Dropout then ``h @ W^T`` for layer i (shared input for i == 0)."""
        if i == 0:
            return _linear_first(h, W, self.dropout, self.training, self.generators)
        return _linear(_drop(h, self.dropout, self.training, self.generators), W)

    def _stack(self, t: Backbone, x: Tensor, layer) -> Tensor:
        h = x
        for i in range(t.num_layers):
            h = layer(i, h)
            if i < t.num_layers - 1:
                h = self._post(t, i, h)
        return h

    def _forward_mlp(self, t: MLP, x: Tensor, ops: GraphOps, props: list | None = None, rows=None) -> Tensor:
        return self._stack(
            t,
            x,
            lambda i, h: self._lin_in(i, h, self.p(f"layers.{i}.weight")) + self.p(f"layers.{i}.bias").unsqueeze(1),
        )

    def _forward_gcn(self, t: GCN, x: Tensor, ops: GraphOps, props: list | None = None, rows=None) -> Tensor:
        def layer(i, h):
            h = self._lin_in(i, h, self.p(f"layers.{i}.lin.weight"))
            return _prop(props[i] if props else ops.gcn, h) + self.p(f"layers.{i}.bias").unsqueeze(1)

        return self._stack(t, x, layer)

    def _forward_appnp(self, t: APPNP, x: Tensor, ops: GraphOps) -> Tensor:
        h = self._forward_mlp(t, x, ops)
        z = h
        alpha = t.prop.alpha
        for _ in range(t.prop.K):
            z = _prop(ops.gcn, z) * (1 - alpha) + alpha * h
        return z

    def _forward_sage(self, t: SAGE, x: Tensor, ops: GraphOps, props: list | None = None, rows=None) -> Tensor:
        op = ops.mean if t.aggr == "mean" else ops.sum

        def layer(i, h):
            Wl, Wr = self.p(f"layers.{i}.lin_l.weight"), self.p(f"layers.{i}.lin_r.weight")
            out = Wl.size(1)
            both = self._lin_in(i, h, torch.cat([Wl, Wr], dim=1))  # same dropout mask for both maps
            root = both[..., out:] if rows is None else both[:, rows[i], out:]
            agg = _prop(props[i] if props else op, both[..., :out])
            return agg + self.p(f"layers.{i}.lin_l.bias").unsqueeze(1) + root

        return self._stack(t, x, layer)

    def _forward_gin(self, t: GIN, x: Tensor, ops: GraphOps, props: list | None = None, rows=None) -> Tensor:
        act = _ACT[t.act_name]

        def layer(i, h):
            a = self._lin_in(i, h, self.p(f"layers.{i}.nn.0.weight"))
            eps = self.p(f"layers.{i}.eps").view(-1, 1, 1)
            root = a if rows is None else a[:, rows[i]]
            a = (
                (1 + eps) * root
                + _prop(props[i] if props else ops.sum, a)
                + self.p(f"layers.{i}.nn.0.bias").unsqueeze(1)
            )
            return _linear(act(a), self.p(f"layers.{i}.nn.2.weight"), self.p(f"layers.{i}.nn.2.bias"))

        return self._stack(t, x, layer)

    def _forward_gat(self, t: GAT, x: Tensor, ops: GraphOps) -> Tensor:
        src, dst, deg = ops.gat_edges
        n = ops.n
        N = self.num_models

        def layer(i, h):
            last = i == t.num_layers - 1
            heads = t.out_heads if last else t.heads
            h = self._lin_in(i, h, self.p(f"layers.{i}.lin.weight"))
            C = h.size(-1) // heads
            # node-major [n, N, H, C]; edges sorted by destination, so softmax and aggregation are
            # segment reductions along dim 0 (scatter/index_add dispatch per index and are slow on CPU)
            hn = h.view(N, n, heads, C).transpose(0, 1).contiguous()
            a_src = (hn * self.p(f"layers.{i}.att_src").transpose(0, 1)).sum(-1)  # [n, N, H]
            a_dst = (hn * self.p(f"layers.{i}.att_dst").transpose(0, 1)).sum(-1)
            alpha = F.leaky_relu(a_src.index_select(0, src) + a_dst.index_select(0, dst), 0.2)  # [E, N, H]
            alpha = segment_softmax(alpha, dst, deg)
            if self.training and bool((self.attn_dropout > 0).any()):
                alpha = _drop(alpha.transpose(0, 1), self.attn_dropout, True, self.generators).transpose(0, 1)
            msg = hn.index_select(0, src) * alpha.unsqueeze(-1)  # [E, N, H, C]
            out = SegmentSum.apply(msg, deg, dst).transpose(0, 1)
            out = out.mean(dim=2) if last else out.reshape(N, n, heads * C)
            return out + self.p(f"layers.{i}.bias").unsqueeze(1)

        return self._stack(t, x, layer)
