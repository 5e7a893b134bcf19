"""``task=prune`` (selected by ``python train.py pruning=<method>``): find a sparse ticket (weights and graph).

Every method starts from the configured backbone and its initialization, and every ticket it finds is
retrained (or, for ``fastglt`` with ``retrain=false``, kept as trained) and written as a zoo entry of kind
``pruned`` whose parent is the ordinary dense run (trained once, or reused from the zoo), with its masks
in ``ticket.safetensors``.

* ``one_shot``: the dense run's best-val weights pruned by magnitude; edges pruned by saliency
  ``|∂L/∂w_e|`` at ``w = 1`` (L: cross-entropy of the dense model against its own predictions on every
  node, so every edge of the graph gets a score and no label is read); retrain from ``rewind``.
* ``imp_ugs`` (UGS): per round, train weights and real-valued masks (weights ``m_θ``, edges ``m_g``) from
  the initialization with L1 penalties; at the best-val epoch prune ``rate_weight`` of the remaining weights
  (one global threshold over ``|m_θ|``) and ``rate_graph`` of the remaining edges (``|m_g|``), the last
  round clipped to land on the targets; retrain from the initialization with the masks: one entry per round.
* ``fastglt``: train dense weights and an edge mask for ``pretrain_epochs``; prune once by magnitude to the
  targets; for ``denoise_epochs`` drop, every ``delta`` epochs, the fraction
  ``f(t) = alpha/2 (1 + cos(pi t / T))`` of the active entries with the smallest magnitude and regrow as many
  pruned ones with the largest score (weights: accumulated |dense gradient|; edges: a degree score
  ``(d_u d_v)^-1/2`` plus the |gradient| of the edge's weight at 0, each scaled to [0, 1]); the masks at the
  best-val epoch are the ticket, retrained from the initialization (``retrain``).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from gnnzoo.backbones.build import build_backbone
from gnnzoo.backbones.pruned import EdgeUnits
from gnnzoo.data.graph import load_graph
from gnnzoo.pruning.masks import Masks, MaskEnforcer, Scope, Ticket, magnitude_masks, sparsity, top_keep
from gnnzoo.batched.trainer import BatchedJob, seed_configs, train_batched
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.config import backbone_config, check_config, check_one_method, instantiate_clean
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import close_loggers, console, instantiate_loggers
from gnnzoo.zoo.ids import hash_id, identity_config
from gnnzoo.zoo.store import EDGE_KEY, TICKET, Zoo

log = logging.getLogger("gnnzoo")

METHODS = ("one_shot", "imp_ugs", "fastglt")
REWINDS = ("init", "dense")
RENORMALIZING = ("gcn", "appnp")  # backbones whose normalisation the `renormalize` option switches


# ------------------------------------------------------------------------------------------ checks


def _int(p, key: str, lo: int) -> int:
    v = p.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"pruning.{key}={v!r}: expected an integer >= {lo}")
    return v


def _frac(p, key: str, lo_open: bool = False) -> float:
    v = p.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) < 1.0 or (lo_open and v == 0):
        raise ConfigError(f"pruning.{key}={v!r} is out of range: expected a fraction in {'(0' if lo_open else '[0'}, 1)")
    return float(v)


def check_pruning(cfg: DictConfig) -> None:
    """Every pruning option checked before any training, naming the key."""
    p = cfg.pruning
    if p.method not in METHODS:
        raise ConfigError(f"pruning.method={p.method!r}: one of {', '.join(METHODS)}")
    ws, gs = _frac(p, "weight_sparsity"), _frac(p, "graph_sparsity")
    if ws == 0 and gs == 0:
        raise ConfigError("pruning.weight_sparsity and pruning.graph_sparsity are both 0: nothing to prune")
    if p.threshold not in ("global", "layer"):
        raise ConfigError(f"pruning.threshold={p.threshold!r}: expected global or layer")
    if p.rewind not in REWINDS:
        raise ConfigError(f"pruning.rewind={p.rewind!r}: expected one of {', '.join(REWINDS)}")
    if cfg.data.get("batch_size") is not None:
        raise ConfigError("task=prune trains full-batch (data=full_batch); neighbour sampling is not supported")
    name = cfg.backbone.name
    if gs > 0 and name == "mlp":
        raise ConfigError("pruning.graph_sparsity > 0 with backbone=mlp: an MLP does not use the graph")
    if not p.get("renormalize", True) and name not in RENORMALIZING:
        raise ConfigError(f"pruning.renormalize=false applies to {', '.join(RENORMALIZING)} (normalised adjacency); "
                          f"{name} always aggregates over the kept edges (sage: mean, gat: softmax, gin: sum)")
    if p.method == "imp_ugs":
        rounds = _int(p, "rounds", 1)
        for key, target in (("rate_weight", ws), ("rate_graph", gs)):
            if target == 0:
                continue
            rate = _frac(p, key, lo_open=True)
            reach = 1 - (1 - rate) ** rounds
            if reach + 1e-9 < target:
                need = math.ceil(math.log(1 - target) / math.log(1 - rate))
                raise ConfigError(f"pruning.{key}={rate} over pruning.rounds={rounds} reaches {reach:.4f}, below the "
                                  f"target {target}: it needs pruning.rounds>={need}")
        for key in ("l1_weight", "l1_graph"):
            if float(p.get(key, 0)) < 0:
                raise ConfigError(f"pruning.{key} must be >= 0")
    if p.method == "fastglt":
        _int(p, "pretrain_epochs", 0)
        total = _int(p, "denoise_epochs", 1)
        delta = _int(p, "delta", 1)
        _int(p, "accumulation", 1)
        _frac(p, "alpha")
        if delta > total:
            raise ConfigError(f"pruning.delta={delta} > pruning.denoise_epochs={total}: no denoising update would run")
        if p.rewind != "init":
            raise ConfigError("pruning.rewind: fastglt retrains from the initialization (rewind=init) or not at all "
                              "(pruning.retrain=false)")


def scope_of(cfg: DictConfig) -> Scope:
    return Scope(**OmegaConf.to_container(cfg.pruning.scope, resolve=True))


# ------------------------------------------------------------------------------------------ helpers


def start_weights(backbone: nn.Module, dense_state: dict[str, torch.Tensor], masks: Masks, rewind: str) -> MaskEnforcer:
    """Where the ticket's retraining starts: the initialization (``init``, ``backbone`` as built) or the dense
    run's best-val weights (``dense``), with the masks applied; returns the callback that keeps them exact."""
    if rewind == "dense":
        backbone.load_state_dict(dense_state)
    enforcer = MaskEnforcer(masks)
    enforcer.attach(backbone)
    return enforcer


