"""Soup strategies: uniform, greedy and GIS here; Learned Souping (LS) and Partition Learned Souping (PLS) in
:mod:`gnnzoo.soups.learned`; every strategy by name in :mod:`gnnzoo.soups.registry`.

All strategies see the ingredients' state dicts and an :class:`Evaluator` that runs the backbone on
the full graph in eval mode through ``torch.func.functional_call`` (the template model's own
weights are never used). Fitting uses the ``fit`` node set (validation nodes, or half of them with
``soup.holdout``); nothing here looks at test nodes.

Buffers (e.g. GIN's ``eps``, BatchNorm running statistics) are not mixed by the learned strategies:
they are averaged uniformly, and BatchNorm statistics are recomputed on the final soup
(:func:`recompute_batchnorm`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from gnnzoo.soups.partition import METHODS
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.validate import choice, integer, number

State = dict[str, Tensor]
log = logging.getLogger("gnnzoo")


@dataclass
class Evaluator:
    """Scores states of the template model on the items of a problem: nodes (node classification), graphs (graph
    classification: ``extra`` = ``{"batch", "num_graphs"}`` of the union of all graphs) or scored node pairs (link
    prediction: ``extra`` = ``{"pairs"}``, the validation then test edges with their negatives). ``y`` and the
    ``masks`` are over those items. :meth:`accuracy` is the problem's selection metric: accuracy, or AUC for link
    prediction (``metric`` names it)."""

    model: nn.Module  # template model, eval mode
    x: Tensor
    edge_index: Tensor
    y: Tensor
    masks: dict[str, Tensor]  # "fit", "select", "val", "test"
    calls: int = 0
    problem: str = "node"
    extra: dict[str, Any] = field(default_factory=dict)  # forward keyword arguments over the whole data

    @property
    def metric(self) -> str:
        return "auc" if self.problem == "link" else "acc"

    def logits(
        self, state: State, x: Tensor | None = None, edge_index: Tensor | None = None, extra: dict | None = None
    ) -> Tensor:
        self.calls += 1
        args = (self.x if x is None else x, self.edge_index if edge_index is None else edge_index)
        return functional_call(self.model, state, args, self.extra if extra is None else extra)

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of the items' logits (binary for link prediction's pair scores)."""
        if self.problem == "link":
            return F.binary_cross_entropy_with_logits(logits, y)
        return F.cross_entropy(logits, y)

    def measure(self, logits: Tensor, y: Tensor) -> float:
        """The selection metric of logits against labels: accuracy, or AUC for link prediction."""
        if self.problem == "link":
            from torchmetrics.functional.classification import binary_auroc

            return float(binary_auroc(logits, y.long()))
        return float((logits.argmax(-1) == y).float().mean())

    @torch.no_grad()
    def accuracy(self, state: State, split: str) -> float:
        m = self.masks[split]
        return self.measure(self.logits(state)[m], self.y[m])

    @torch.no_grad()
    def accuracies(self, state: State, splits: Sequence[str]) -> dict[str, float]:
        out = self.logits(state)
        return {s: self.measure(out[self.masks[s]], self.y[self.masks[s]]) for s in splits}


@dataclass
class SoupResult:
    state: State
    info: dict[str, Any] = field(default_factory=dict)  # coefficients, kept ingredients, curves


def _param_names(ev: Evaluator) -> list[str]:
    return [n for n, _ in ev.model.named_parameters()]


def mix(states: Sequence[State], weights: Sequence[float]) -> State:
    return {k: sum(w * s[k] for w, s in zip(weights, states)) for k in states[0]}


def uniform(states: Sequence[State], ev: Evaluator, **_) -> SoupResult:
    n = len(states)
    return SoupResult(mix(states, [1.0 / n] * n), {"weights": [1.0 / n] * n})


def _ranked(states: Sequence[State], ev: Evaluator) -> tuple[list[int], list[float]]:
    accs = [ev.accuracy(s, "fit") for s in states]
    order = sorted(range(len(states)), key=lambda i: -accs[i])  # stable: ties keep ingredient order
    return order, accs


