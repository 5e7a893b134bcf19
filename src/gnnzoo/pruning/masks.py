"""Masks of a graph lottery ticket: which tensors count, magnitude pruning, masks that stay exact.

A weight mask is a bool tensor of a parameter's shape (True = kept); an edge mask is a bool vector over the
graph's edge units (:class:`gnnzoo.backbones.EdgeUnits`: undirected edges when symmetric). :class:`Ticket`
holds both (as buffers, so a checkpoint of it is a checkpoint of the masks), the optional real-valued
trainable scores of UGS / FastGLT, and runs the backbone on the kept edges only (a pruned edge is removed
from ``edge_index``: it carries no message and gets no attention). :class:`MaskEnforcer` keeps masked
weights at exactly zero while training: it zeroes them, masks their gradients (so Adam/AdamW moments and
SGD momentum of a masked entry stay 0, and weight decay of a zero is 0) and re-applies the masks after
every optimizer step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.func import functional_call

from gnnzoo.backbones.pruned import EdgeUnits

Masks = dict[str, Tensor]


@dataclass(frozen=True)
class Scope:
    """Which parameters are prunable: linear maps' weights, optionally those of the first and last layer,
    biases, and attention vectors (GAT ``att_src`` / ``att_dst``)."""

    first_layer: bool = True
    last_layer: bool = True
    bias: bool = False
    attention: bool = False

    def names(self, model: nn.Module) -> list[str]:
        """Prunable parameter names of ``model`` (``layers.<i>.…`` of a gnnzoo backbone; ``gnn.layers.<i>.…`` of a
        link predictor or graph classifier, whose decoder / head stays dense), in state-dict order."""
        gnn = getattr(model, "gnn", None)
        root = "gnn." if gnn is not None else ""
        n_layers = len(getattr(gnn if gnn is not None else model, "layers", [])) or 1
        out = []
        for name, p in model.named_parameters():
            if not name.startswith(root):
                continue
            parts = name[len(root) :].split(".")
            layer = int(parts[1]) if len(parts) > 1 and parts[0] == "layers" and parts[1].isdigit() else None
            if layer is None:
                continue  # norms and anything outside the message-passing layers
            if (layer == 0 and not self.first_layer) or (layer == n_layers - 1 and not self.last_layer):
                continue
            leaf = parts[-1]
            if leaf == "weight" and p.dim() == 2:
                out.append(name)
            elif leaf == "bias" and self.bias:
                out.append(name)
            elif leaf in ("att_src", "att_dst") and self.attention:
                out.append(name)
        return out


def _check_fraction(sparsity: float) -> None:
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def top_keep(score: Tensor, keep: int, allowed: Tensor | None = None) -> Tensor:
    """Bool mask of the ``keep`` largest ``score`` entries (among ``allowed`` ones); ties broken by position."""
    flat = score.detach().reshape(-1).float().clone()
    if allowed is not None:
        flat[~allowed.reshape(-1)] = -float("inf")
    out = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if keep > 0:
        out[torch.topk(flat, keep, sorted=False).indices] = True
    return out.view(score.shape)


def _floor(score: Tensor, per_row: int, allowed: Tensor | None) -> Tensor:
    """Bool mask of each output neuron's (row's) ``per_row`` largest allowed entries (1-D: of the whole tensor)."""
    rows = score.detach().float().reshape(score.size(0) if score.dim() > 1 else 1, -1).clone()
    out = torch.zeros_like(rows, dtype=torch.bool)
    k = min(per_row, rows.size(1))
    if k <= 0:
        return out.view(score.shape)
    if allowed is not None:
        rows[~allowed.reshape(rows.shape)] = -float("inf")
    idx = torch.topk(rows, k, dim=1, sorted=False).indices
    out.scatter_(1, idx, True)
    return (out & torch.isfinite(rows)).view(score.shape)


def magnitude_masks(
    state: Mapping[str, Tensor],
    names: Iterable[str],
    sparsity: float,
    threshold: str = "global",
    keep: Masks | None = None,
    min_per_neuron: int = 0,
) -> Masks:
    """Keep the largest-magnitude entries of ``names`` so that exactly ``round(sparsity * n)`` are pruned:
    over all tensors together (``global``, one threshold) or in each tensor (``layer``). Ties are broken by
    position, so the reached sparsity is the target to within one entry per scope. ``keep`` (optional):
    entries already pruned stay pruned (they count towards the target).

    ``min_per_neuron``: every output neuron (row of a ``[out, in]`` weight; a 1-D tensor counts as one) keeps
    at least that many of its largest incoming entries (never more than ``keep`` allows), so no layer is emptied
    and no class is cut off. The rest of the budget goes by the threshold, so the total stays exact unless the
    floors alone exceed it (then they are kept and the reached sparsity is lower, as the record shows).
    """
    names = list(names)
    if not names:
        raise ValueError("no prunable tensors (check pruning.scope)")
    _check_fraction(sparsity)
    if threshold not in ("global", "layer"):
        raise ValueError(f"pruning.threshold must be global or layer, got {threshold!r}")
    groups = [names] if threshold == "global" else [[n] for n in names]
    masks: Masks = {}
    for group in groups:
        scores = [state[n].detach().abs().float() for n in group]
        allowed = [None if keep is None else keep[n] for n in group]
        total = sum(s.numel() for s in scores)
        n_keep = total - int(round(float(sparsity) * total))
        if keep is not None:
            n_keep = min(n_keep, sum(int(a.sum()) for a in allowed))
        floor = torch.cat([_floor(s, int(min_per_neuron), a).reshape(-1) for s, a in zip(scores, allowed)])
        n_keep = max(n_keep, int(floor.sum()))
        rest = ~floor if keep is None else torch.cat([a.reshape(-1) for a in allowed]) & ~floor
        kept = floor | top_keep(torch.cat([s.reshape(-1) for s in scores]), n_keep - int(floor.sum()), rest)
        offset = 0
        for n in group:
            k = state[n].numel()
            masks[n] = kept[offset : offset + k].view(state[n].shape).clone()
            offset += k
    return masks


def layer_density(masks: Masks) -> dict[str, float]:
    """Kept fraction of each masked tensor (a ticket record's ``layer_density``: an emptied layer shows as 0)."""
    return {n: float(m.float().mean()) for n, m in masks.items()}


def sparsity(masks: Masks) -> dict[str, float | int]:
    """Pruned fraction of the masked entries, with its denominator."""
    total = sum(m.numel() for m in masks.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    return {"sparsity": pruned / total if total else 0.0, "pruned": pruned, "total": total}


def _key(name: str) -> str:
    return name.replace(".", "__")


class Ticket(nn.Module):
    """The masks of a ticket and the forward that applies them (the ``masker`` of ``BackboneModule``).

    * ``weight_names`` / ``weight_keep``: bool masks (buffers) of the prunable tensors; with
      ``weight_scores=True`` a real-valued trainable score per entry (UGS ``m_θ``, init 1) multiplies the
      weight in the forward (``W ⊙ m``, through ``torch.func.functional_call``, so the backbone's own
      parameters and state dict are untouched);
    * ``edge_keep``: bool per edge unit of ``edge_index``; pruned edges are removed before every forward
      (``renormalize=False``, GCN/APPNP only: the full graph is passed with weight 0 on pruned edges and the
      backbone's ``renormalize`` switched off, so the dense graph's degrees are kept); with ``edge_scores=True`` a
      trainable score per unit (UGS ``m_g``, init 1) weights the kept edges' messages (clamped at 0);
    * ``regularizer()``: ``l1_weight·Σ|m_θ| + l1_graph·Σ|m_g|`` over kept entries (the UGS penalties).

    Args:
        edge_index: the graph the edge mask is over (None: the graph is not pruned).
        weight_shapes: the prunable tensors' names and shapes.
        symmetric: one unit per undirected edge; renormalize: see ``edge_keep`` above.
        weight_scores, edge_scores: trainable real-valued masks (UGS, FastGLT's edge mask).
        l1_weight, l1_graph, score_noise, generator: the UGS penalties and the scores' initial noise.

    Shapes:
        - **input:** ``backbone``, ``x [N, F]``, ``edge_index [2, E]``
        - **output:** the backbone's logits ``[N, C]`` on the kept weights and edges
    """

    def __init__(
        self,
        edge_index: Tensor | None,
        weight_shapes: Mapping[str, torch.Size],
        *,
        symmetric: bool = True,
        renormalize: bool = True,
        weight_scores: bool = False,
        edge_scores: bool = False,
        l1_weight: float = 0.0,
        l1_graph: float = 0.0,
        score_noise: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.weight_names = list(weight_shapes)
        for n, shape in weight_shapes.items():
            self.register_buffer(f"wk_{_key(n)}", torch.ones(shape, dtype=torch.bool))
        self.renormalize = bool(renormalize)
        self.l1_weight, self.l1_graph = float(l1_weight), float(l1_graph)
        self.units: EdgeUnits | None = None
        if edge_index is not None:
            self.register_buffer("edge_index", edge_index.clone(), persistent=False)
            self.units = EdgeUnits(edge_index, symmetric)
            self.register_buffer("edge_keep", torch.ones(self.units.num_units, dtype=torch.bool))
        else:
            self.edge_index = None
            self.edge_keep = None

        def score(shape):
            s = torch.ones(shape)
            if score_noise:
                s += score_noise * torch.randn(shape, generator=generator)  # breaks ties of equal scores
            return nn.Parameter(s)

        self.weight_score = nn.ParameterList([score(s) for s in weight_shapes.values()]) if weight_scores else None
        self.edge_score = score(self.units.num_units) if (edge_scores and self.units is not None) else None

    # ---------------------------------------------------------------- masks
    @property
    def weight_masks(self) -> Masks:
        return {n: getattr(self, f"wk_{_key(n)}") for n in self.weight_names}

    def set_weight_masks(self, masks: Masks) -> None:
        for n in self.weight_names:
            getattr(self, f"wk_{_key(n)}").copy_(masks[n])

    def set_edge_keep(self, keep: Tensor) -> None:
        self.edge_keep.copy_(keep)

    def weight_scores(self) -> Masks:
        return {n: s.detach() for n, s in zip(self.weight_names, self.weight_score or [])}

    def edge_sparsity(self) -> dict[str, float | int]:
        if self.edge_keep is None:
            return {"sparsity": 0.0, "pruned": 0, "total": 0}
        total = self.edge_keep.numel()
        pruned = int((~self.edge_keep).sum())
        return {"sparsity": pruned / total if total else 0.0, "pruned": pruned, "total": total}

    # ---------------------------------------------------------------- forward
    def edges(self, edge_index: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.units is None:
            return edge_index, None
        if edge_index.size(1) != self.units.num_edges:
            raise ValueError(
                f"the ticket's edge mask was built for {self.units.num_edges} edges, the batch has "
                f"{edge_index.size(1)} (task=prune trains full-batch on one graph)"
            )
        # the kept edges change only when the mask does (a prune / regrow step, or a best-state reload):
        # computed once per version of `edge_keep`, not in every forward
        key = (self.edge_keep.data_ptr(), self.edge_keep._version)
        if self.__dict__.get("_kept_key") != key:
            kept = self.units.directed(self.edge_keep)
            self.__dict__["_kept"] = (kept, self.edge_index[:, kept], kept.float())
            self.__dict__["_kept_key"] = key
        kept, kept_ei, keep = self.__dict__["_kept"]
        w = None
        if self.edge_score is not None:
            w = self.units.per_edge(self.edge_score.clamp(min=0))
        if self.renormalize:
            return kept_ei, (w[kept] if w is not None else None)
        return self.edge_index, keep if w is None else keep * w

    def forward(self, backbone: nn.Module, x: Tensor, edge_index: Tensor, **kwargs) -> Tensor:
        """``backbone(x, kept edges, edge_weight=..., **kwargs)`` on the kept weights (``kwargs``: e.g. a graph
        classifier's ``batch`` and ``num_graphs``)."""
        ei, w = self.edges(edge_index)
        gnn = getattr(backbone, "gnn", backbone)  # a link predictor's / graph classifier's backbone
        if self.units is not None and hasattr(gnn, "renormalize"):
            gnn.renormalize = self.renormalize  # how GCN/APPNP read the edge weights (see gnnzoo.backbones)
        if w is not None:
            kwargs = {**kwargs, "edge_weight": w}
        if self.weight_score is None:
            return backbone(x, ei, **kwargs)
        params = dict(backbone.named_parameters())
        scaled = {n: params[n] * s for n, s in zip(self.weight_names, self.weight_score)}
        return functional_call(backbone, scaled, (x, ei), kwargs)

    def regularizer(self) -> Tensor | float:
        reg = 0.0
        if self.weight_score is not None and self.l1_weight:
            reg = reg + self.l1_weight * sum(
                (s.abs() * m).sum() for s, m in zip(self.weight_score, self.weight_masks.values())
            )
        if self.edge_score is not None and self.l1_graph:
            reg = reg + self.l1_graph * (self.edge_score.abs() * self.edge_keep).sum()
        return reg


class MaskEnforcer(pl.Callback):
    """Keeps weight masks exact on ``pl_module.backbone`` for the whole fit (see the module docstring).

    ``masks`` is a dict, or a callable returning the current masks (a :class:`Ticket` whose masks change
    during the fit, as FastGLT's do). ``grad_sink`` (optional dict): the absolute *dense* gradient of every
    masked tensor is added to it before masking (FastGLT regrows pruned weights by it)."""

    def __init__(self, masks: Masks | Callable[[], Masks], grad_sink: dict[str, Tensor] | None = None):
        self._masks = masks
        self.grad_sink = grad_sink
        self._hooks: list = []

    @property
    def masks(self) -> Masks:
        return self._masks() if callable(self._masks) else self._masks

    def _grad(self, name: str, g: Tensor) -> Tensor:
        if self.grad_sink is not None:
            acc = self.grad_sink.get(name)
            self.grad_sink[name] = g.detach().abs() if acc is None else acc + g.detach().abs()
        return g * self.masks[name].to(g.device)

    def attach(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        masks = self.masks
        missing = sorted(set(masks) - set(params))
        if missing:
            raise KeyError(f"masks name parameters the backbone does not have: {missing}")
        self.apply(model)
        for name in masks:
            self._hooks.append(params[name].register_hook(lambda g, n=name: self._grad(n, g)))

    def apply(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, mask in self.masks.items():
                params[name].mul_(mask.to(params[name].device))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._hooks:
            self.attach(pl_module.backbone)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.apply(pl_module.backbone)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