def macs(model: nn.Module, masks: Masks, num_nodes: int, num_edges: int) -> int:
    """Inference multiply-accumulates: nodes x nnz(W) over every linear map, plus aggregation over the kept
    (directed) edges, approximated as edges x the layer's output width (APPNP: x K steps; MLP: none)."""
    total = 0
    for name, p in model.named_parameters():
        if name.split(".")[-1] == "weight" and p.dim() == 2:
            nnz = int(masks[name].sum()) if name in masks else p.numel()
            total += num_nodes * nnz
    if type(model).__name__ != "MLP":
        widths = [d_out for _, d_out in model.layer_dims()] if hasattr(model, "layer_dims") else []
        steps = getattr(getattr(model, "prop", None), "K", 1)
        total += num_edges * (sum(widths) if type(model).__name__ != "APPNP" else widths[-1] * steps)
    return total


def phase_config(cfg: DictConfig, epochs: int | None = None, patience: Any = "keep") -> DictConfig:
    """The dense config of an inner training phase: not a zoo entry, no experiment logger."""
    c = backbone_config(cfg)
    c.zoo.enabled = False
    c.zoo.skip_completed = False
    c.zoo.snapshot_every = 0
    c.logger = None
    if epochs is not None:
        c.trainer.max_epochs = int(epochs)
    if patience != "keep":
        c.monitor.patience = patience
    return c