def greedy(states: Sequence[State], ev: Evaluator, **_) -> SoupResult:
    """Wortsman et al.: add ingredients best-first while fit accuracy strictly improves."""
    order, accs = _ranked(states, ev)
    kept = [order[0]]
    soup = dict(states[order[0]])
    best = accs[order[0]]
    for i in order[1:]:
        n = len(kept)
        cand = {k: soup[k] * (n / (n + 1)) + states[i][k] / (n + 1) for k in soup}
        acc = ev.accuracy(cand, "fit")
        if acc > best:
            soup, best = cand, acc
            kept.append(i)
    weights = [1.0 / len(kept) if i in kept else 0.0 for i in range(len(states))]
    return SoupResult(soup, {"kept": kept, "weights": weights, "fit_acc": best, "ingredient_fit_acc": accs})


def gis(states: Sequence[State], ev: Evaluator, granularity: int = 20, **_) -> SoupResult:
    """Greedy interpolated soup: soup <- best of a*soup + (1-a)*next over a in linspace(0, 1, G)."""
    order, accs = _ranked(states, ev)
    soup = dict(states[order[0]])
    weights = torch.zeros(len(states), dtype=torch.float64)
    weights[order[0]] = 1.0
    best = accs[order[0]]
    alphas = []
    grid = torch.linspace(0, 1, int(granularity)).tolist()
    for i in order[1:]:
        best_a, best_acc, best_state = None, -math.inf, None
        for a in grid:  # ascending: strict '>' keeps the smallest alpha on ties
            cand = {k: a * soup[k] + (1 - a) * states[i][k] for k in soup}
            acc = ev.accuracy(cand, "fit")
            if acc > best_acc:
                best_a, best_acc, best_state = a, acc, cand
        soup, best = best_state, best_acc
        weights *= best_a
        weights[i] += 1 - best_a
        alphas.append(best_a)
    return SoupResult(
        soup,
        {"alphas": alphas, "order": order, "weights": weights.tolist(), "fit_acc": best, "ingredient_fit_acc": accs},
    )


INITS = ("ones", "uniform", "normal", "greedy")
KEEPS = ("last", "best")
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def check_params(strategy: str, params: dict) -> None:
    """Reject bad ``soup.params`` of LS/PLS: the soup task calls it before any ingredient is trained, the
    strategies when called directly (the shared validators of :mod:`gnnzoo.utils.validate` name the key)."""
    where = "soup.params"
    if strategy == "gis" and "granularity" in params:
        integer(params, "granularity", where, lo=2)
    if strategy not in ("learned", "partition_learned"):
        return
    for key, check in (
        ("epochs", lambda: integer(params, "epochs", where, lo=1)),
        ("lr", lambda: number(params, "lr", where, lo=0, lo_open=True)),
        ("weight_decay", lambda: number(params, "weight_decay", where, lo=0)),
    ):
        if key in params:
            check()
    integer(params, "t0", where, lo=1, optional=True)
    number(params, "beta_lr", where, lo=0, optional=True)  # null: = lr; 0: the output scale stays 1
    init = choice({"init": params.get("init", "uniform")}, "init", where, INITS)
    keep = choice({"keep": params.get("keep", "last")}, "keep", where, KEEPS)
    choice({"optimizer": params.get("optimizer", "sgd")}, "optimizer", where, tuple(OPTIMIZERS))
    if strategy != "partition_learned":
        return
    if init == "greedy" or keep != "last":
        raise ConfigError(
            "partition_learned takes neither soup.params.init=greedy nor soup.params.keep=best: both need "
            "full-graph evaluations, which PLS exists to avoid"
        )
    # the bound by the data (num_parts <= fit nodes) is checked by make_parts
    choice({"partition": params.get("partition", "metis")}, "partition", where, METHODS)
    n_parts = integer({"num_parts": params.get("num_parts", 32)}, "num_parts", where, lo=1)
    per_step = params.get("num_parts_per_step", 4)
    if isinstance(per_step, bool) or not isinstance(per_step, int) or not 1 <= per_step <= n_parts:
        raise ConfigError(
            "soup.params.num_parts (K) and num_parts_per_step (R) must be integers with 1 <= R <= K, "
            f"got K={n_parts!r}, R={per_step!r}"
        )


@torch.no_grad()
def recompute_batchnorm(
    model: nn.Module, state: State, x: Tensor, edge_index: Tensor, extra: dict | None = None
) -> State:
    """Recompute BatchNorm running statistics of ``state`` with one full-graph pass (dropout off; ``extra``: the
    forward's keyword arguments, e.g. a graph classifier's ``batch``)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return state
    model.load_state_dict(state)
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    model(x, edge_index, **(extra or {}))
    model.eval()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
