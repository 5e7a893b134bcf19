"""Soup strategies: uniform, greedy, GIS, Learned Souping (LS) and Partition Learned Souping (PLS).

All strategies see the ingredients' state dicts and an :class:`Evaluator` that runs the backbone on
the full graph in eval mode through ``torch.func.functional_call`` (the template model's own
weights are never used). Fitting uses the ``fit`` node set (validation nodes, or half of them with
``soup.holdout``); nothing here looks at test nodes.

Buffers (e.g. GIN's ``eps``, BatchNorm running statistics) are not mixed by the learned strategies:
they are averaged uniformly, and BatchNorm statistics are recomputed on the final soup
(:func:`recompute_batchnorm`).
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from gnnzoo.data.sampler import gather_rows
from gnnzoo.soups.partition import METHODS, PartitionSchedule

State = dict[str, Tensor]
log = logging.getLogger("gnnzoo")


@dataclass
class Evaluator:
    model: nn.Module  # template backbone, eval mode
    x: Tensor
    edge_index: Tensor
    y: Tensor
    masks: dict[str, Tensor]  # "fit", "select", "val", "test"
    calls: int = 0

    def logits(self, state: State, x: Tensor | None = None, edge_index: Tensor | None = None) -> Tensor:
        self.calls += 1
        return functional_call(self.model, state, (self.x if x is None else x,
                                                   self.edge_index if edge_index is None else edge_index))

    @torch.no_grad()
    def accuracy(self, state: State, split: str) -> float:
        pred = self.logits(state).argmax(-1)
        m = self.masks[split]
        return float((pred[m] == self.y[m]).float().mean())

    @torch.no_grad()
    def accuracies(self, state: State, splits: Sequence[str]) -> dict[str, float]:
        pred = self.logits(state).argmax(-1)
        return {s: float((pred[self.masks[s]] == self.y[self.masks[s]]).float().mean()) for s in splits}


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
    return SoupResult(soup, {"alphas": alphas, "order": order, "weights": weights.tolist(), "fit_acc": best,
                             "ingredient_fit_acc": accs})


_WARM_FLOOR = 1e-6  # weight of ingredients a warm start leaves out: a finite logit (-inf would turn into NaN/inf
#                     under weight decay); at 1e-6 they stay out in practice, as gradients scale with the weight
INITS = ("ones", "uniform", "normal", "greedy")
KEEPS = ("last", "best")
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class _Mixer(nn.Module):
    """One mixing logit per (parameter tensor, ingredient); softmax over ingredients; output scale beta."""

    def __init__(self, names: list[str], k: int, init: str, generator: torch.Generator,
                 start: Sequence[float] | None = None):
        super().__init__()
        raw = torch.empty(len(names), k)
        if start is not None:  # warm start: softmax(log w) = w, so training starts at that soup exactly
            w = torch.as_tensor(start, dtype=torch.float32).clamp_min(_WARM_FLOOR)
            raw.copy_((w / w.sum()).log().expand(len(names), k))
        elif init == "ones":
            raw.fill_(1.0)
        elif init == "uniform":
            bound = math.sqrt(6.0 / (len(names) + k))  # xavier_uniform_, with our generator
            raw.uniform_(-bound, bound, generator=generator)
        else:  # "normal" (check_params has rejected anything else)
            raw.normal_(0.0, math.sqrt(2.0 / (len(names) + k)), generator=generator)
        self.names = names
        self.alpha_raw = nn.Parameter(raw)
        self.beta = nn.Parameter(torch.ones(()))

    def weights(self) -> Tensor:
        return torch.softmax(self.alpha_raw, dim=1)  # [P, K]


@contextlib.contextmanager
def _seeded_rng(seed: int, device: torch.device):
    """Seed torch's global RNG (what dropout draws from) for the block, restoring the caller's state after."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _learned(states: Sequence[State], ev: Evaluator,
             steps: Callable[[int], tuple[Tensor, Tensor, Tensor, Tensor] | None],
             epochs: int, lr: float, weight_decay: float, optimizer: str, init: str, t0: int | None,
             seed: int, train_mode: bool, keep: str = "last", beta_lr: float | None = None) -> SoupResult:
    """Fit the mixing coefficients (arguments checked by :func:`check_params`). ``steps(epoch)`` gives the step's
    (x, edge_index, y, fit mask), or None for a step with no fit node (skipped). ``keep='best'`` returns the
    coefficients with the best accuracy on the fit nodes over the epochs (ties: lower fit loss), which
    needs full-fit-set steps (LS, not PLS). ``beta_lr``: learning rate of the output scale beta (None: ``lr``;
    0: beta stays 1, so the loss can only fall by mixing, not by sharpening the logits)."""
    names = _param_names(ev)
    k = len(states)
    start, info = None, {}
    if init == "greedy":  # warm start at the greedy soup (its K + <=K-1 evaluations count in the soup's time)
        g_res = greedy(states, ev)
        start = g_res.info["weights"]
        info.update(greedy_kept=g_res.info["kept"], greedy_fit_acc=g_res.info["fit_acc"])
    # [K, numel] per tensor, never requiring grad: mixing is one [K] @ [K, numel] product, whose backward
    # is a matrix-vector product for the coefficients only (a broadcast multiply + sum would build a
    # [K, *shape] temporary in both directions)
    stacked = {n: torch.stack([s[n].reshape(-1) for s in states]).detach() for n in names}
    shapes = {n: states[0][n].shape for n in names}
    buffers = {n: sum(s[n] for s in states) / k for n in states[0] if n not in stacked}
    g = torch.Generator().manual_seed(int(seed))
    mixer = _Mixer(names, k, init, g, start)
    beta_lr = lr if beta_lr is None else float(beta_lr)
    mixer.beta.requires_grad_(beta_lr > 0)
    # weight decay acts on the mixing logits only (it pulls them together, i.e. towards the uniform soup); on beta
    # it would pull the output scale to 0, which regularises nothing
    groups = [{"params": [mixer.alpha_raw]}] + ([{"params": [mixer.beta], "lr": beta_lr, "weight_decay": 0.0}]
                                                 if beta_lr > 0 else [])
    opt = OPTIMIZERS[optimizer](groups, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=int(t0)) if t0 else None
    ev.model.train(train_mode)
    losses = []

    def mixed(w: Tensor) -> State:
        out = {n: (w[j] @ stacked[n]).view(shapes[n]) for j, n in enumerate(names)}
        out.update(buffers)
        return out

    empty_steps = 0
    best: tuple = (-math.inf, -math.inf, -1, None)  # (fit accuracy, -fit loss, epoch, coefficients) kept
    fit_accs: list[float] = []

    def consider(acc: float, loss: float) -> None:
        nonlocal best
        fit_accs.append(acc)
        if (acc, -loss) > best[:2]:
            best = (acc, -loss, len(fit_accs) - 1, mixer.alpha_raw.detach().clone())

    def score(x: Tensor, edge_index: Tensor, y: Tensor, fit: Tensor) -> tuple[float, float]:
        """Eval-mode fit accuracy and loss of the current coefficients (one extra forward, no grad)."""
        with torch.no_grad():
            ev.model.eval()
            out = ev.logits(mixed(mixer.weights()), x, edge_index)[fit]
            ev.model.train(train_mode)
            return float((out.argmax(-1) == y[fit]).float().mean()), float(F.cross_entropy(out * mixer.beta, y[fit]))

    # dropout masks (train_mode) follow the soup's seed, so a soup is reproducible; the caller's RNG is restored
    with _seeded_rng(int(seed), ev.x.device) if train_mode else contextlib.nullcontext():
        for epoch in range(int(epochs)):
            batch = steps(epoch)
            if batch is None:  # a PLS step whose parts hold no fit node: no loss, so no update
                empty_steps += 1
                continue
            x, edge_index, y, fit = batch
            opt.zero_grad()
            logits = ev.logits(mixed(mixer.weights()), x, edge_index) * mixer.beta
            loss = F.cross_entropy(logits[fit], y[fit])
            if keep == "best":  # the step's own forward scores the coefficients it starts from (eval mode: free)
                acc, l_val = score(x, edge_index, y, fit) if train_mode else (
                    float((logits[fit].detach().argmax(-1) == y[fit]).float().mean()), float(loss.detach()))
                consider(acc, l_val)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(float(loss.detach()))
        if keep == "best":
            consider(*score(*steps(int(epochs))))  # the coefficients after the last step
            with torch.no_grad():
                mixer.alpha_raw.copy_(best[3])
            # kept_epoch e: the coefficients after e steps (epochs = those after the last step)
            info.update(kept_epoch=best[2], fit_acc=best[0], fit_acc_curve=fit_accs)
    ev.model.eval()
    grad_tensors = [f"mixer.{n}" for n, p in mixer.named_parameters() if p.grad is not None]
    grad_tensors += [f"model.{n}" for n, p in ev.model.named_parameters() if p.grad is not None]
    grad_tensors += [f"ingredients.{n}" for n, t in stacked.items() if t.requires_grad or t.grad is not None]
    grad_tensors += [f"ingredient_states.{n}" for s in states for n, t in s.items() if t.requires_grad]
    with torch.no_grad():
        w = mixer.weights()
        state = {n: t.detach() for n, t in mixed(w).items()}
    coeffs = {n: w[j].tolist() for j, n in enumerate(names)}
    info.update(coefficients=coeffs, beta=float(mixer.beta.detach()), loss=losses, weights=w.mean(0).tolist(),
                grad_tensors=grad_tensors, empty_steps=empty_steps)
    if empty_steps:
        log.warning("%d of %d steps had no fit node in their parts and were skipped; fewer parts (num_parts) or more "
                    "per step (num_parts_per_step) avoid this", empty_steps, int(epochs))
    return SoupResult(state, info)