class Search:
    """What every method of one prune run shares: the configs, the graph, the dense parent, the clock."""

    def __init__(self, cfg: DictConfig):
        self.cfg, self.p = cfg, cfg.pruning
        self.zoo = Zoo(cfg.paths.zoo_dir)
        self.template = instantiate_clean(cfg.backbone)
        self.names = scope_of(cfg).names(self.template)
        self.shapes = {n: p.shape for n, p in self.template.named_parameters() if n in self.names}
        self.graph = load_graph(cfg)
        self.edge_index = self.graph.data.edge_index
        self.prune_graph = float(self.p.graph_sparsity) > 0
        self.units = EdgeUnits(self.edge_index, bool(self.p.symmetric)) if self.prune_graph else None
        self.plain = OmegaConf.to_container(self.p, resolve=True)
        self.t0 = time.perf_counter()
        self.dense: dict | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def ticket(self, **kw) -> Ticket:
        return Ticket(self.edge_index if self.prune_graph else None, self.shapes, symmetric=bool(self.p.symmetric),
                      renormalize=bool(self.p.renormalize), **kw)

    def rid(self, **extra) -> str:
        return hash_id({"kind": "pruned", "config": identity_config(self.cfg), "pruning": self.plain,
                        "parents": [self.dense["run_id"]], **extra})

    def files(self, wmasks: Masks, edge_keep: Tensor | None) -> dict:
        out = {k: v.to(torch.uint8) for k, v in wmasks.items()}
        if edge_keep is not None:
            out[EDGE_KEY] = edge_keep.to(torch.uint8)
        return {TICKET: out}

    def info(self, wmasks: Masks, edge_keep: Tensor | None, wall: float, **extra) -> dict:
        w = sparsity(wmasks)
        kept_edges = (int(self.units.directed(edge_keep)[~self.units.loops].sum()) if edge_keep is not None
                      else int(self.edge_index.size(1)))
        n, e = self.graph.num_nodes, int(self.edge_index.size(1))
        dense_macs, ticket_macs = macs(self.template, {}, n, e), macs(self.template, wmasks, n, kept_edges)
        g_total = self.units.num_units if self.units else 0
        g_pruned = int((~edge_keep).sum()) if edge_keep is not None else 0
        return {"method": self.p.method, "weight_sparsity": w["sparsity"], "weights_pruned": w["pruned"],
                "weights_total": w["total"], "tensors": self.names, "threshold": self.p.threshold,
                "rewind": self.p.rewind, "graph_sparsity": g_pruned / g_total if g_total else 0.0,
                "edges_pruned": g_pruned, "edges_total": g_total,
                "edge_unit": ("undirected" if self.p.symmetric else "directed") if self.units else None,
                "renormalize": bool(self.p.renormalize), "macs": ticket_macs, "dense_macs": dense_macs,
                "mac_saving": 1.0 - ticket_macs / dense_macs, "search_wall_s": wall, **extra}

    def retrain(self, rid: str, wmasks: Masks, edge_keep: Tensor | None, info: dict,
                start: dict | None = None) -> dict:
        """Train the ticket from the initialization (or from ``start`` weights) as the zoo entry ``rid``;
        ``info`` is the record's ``pruning`` field (``search_wall_s``: the search before this retraining; the
        record's ``wall_time_s`` is the retraining)."""
        ticket = None
        if edge_keep is not None:
            ticket = self.ticket()
            ticket.set_edge_keep(edge_keep)

        def prepare(backbone):
            return [start_weights(backbone, start or {}, wmasks, "dense" if start is not None else "init")]

        return train(self.cfg, kind="pruned", rid=rid, parents=[self.dense["run_id"]], prepare=prepare,
                     fields={"pruning": info}, masker=ticket, files=lambda: self.files(wmasks, edge_keep))


def edge_saliency(backbone: nn.Module, x: Tensor, edge_index: Tensor, units: EdgeUnits) -> Tensor:
    """``|∂L/∂w_u|`` at ``w = 1`` per edge unit; L: cross-entropy of ``backbone`` against its own predictions
    on every node (eval mode, no labels read)."""
    backbone.eval()
    w = torch.ones(units.num_units, requires_grad=True)
    out = backbone(x, edge_index, units.per_edge(w))
    loss = F.cross_entropy(out, out.argmax(-1).detach())
    (grad,) = torch.autograd.grad(loss, w)
    return grad.abs()


def prune_edges(score: Tensor, n_prune: int, keep: Tensor) -> Tensor:
    """``keep`` with ``n_prune`` more units removed: the kept ones with the smallest ``score``."""
    return top_keep(score, int(keep.sum()) - n_prune, keep)


def _targets(s: Search) -> tuple[int, int]:
    """Entries to prune at the targets: (weights, edge units)."""
    w_total = sum(int(torch.Size(sh).numel()) for sh in s.shapes.values())
    g_total = s.units.num_units if s.units else 0
    return int(round(float(s.p.weight_sparsity) * w_total)), int(round(float(s.p.graph_sparsity) * g_total))


