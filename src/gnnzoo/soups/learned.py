"""Learned Souping (LS) and Partition Learned Souping (PLS): mixing coefficients per (parameter tensor,
ingredient), softmax over ingredients, fitted by gradient descent on the fit nodes through the mixed model (PLS:
on R of K graph partitions per step). Only the coefficients (and the output scale beta) train; the ingredients
and the template model never receive a gradient."""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from gnnzoo.data.sampler import gather_rows
from gnnzoo.soups.partition import PartitionSchedule
from gnnzoo.soups.strategies import OPTIMIZERS, Evaluator, SoupResult, State, _param_names, check_params, greedy

log = logging.getLogger("gnnzoo")

_WARM_FLOOR = 1e-6  # weight of ingredients a warm start leaves out: a finite logit (-inf would turn into NaN/inf
#                     under weight decay); at 1e-6 they stay out in practice, as gradients scale with the weight


class _Mixer(nn.Module):
    """One mixing logit per (parameter tensor, ingredient); softmax over ingredients; output scale beta."""

    def __init__(
        self, names: list[str], k: int, init: str, generator: torch.Generator, start: Sequence[float] | None = None
    ):
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


class _Stack:
    """The ingredients' parameter tensors stacked ``[K, numel]`` (never requiring grad: mixing is one
    ``[K] @ [K, numel]`` product, whose backward is a matrix-vector product for the coefficients only, where a
    broadcast multiply + sum would build a ``[K, *shape]`` temporary in both directions); buffers averaged."""

    def __init__(self, states: Sequence[State], names: list[str]):
        self.names = names
        self.stacked = {n: torch.stack([s[n].reshape(-1) for s in states]).detach() for n in names}
        self.shapes = {n: states[0][n].shape for n in names}
        self.buffers = {n: sum(s[n] for s in states) / len(states) for n in states[0] if n not in self.stacked}

    def mix(self, w: Tensor) -> State:
        """The state of the soup with per-tensor coefficients ``w`` ``[P, K]``."""
        out = {n: (w[j] @ self.stacked[n]).view(self.shapes[n]) for j, n in enumerate(self.names)}
        out.update(self.buffers)
        return out


class _BestKeeper:
    """``keep='best'``: the coefficients with the best fit accuracy over the epochs (ties: lower fit loss)."""

    def __init__(self):
        self.best: tuple = (-math.inf, -math.inf, -1, None)  # (fit accuracy, -fit loss, epoch, coefficients)
        self.fit_accs: list[float] = []

    def consider(self, acc: float, loss: float, alpha_raw: Tensor) -> None:
        self.fit_accs.append(acc)
        if (acc, -loss) > self.best[:2]:
            self.best = (acc, -loss, len(self.fit_accs) - 1, alpha_raw.detach().clone())


def _optimizer(mixer: _Mixer, optimizer: str, lr: float, weight_decay: float, beta_lr: float | None, t0: int | None):
    """The optimizer of the mixing logits (and of beta unless its learning rate is 0), and its cosine restarts.
    Weight decay acts on the logits only (it pulls them together, i.e. towards the uniform soup); on beta it would
    pull the output scale to 0, which regularises nothing."""
    beta_lr = lr if beta_lr is None else float(beta_lr)
    mixer.beta.requires_grad_(beta_lr > 0)
    groups = [{"params": [mixer.alpha_raw]}] + (
        [{"params": [mixer.beta], "lr": beta_lr, "weight_decay": 0.0}] if beta_lr > 0 else []
    )
    opt = OPTIMIZERS[optimizer](groups, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=int(t0)) if t0 else None
    return opt, sched


def _score(ev: Evaluator, mixer: _Mixer, stack: _Stack, batch, train_mode: bool) -> tuple[float, float]:
    """Eval-mode fit accuracy and loss of the current coefficients (one extra forward, no grad)."""
    x, edge_index, extra, y, fit = batch
    with torch.no_grad():
        ev.model.eval()
        out = ev.logits(stack.mix(mixer.weights()), x, edge_index, extra)[fit]
        ev.model.train(train_mode)
        return ev.measure(out, y[fit]), float(ev.loss(out * mixer.beta, y[fit]))