def learned(states: Sequence[State], ev: Evaluator, epochs: int = 100, lr: float = 1.0, weight_decay: float = 0.0,
            optimizer: str = "sgd", init: str = "uniform", t0: int | None = 4, seed: int = 0,
            train_mode: bool = False, keep: str = "last", beta_lr: float | None = None, **_) -> SoupResult:
    """Learned Souping: full-graph forward of the mixed model, cross-entropy on the fit nodes.

    ``init='greedy'`` starts from the greedy soup's weights instead of a uniform or random mix;
    ``keep='best'`` returns the epoch with the best fit accuracy (the criterion greedy and GIS select by)."""
    check_params("learned", {"init": init, "keep": keep, "optimizer": optimizer, "beta_lr": beta_lr})
    fit = ev.masks["fit"]
    return _learned(states, ev, lambda e: (ev.x, ev.edge_index, ev.y, fit), epochs, lr, weight_decay, optimizer,
                    init, t0, seed, train_mode, keep, beta_lr)


def check_params(strategy: str, params: dict) -> None:
    """Reject bad ``soup.params`` of LS/PLS: the soup task calls it before any ingredient is trained, the
    strategies when called directly."""
    def number(key: str, lo: float, *, integer: bool = False, open_lo: bool = False, nullable: bool = False) -> None:
        if key not in params or (nullable and params[key] is None):
            return
        v = params[key]
        kind = "a whole number" if integer else "a number"
        ok = not isinstance(v, bool) and isinstance(v, int if integer else (int, float))
        if not ok or v < lo or (open_lo and v == lo):
            bound = f"> {lo}" if open_lo else f">= {lo}"
            raise ValueError(f"soup.params.{key} must be {kind} {bound}{' or null' if nullable else ''}, got {v!r}")

    if strategy == "gis":
        number("granularity", 2, integer=True)
    if strategy not in ("learned", "partition_learned"):
        return
    number("epochs", 1, integer=True)
    number("lr", 0, open_lo=True)
    number("weight_decay", 0)
    number("t0", 1, integer=True, nullable=True)
    init, keep = params.get("init", "uniform"), params.get("keep", "last")
    if init not in INITS:
        raise ValueError(f"soup.params.init must be one of {', '.join(INITS)}, got {init!r}")
    if keep not in KEEPS:
        raise ValueError(f"soup.params.keep must be one of {', '.join(KEEPS)}, got {keep!r}")
    if strategy == "partition_learned" and (init == "greedy" or keep != "last"):
        raise ValueError("partition_learned takes neither soup.params.init=greedy nor soup.params.keep=best: both need "
                         "full-graph evaluations, which PLS exists to avoid")
    beta_lr = params.get("beta_lr")
    if beta_lr is not None and (isinstance(beta_lr, bool) or not isinstance(beta_lr, (int, float)) or beta_lr < 0):
        raise ValueError(f"soup.params.beta_lr must be null (= lr) or a number >= 0 (0: output scale fixed), got {beta_lr!r}")
    if params.get("optimizer", "sgd") not in OPTIMIZERS:
        raise ValueError(f"soup.params.optimizer must be one of {', '.join(OPTIMIZERS)}, got {params.get('optimizer')!r}")
    if strategy == "partition_learned":  # the bound by the data (num_parts <= fit nodes) is checked by make_parts
        if params.get("partition", "metis") not in METHODS:
            raise ValueError(f"soup.params.partition must be one of {', '.join(METHODS)}, got {params.get('partition')!r}")
        k, r = params.get("num_parts", 32), params.get("num_parts_per_step", 4)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (k, r)) or not 1 <= r <= k:
            raise ValueError("soup.params.num_parts (K) and num_parts_per_step (R) must be integers with 1 <= R <= K, "
                             f"got K={k!r}, R={r!r}")