def _ones(s: Search) -> tuple[Masks, Tensor | None]:
    return ({n: torch.ones(sh, dtype=torch.bool) for n, sh in s.shapes.items()},
            torch.ones(s.units.num_units, dtype=torch.bool) if s.units else None)


def _load_ticket(entry) -> tuple[Masks, Tensor | None]:
    t = entry.ticket()
    edge = t.pop(EDGE_KEY, None)
    return t, edge


# ------------------------------------------------------------------------------------------ one-shot


def one_shot(s: Search) -> list[dict]:
    dense_state = s.zoo[s.dense["run_id"]].state_dict()
    wmasks = magnitude_masks(dense_state, s.names, float(s.p.weight_sparsity), s.p.threshold)
    edge_keep = None
    if s.prune_graph:
        model = instantiate_clean(s.cfg.backbone)
        model.load_state_dict(dense_state)
        score = edge_saliency(model, s.graph.data.x, s.edge_index, s.units)
        edge_keep = top_keep(score, s.units.num_units - _targets(s)[1])
    wall = float(s.zoo[s.dense["run_id"]].record.get("wall_time_s") or 0.0) + s.elapsed()
    start = dense_state if s.p.rewind == "dense" else None
    return [s.retrain(s.rid(), wmasks, edge_keep, s.info(wmasks, edge_keep, wall), start=start)]


# ------------------------------------------------------------------------------------------ UGS


def _attach(masks_fn, grad_sink=None, load: dict | None = None, extra: list | None = None):
    """A ``prepare`` hook: optionally load weights, then keep the weight masks exact."""
    def prepare(backbone):
        if load is not None:
            backbone.load_state_dict(load)
        enforcer = MaskEnforcer(masks_fn, grad_sink)
        enforcer.attach(backbone)
        return [enforcer, *(extra or [])]
    return prepare


def imp_ugs(s: Search) -> list[dict]:
    p = s.p
    target_w, target_g = _targets(s)
    wmasks, edge_keep = _ones(s)
    w_total = sum(m.numel() for m in wmasks.values())
    results, search_s = [], 0.0
    gen = torch.Generator().manual_seed(int(s.cfg.seed))
    for k in range(1, int(p.rounds) + 1):
        rid = s.rid(round=k)
        done = s.zoo.completed(rid)
        if done is not None and done.record.get("files", {}).get(TICKET):
            wmasks, edge_keep = _load_ticket(done)
            search_s = float(done.record["pruning"]["search_wall_s"])
            console.print(f"[yellow]skip[/] UGS round {k}: ticket {rid} already in the zoo")
            results.append({**done.record.get("metrics", {}), "run_id": rid, "skipped": True,
                            "pruning": done.record["pruning"]})
        else:
            t = time.perf_counter()
            ticket = s.ticket(weight_scores=target_w > 0, edge_scores=s.prune_graph, l1_weight=float(p.l1_weight),
                              l1_graph=float(p.l1_graph), score_noise=1e-5, generator=gen)
            ticket.set_weight_masks(wmasks)
            if edge_keep is not None:
                ticket.set_edge_keep(edge_keep)
            console.print(f"[bold]UGS round {k}[/]: training masks (weights {100 * sparsity(wmasks)['sparsity']:.1f}% "
                          f"pruned, edges {100 * (0 if edge_keep is None else float((~edge_keep).float().mean())):.1f}%)")
            frozen = {n: m.clone() for n, m in wmasks.items()}
            train(phase_config(s.cfg, patience=None), prepare=_attach(frozen), masker=ticket)
            pruned_w = w_total - sum(int(m.sum()) for m in wmasks.values())
            if target_w > pruned_w:
                kept = w_total - pruned_w
                n = min(int(round(float(p.rate_weight) * kept)), target_w - pruned_w)
                wmasks = magnitude_masks(ticket.weight_scores(), s.names, (pruned_w + n) / w_total, p.threshold,
                                         keep=wmasks)
            if edge_keep is not None:
                pruned_g = int((~edge_keep).sum())
                if target_g > pruned_g:
                    n = min(int(round(float(p.rate_graph) * int(edge_keep.sum()))), target_g - pruned_g)
                    edge_keep = prune_edges(ticket.edge_score.detach().clamp(min=0), n, edge_keep)
            search_s += time.perf_counter() - t
            info = s.info(wmasks, edge_keep, search_s, round=k)
            results.append({**s.retrain(rid, wmasks, edge_keep, info), "pruning": info})
        reached_w = w_total - sum(int(m.sum()) for m in wmasks.values()) >= target_w
        reached_g = edge_keep is None or int((~edge_keep).sum()) >= target_g
        if reached_w and reached_g:
            break
    return results