def _fit(
    ev: Evaluator,
    mixer: _Mixer,
    stack: _Stack,
    steps,
    epochs: int,
    opt,
    sched,
    train_mode: bool,
    keeper: _BestKeeper | None,
) -> tuple[list[float], int]:
    """The fit loop: (losses, steps skipped for want of a fit node)."""
    losses, empty_steps = [], 0
    for epoch in range(int(epochs)):
        batch = steps(epoch)
        if batch is None:  # a PLS step whose parts hold no fit node: no loss, so no update
            empty_steps += 1
            continue
        x, edge_index, extra, y, fit = batch
        opt.zero_grad()
        logits = ev.logits(stack.mix(mixer.weights()), x, edge_index, extra) * mixer.beta
        loss = ev.loss(logits[fit], y[fit])
        if keeper is not None:  # the step's own forward scores the coefficients it starts from (eval mode: free)
            if train_mode:
                acc, fit_loss = _score(ev, mixer, stack, batch, train_mode)
            else:
                acc, fit_loss = ev.measure(logits[fit].detach(), y[fit]), float(loss.detach())
            keeper.consider(acc, fit_loss, mixer.alpha_raw)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(float(loss.detach()))
    return losses, empty_steps


def _grad_tensors(mixer: _Mixer, ev: Evaluator, stack: _Stack, states: Sequence[State]) -> list[str]:
    """Every tensor that received a gradient (the test that only the coefficients train reads it)."""
    out = [f"mixer.{n}" for n, p in mixer.named_parameters() if p.grad is not None]
    out += [f"model.{n}" for n, p in ev.model.named_parameters() if p.grad is not None]
    out += [f"ingredients.{n}" for n, t in stack.stacked.items() if t.requires_grad or t.grad is not None]
    out += [f"ingredient_states.{n}" for s in states for n, t in s.items() if t.requires_grad]
    return out


def _learned(
    states: Sequence[State],
    ev: Evaluator,
    steps: Callable[[int], tuple[Tensor, Tensor, dict, Tensor, Tensor] | None],
    epochs: int,
    lr: float,
    weight_decay: float,
    optimizer: str,
    init: str,
    t0: int | None,
    seed: int,
    train_mode: bool,
    keep: str = "last",
    beta_lr: float | None = None,
) -> SoupResult:
    """Fit the mixing coefficients (arguments checked by :func:`check_params`). ``steps(epoch)`` gives the step's
    (x, edge_index, forward keyword arguments, y, fit mask), or None for a step with no fit item (skipped).
    ``keep='best'`` returns the coefficients with the best selection metric (:meth:`Evaluator.measure`) on the
    fit items over the epochs (ties: lower fit loss), which
    needs full-fit-set steps (LS, not PLS). ``beta_lr``: learning rate of the output scale beta (None: ``lr``;
    0: beta stays 1, so the loss can only fall by mixing, not by sharpening the logits)."""
    names = _param_names(ev)
    start, info = None, {}
    if init == "greedy":  # warm start at the greedy soup (its K + <=K-1 evaluations count in the soup's time)
        g_res = greedy(states, ev)
        start = g_res.info["weights"]
        info.update(greedy_kept=g_res.info["kept"], greedy_fit_acc=g_res.info["fit_acc"])
    stack = _Stack(states, names)
    mixer = _Mixer(names, len(states), init, torch.Generator().manual_seed(int(seed)), start)
    opt, sched = _optimizer(mixer, optimizer, lr, weight_decay, beta_lr, t0)
    keeper = _BestKeeper() if keep == "best" else None
    ev.model.train(train_mode)
    # dropout masks (train_mode) follow the soup's seed, so a soup is reproducible; the caller's RNG is restored
    with _seeded_rng(int(seed), ev.x.device) if train_mode else contextlib.nullcontext():
        losses, empty_steps = _fit(ev, mixer, stack, steps, epochs, opt, sched, train_mode, keeper)
        if keeper is not None:
            keeper.consider(
                *_score(ev, mixer, stack, steps(int(epochs)), train_mode), mixer.alpha_raw
            )  # after the last step
            with torch.no_grad():
                mixer.alpha_raw.copy_(keeper.best[3])
            # kept_epoch e: the coefficients after e steps (epochs = those after the last step)
            info.update(kept_epoch=keeper.best[2], fit_acc=keeper.best[0], fit_acc_curve=keeper.fit_accs)
    ev.model.eval()
    grad_tensors = _grad_tensors(mixer, ev, stack, states)
    with torch.no_grad():
        coeffs = mixer.weights()
        state = {n: t.detach() for n, t in stack.mix(coeffs).items()}
    info.update(
        coefficients={n: coeffs[j].tolist() for j, n in enumerate(names)},
        beta=float(mixer.beta.detach()),
        loss=losses,
        weights=coeffs.mean(0).tolist(),
        grad_tensors=grad_tensors,
        empty_steps=empty_steps,
    )
    if empty_steps:
        log.warning(
            "%d of %d steps had no fit node in their parts and were skipped; fewer parts (num_parts) or "
            "more per step (num_parts_per_step) avoid this",
            empty_steps,
            int(epochs),
        )
    return SoupResult(state, info)