def partition_learned(states: Sequence[State], ev: Evaluator, parts: Any, num_parts_per_step: int = 4,
                      epochs: int = 100, lr: float = 1.0, weight_decay: float = 0.0, optimizer: str = "sgd",
                      init: str = "uniform", t0: int | None = 4, seed: int = 0, train_mode: bool = False,
                      keep: str = "last", beta_lr: float | None = None, **_) -> SoupResult:
    """Partition Learned Souping: each step uses R of K partitions (their induced subgraph)."""
    check_params("partition_learned", {"init": init, "keep": keep, "optimizer": optimizer, "beta_lr": beta_lr})
    sched = PartitionSchedule(parts, ev.edge_index, int(num_parts_per_step), seed)
    fit = ev.masks["fit"]
    seen = torch.zeros_like(fit)
    max_nodes = 0

    has_fit = torch.bincount(sched.parts[fit.to(sched.parts.device)], minlength=sched.num_parts) > 0  # once, on CPU

    def step(epoch: int):
        nonlocal max_nodes
        chosen = sched.take()
        if not bool(has_fit[chosen].any()):
            return None  # nothing to fit: _learned skips the step, and its subgraph is never built
        nodes, sub_ei = sched.subgraph(chosen)
        seen[nodes] = True
        max_nodes = max(max_nodes, nodes.numel())
        x = gather_rows(ev.x, nodes)
        return x, sub_ei, ev.y[nodes], fit[nodes]

    res = _learned(states, ev, step, epochs, lr, weight_decay, optimizer, init, t0, seed, train_mode,
                   beta_lr=beta_lr)
    res.info.update(fit_covered=float(seen[fit].float().mean()), num_parts=sched.num_parts,
                    max_step_nodes=max_nodes)
    return res


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, state: State, x: Tensor, edge_index: Tensor) -> State:
    """Recompute BatchNorm running statistics of ``state`` with one full-graph pass (dropout off)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return state
    model.load_state_dict(state)
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    model(x, edge_index)
    model.eval()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


STRATEGIES: dict[str, Callable[..., SoupResult]] = {
    "uniform": uniform, "greedy": greedy, "gis": gis, "learned": learned, "partition_learned": partition_learned,
}