# ------------------------------------------------------------------------------------------ FastGLT


def _zero_state(optimizer: torch.optim.Optimizer | None, param: Tensor, where: Tensor) -> None:
    """Zero the optimizer state (Adam moments, momentum) of ``param``'s entries ``where``."""
    if optimizer is None:
        return
    state = optimizer.state.get(param, {})
    for buf in state.values():
        if torch.is_tensor(buf) and buf.shape == param.shape:
            buf[where] = 0


class Denoiser(pl.Callback):
    """FastGLT's gradual denoising (see the module docstring): every ``delta`` epochs, drop and regrow."""

    def __init__(self, ticket: Ticket, grads: dict[str, Tensor], total: int, delta: int, alpha: float,
                 accumulation: int, units: EdgeUnits | None):
        self.ticket, self.grads = ticket, grads
        self.total, self.delta, self.alpha, self.accumulation = total, delta, alpha, accumulation
        self.units = units
        self.updates = 0
        if units is not None:
            self.unit_src, self.unit_dst = units.endpoints(ticket.edge_index)

    def fraction(self, t: int) -> float:
        return self.alpha / 2 * (1 + math.cos(math.pi * t / self.total))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        to_update = (-(trainer.current_epoch + 1)) % self.delta
        if to_update == min(self.accumulation, self.delta) - 1:
            self.grads.clear()  # the dense gradients of the last `accumulation` steps before an update

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        t = trainer.current_epoch + 1
        if t % self.delta or t > self.total:
            return
        f = self.fraction(t)
        opt = trainer.optimizers[0] if trainer.optimizers else None
        self._update_weights(f, pl_module.backbone, opt)
        if self.units is not None:
            self._update_edges(f, pl_module.backbone, batch, opt)
        self.updates += 1
        self.grads.clear()

    @torch.no_grad()
    def _update_weights(self, f: float, backbone: nn.Module, opt) -> None:
        params = dict(backbone.named_parameters())
        masks = self.ticket.weight_masks
        new = {}
        for name, m in masks.items():
            n_active = int(m.sum())
            n = int(math.floor(f * n_active))
            if n == 0 or name not in self.grads or n_active == m.numel():
                continue
            w = params[name]
            kept = top_keep(w.abs(), n_active - n, m)
            grow = top_keep(self.grads[name], n, ~kept)
            new[name] = kept | grow
            w[grow] = 0.0  # regrown weights start at zero
            _zero_state(opt, w, ~new[name] | grow)
        if new:
            self.ticket.set_weight_masks({**masks, **new})
            for name, m in new.items():
                params[name].mul_(m)

    def _update_edges(self, f: float, backbone: nn.Module, batch, opt) -> None:
        keep = self.ticket.edge_keep
        n_active = int(keep.sum())
        n = int(math.floor(f * n_active))
        if n == 0:
            return
        score = self.ticket.edge_score.detach().clamp(min=0)
        # gradient of each edge's weight at its current value (0 for pruned edges), on the full graph
        u = (keep.float() * score).requires_grad_()
        was_training = backbone.training
        backbone.eval()
        with torch.enable_grad():
            out = backbone(batch.x, self.ticket.edge_index, self.units.per_edge(u))
            loss = F.cross_entropy(out[batch.train_mask], batch.y[batch.train_mask])
            (grad,) = torch.autograd.grad(loss, u)
        backbone.train(was_training)
        with torch.no_grad():
            kept = top_keep(score, n_active - n, keep)
            kept_dir = self.units.directed(kept) & ~self.units.loops
            deg = 1 + torch.bincount(self.ticket.edge_index[1][kept_dir], minlength=int(self.ticket.edge_index.max()) + 1)
            deg_score = (deg[self.unit_src] * deg[self.unit_dst]).float().rsqrt()
            g = grad.abs()
            grow_score = deg_score / deg_score.max().clamp(min=1e-12) + g / g.max().clamp(min=1e-12)
            grow = top_keep(grow_score, n, ~kept)
            self.ticket.set_edge_keep(kept | grow)
            self.ticket.edge_score[grow] = score[kept].mean()  # regrown edges start at the mean active value
            _zero_state(opt, self.ticket.edge_score, grow)