def learned(
    states: Sequence[State],
    ev: Evaluator,
    epochs: int = 100,
    lr: float = 1.0,
    weight_decay: float = 0.0,
    optimizer: str = "sgd",
    init: str = "uniform",
    t0: int | None = 4,
    seed: int = 0,
    train_mode: bool = False,
    keep: str = "last",
    beta_lr: float | None = None,
    **_,
) -> SoupResult:
    """Learned Souping: full-graph forward of the mixed model, cross-entropy on the fit nodes.

    ``init='greedy'`` starts from the greedy soup's weights instead of a uniform or random mix;
    ``keep='best'`` returns the epoch with the best fit accuracy (the criterion greedy and GIS select by)."""
    check_params("learned", {"init": init, "keep": keep, "optimizer": optimizer, "beta_lr": beta_lr})
    fit = ev.masks["fit"]
    return _learned(
        states,
        ev,
        lambda e: (ev.x, ev.edge_index, ev.extra, ev.y, fit),
        epochs,
        lr,
        weight_decay,
        optimizer,
        init,
        t0,
        seed,
        train_mode,
        keep,
        beta_lr,
    )


def partition_learned(
    states: Sequence[State],
    ev: Evaluator,
    parts: Any,
    num_parts_per_step: int = 4,
    epochs: int = 100,
    lr: float = 1.0,
    weight_decay: float = 0.0,
    optimizer: str = "sgd",
    init: str = "uniform",
    t0: int | None = 4,
    seed: int = 0,
    train_mode: bool = False,
    keep: str = "last",
    beta_lr: float | None = None,
    **_,
) -> SoupResult:
    """Partition Learned Souping: each step uses R of K partitions (their induced subgraph). Graph classification:
    ``parts`` is a part per *graph* (a step takes the graphs of R parts); link prediction: a part per node of the
    message-passing graph, and a step fits the validation pairs whose two ends lie in its subgraph."""
    check_params("partition_learned", {"init": init, "keep": keep, "optimizer": optimizer, "beta_lr": beta_lr})
    graphs, links = ev.problem == "graph", ev.problem == "link"
    batch = ev.extra["batch"] if graphs else None
    node_parts = parts[batch] if graphs else parts  # a graph's nodes share its part
    sched = PartitionSchedule(node_parts, ev.edge_index, int(num_parts_per_step), seed)
    fit = ev.masks["fit"]
    seen = torch.zeros_like(fit)
    max_nodes = 0
    if links:
        pairs = ev.extra["pairs"]
        has_fit = torch.ones(sched.num_parts, dtype=torch.bool)  # pairs span parts: checked per step
    else:
        fit_parts = parts[fit.to(parts.device)] if graphs else sched.parts[fit.to(sched.parts.device)]
        has_fit = torch.bincount(fit_parts, minlength=sched.num_parts) > 0  # once, on CPU

    def step(epoch: int):
        nonlocal max_nodes
        chosen = sched.take()
        if not bool(has_fit[chosen].any()):
            return None  # nothing to fit: _learned skips the step, and its subgraph is never built
        nodes, sub_ei = sched.subgraph(chosen)
        max_nodes = max(max_nodes, nodes.numel())
        x = gather_rows(ev.x, nodes)
        if links:
            assoc = torch.full((sched.n,), -1, dtype=torch.long)
            assoc[nodes] = torch.arange(nodes.numel())
            inside = fit & (assoc[pairs[0]] >= 0) & (assoc[pairs[1]] >= 0)
            if not bool(inside.any()):
                return None
            seen[inside] = True
            sub_pairs = assoc[pairs[:, inside]]
            return x, sub_ei, {"pairs": sub_pairs}, ev.y[inside], torch.ones(sub_pairs.size(1), dtype=torch.bool)
        if not graphs:
            seen[nodes] = True
            return x, sub_ei, {}, ev.y[nodes], fit[nodes]
        ids, sub_batch = torch.unique_consecutive(batch[nodes], return_inverse=True)  # graphs' nodes are contiguous
        seen[ids] = True
        return x, sub_ei, {"batch": sub_batch, "num_graphs": int(ids.numel())}, ev.y[ids], fit[ids]

    res = _learned(states, ev, step, epochs, lr, weight_decay, optimizer, init, t0, seed, train_mode, beta_lr=beta_lr)
    res.info.update(fit_covered=float(seen[fit].float().mean()), num_parts=sched.num_parts, max_step_nodes=max_nodes)
    return res