def fastglt(s: Search) -> list[dict]:
    p, cfg = s.p, s.cfg
    rid = s.rid()
    done = s.zoo.completed(rid)
    if done is not None:
        console.print(f"[yellow]skip[/] fastglt ticket {rid}: already in the zoo")
        return [{**done.record.get("metrics", {}), "run_id": rid, "skipped": True, "pruning": done.record["pruning"]}]
    t = time.perf_counter()
    target_w, target_g = _targets(s)
    # 1. pretrain: dense weights and a trainable edge mask
    holder: dict = {}
    pre = s.ticket(edge_scores=s.prune_graph, l1_graph=float(p.l1_graph))
    if int(p.pretrain_epochs) > 0:
        console.print(f"[bold]fastglt[/]: pretraining {p.pretrain_epochs} epochs")
        train(phase_config(cfg, int(p.pretrain_epochs), patience=None),
              prepare=lambda b: holder.update(backbone=b) or [], masker=pre)
        state = {k: v.clone() for k, v in holder["backbone"].state_dict().items()}
        edge_score = pre.edge_score.detach().clamp(min=0) if s.prune_graph else None
    else:  # prune the initialization (weights by magnitude, edges by degree)
        state = build_backbone(cfg).state_dict()
        edge_score = None
        if s.prune_graph:
            d = torch.bincount(s.edge_index[1], minlength=s.graph.num_nodes).float() + 1
            src, dst = s.units.endpoints(s.edge_index)
            edge_score = (d[src] * d[dst]).rsqrt()
    # 2. one-shot prune to the targets
    wmasks = magnitude_masks(state, s.names, float(p.weight_sparsity), p.threshold)
    ticket = s.ticket(edge_scores=s.prune_graph, l1_graph=float(p.l1_graph))
    ticket.set_weight_masks(wmasks)
    if s.prune_graph:
        ticket.set_edge_keep(top_keep(edge_score, s.units.num_units - target_g))
        with torch.no_grad():
            ticket.edge_score.copy_(torch.where(edge_score > 0, edge_score, torch.ones_like(edge_score)))
    # 3. denoise (prune and regrow every delta epochs); the masks at the best-val epoch are the ticket
    grads: dict[str, Tensor] = {}
    denoiser = Denoiser(ticket, grads, int(p.denoise_epochs), int(p.delta), float(p.alpha), int(p.accumulation),
                        s.units)
    prepare = _attach(lambda: ticket.weight_masks, grads, load=state, extra=[denoiser])
    console.print(f"[bold]fastglt[/]: denoising {p.denoise_epochs} epochs (update every {p.delta})")
    if not p.retrain:
        search = time.perf_counter() - t

        c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        c.trainer.max_epochs = int(p.denoise_epochs)
        c.monitor.patience = None
        info = s.info(wmasks, ticket.edge_keep.clone() if s.prune_graph else None, search,
                      retrained=False, denoise_updates=len(range(p.delta, p.denoise_epochs + 1, p.delta)))
        res = train(c, kind="pruned", rid=rid, parents=[s.dense["run_id"]], prepare=prepare,
                    fields={"pruning": info}, masker=ticket,
                    files=lambda: s.files(ticket.weight_masks, ticket.edge_keep if s.prune_graph else None))
        return [{**res, "pruning": info}]
    train(phase_config(cfg, int(p.denoise_epochs), patience=None), prepare=prepare, masker=ticket)
    wmasks = {k: v.clone() for k, v in ticket.weight_masks.items()}
    edge_keep = ticket.edge_keep.clone() if s.prune_graph else None
    search = time.perf_counter() - t
    info = s.info(wmasks, edge_keep, search, retrained=True, denoise_updates=denoiser.updates)
    # 4. retrain the ticket from the initialization
    return [{**s.retrain(rid, wmasks, edge_keep, info), "pruning": info}]


SEARCHES = {"one_shot": one_shot, "imp_ugs": imp_ugs, "fastglt": fastglt}


# ------------------------------------------------------------------------------------------ the task


def plot_tickets(s: Search, out_dir: str | None) -> Path | None:
    """Test accuracy vs weight and graph sparsity of every ticket of this dense run (all methods), PNG."""
    if not out_dir:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        df = s.zoo.df(kind="pruned", parent=s.dense["run_id"])
        df = df[df.status == "completed"] if len(df) else df
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
        dense = 100 * float(s.dense["test/acc"])
        for ax, col, label in ((axes[0], "prune/weight_sparsity", "weight sparsity (%)"),
                               (axes[1], "prune/graph_sparsity", "graph sparsity (%)")):
            for i, (method, g) in enumerate(df.groupby("prune/method") if len(df) else []):
                g = g.sort_values(col)
                ax.plot(100 * g[col], 100 * g["test/acc"], "o-", color=f"C{i}", label=method, ms=4)
            ax.axhline(dense, color="k", ls="--", lw=1, label="dense")
            ax.axhline(dense - 1, color="k", ls=":", lw=1, label="dense - 1 pt")
            ax.set_xlabel(label)
        axes[0].set_ylabel("test accuracy (%)")
        axes[1].legend(fontsize=7)
        fig.suptitle(f"tickets of {s.cfg.backbone.name} on {s.cfg.dataset.name} (seed {s.cfg.seed})")
        fig.tight_layout()
        path = Path(out_dir) / f"prune_{s.p.method}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    except Exception as e:  # a plot must never fail the run
        log.warning("accuracy-vs-sparsity plot not written: %s", e)
        return None


def _log_plot(cfg: DictConfig, path: Path | None, results: list[dict]) -> None:
    """The plot and the per-round figures in W&B when W&B is the logger (the tickets' own runs have their
    curves; this is the search's summary run)."""
    if path is None or not any("wandb" in str(v.get("_target_", "")).lower()
                               for v in (cfg.get("logger") or {}).values() if v):
        return
    loggers = instantiate_loggers(cfg)
    try:
        for lg in loggers:
            if type(lg).__name__ == "WandbLogger":
                import wandb

                for i, r in enumerate(results):
                    info = r.get("pruning", {})
                    lg.log_metrics({"prune/weight_sparsity": info.get("weight_sparsity"),
                                    "prune/graph_sparsity": info.get("graph_sparsity"),
                                    "prune/test_acc": r.get("test/acc")}, step=i)
                lg.experiment.log({"prune/accuracy_vs_sparsity": wandb.Image(str(path))})
    finally:
        close_loggers(loggers)


def batchable(cfg: DictConfig) -> str | None:
    """None if the seeds of this pruning config can train together in the batched trainer, else why not."""
    p = cfg.pruning
    if p.method != "one_shot":
        return (f"pruning.method={p.method} changes its masks while training (trainable scores, drop-and-regrow), "
                "which the batched trainer does not model")
    if float(p.graph_sparsity) > 0:
        return "each seed's ticket prunes its own edges, and the batched trainer shares one graph across models"
    return None


def one_shot_batched(cfgs: list[DictConfig]) -> list[dict]:
    """``one_shot`` on weights for several seeds: dense runs batched, then the tickets batched."""
    show = bool(cfgs[0].trainer.get("enable_progress_bar", True))
    dense_cfgs = []
    for c in cfgs:
        d = backbone_config(c)
        d.zoo.enabled = True
        dense_cfgs.append(d)
    dense = train_batched(dense_cfgs, progress=show)
    todo, jobs, out = [], [], [None] * len(cfgs)
    for i, (c, d) in enumerate(zip(cfgs, dense)):
        if d.get("status") not in ("completed", None) or d.get("duplicate"):
            out[i] = {"run_id": None, "status": "failed", "error": f"dense run {d['run_id']}: {d.get('error')}"}
            continue
        s = Search(c)
        s.dense = d
        entry = s.zoo[d["run_id"]]
        state = entry.state_dict()
        wmasks = magnitude_masks(state, s.names, float(c.pruning.weight_sparsity), c.pruning.threshold)
        info = s.info(wmasks, None, float(entry.record.get("wall_time_s") or 0.0))
        jobs.append(BatchedJob(kind="pruned", rid=s.rid(engine="batched"), parents=[d["run_id"]],
                               fields={"pruning": info}, masks=wmasks,
                               start=state if c.pruning.rewind == "dense" else None, files=s.files(wmasks, None)))
        todo.append(i)
    for i, r in zip(todo, train_batched([cfgs[i] for i in todo], progress=show, jobs=jobs)):
        out[i] = {**r, "dense_run_id": dense[i]["run_id"], "prune/dense_test_acc": dense[i].get("test/acc")}
    return out


def run_seeds(cfg: DictConfig, n: int) -> dict[str, Any]:
    """``zoo.parallel_models=n``: seeds ``seed .. seed+n-1`` of this pruning config, batched where possible."""
    cfgs = seed_configs(cfg, n)
    why = batchable(cfg)
    results = None
    if why is None:
        try:
            results = one_shot_batched(cfgs)
        except NotImplementedError as e:
            why = str(e)
    if results is None:
        console.print(f"[yellow]zoo.parallel_models={n}: these tickets cannot be batched ({why}); "
                      "training them one by one[/]")
        results = []
        for c in cfgs:
            try:
                results.append({**run(c), "status": "completed"})
            except Exception as err:  # recorded by train(); the other seeds go on
                results.append({"run_id": None, "status": "failed", "error": f"{type(err).__name__}: {err}"})
    values, failed = [], []
    for c, r in zip(cfgs, results):
        if r.get("status") == "failed":
            console.print(f"[red]failed[/] seed={c.seed}: {r.get('error')}")
            failed.append(f"seed={c.seed}: {r.get('error')}")
        else:
            values.append(float(r[cfg.monitor.metric]))
            console.print(f"seed={c.seed}: ticket {r['run_id']} {cfg.monitor.metric}={values[-1]:.4f} "
                          f"test/acc={r['test/acc']:.4f}")
    if not values:
        raise RuntimeError(f"all {n} seeds failed; first: {failed[0]}")
    mean = sum(values) / len(values)
    console.print(f"{len(values)}/{n} tickets completed; mean {cfg.monitor.metric} = {mean:.4f}")
    return {"value": mean, "tickets": [r.get("run_id") for r in results], "failed_runs": failed,
            "skipped": all(r.get("skipped") for r in results), "results": results}


def run(cfg: DictConfig) -> dict[str, Any]:
    """The prune task: returns the (last) ticket's metrics with ``value`` = its monitored metric."""
    check_config(cfg)
    check_one_method(cfg, "prune")
    check_pruning(cfg)
    p = cfg.pruning
    Zoo(cfg.paths.zoo_dir).check_writable()
    n = int(cfg.zoo.get("parallel_models", 1))
    if n > 1:
        return run_seeds(cfg, n)
    s = Search(cfg)
    if not s.names and float(p.weight_sparsity) > 0:
        raise ConfigError(f"pruning.scope selects no tensor of {cfg.backbone.name} "
                          f"({OmegaConf.to_container(p.scope)}); enable first_layer / last_layer / bias")
    dense_cfg = backbone_config(cfg)
    dense_cfg.zoo.enabled = True  # the ticket reads its parent from the zoo (and names it)
    console.print(f"[bold]prune[/] {p.method}: dense {cfg.backbone.name} on {cfg.dataset.name} seed={cfg.seed}")
    s.dense = train(dense_cfg)
    s.t0 = time.perf_counter()  # the search's clock starts after the shared dense run
    results = SEARCHES[p.method](s)
    final = results[-1]
    info = final.get("pruning") or s.zoo[final["run_id"]].record["pruning"]
    path = plot_tickets(s, cfg.paths.get("output_dir"))
    _log_plot(cfg, path, results)
    out = {**{k: v for k, v in final.items() if k != "pruning"}, "value": final.get(cfg.monitor.metric),
           "prune/weight_sparsity": info["weight_sparsity"], "prune/graph_sparsity": info["graph_sparsity"],
           "prune/mac_saving": info["mac_saving"], "prune/dense_test_acc": s.dense.get("test/acc"),
           "dense_run_id": s.dense["run_id"], "tickets": [r["run_id"] for r in results]}
    tag = "[yellow]skipped (already in zoo)[/]" if final.get("skipped") else "[green]pruned[/]"
    console.print(f"{tag} {cfg.backbone.name} on {cfg.dataset.name} ({p.method}): weight sparsity "
                  f"{100 * info['weight_sparsity']:.1f}% of {info['weights_total']} weights, graph sparsity "
                  f"{100 * info['graph_sparsity']:.1f}% of {info['edges_total']} {info['edge_unit'] or ''} edges, test "
                  f"{100 * final['test/acc']:.2f}% (dense {100 * s.dense['test/acc']:.2f}%), MACs "
                  f"-{100 * info['mac_saving']:.1f}%; run_id={final['run_id']}")
    return out
