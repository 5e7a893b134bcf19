"""What every pruning method of one ``task=prune`` run shares: :class:`PruningContext` (configs, graph, the
dense parent, the search clock, ticket records and retraining) and the small helpers the methods use."""

from __future__ import annotations

import time
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from gnnzoo.backbones.heads import for_problem
from gnnzoo.backbones.pruned import EdgeUnits
from gnnzoo.data.graph import load_graph
from gnnzoo.data.problems import problem_of
from gnnzoo.pruning.macs import macs
from gnnzoo.pruning.masks import MaskEnforcer, Masks, Scope, Ticket, layer_density, magnitude_masks, sparsity
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.config import backbone_config, instantiate_clean
from gnnzoo.zoo.ids import hash_id, identity_config
from gnnzoo.zoo.store import EDGE_KEY, TICKET, Zoo, ZooEntry


def scope_of(cfg: DictConfig) -> Scope:
    return Scope(**OmegaConf.to_container(cfg.pruning.scope, resolve=True))


def min_per_neuron(cfg: DictConfig) -> int:
    """``pruning.min_per_neuron``: the least number of weights every output neuron keeps (0 when absent)."""
    return int(cfg.pruning.get("min_per_neuron") or 0)


def start_weights(backbone: nn.Module, dense_state: dict[str, Tensor], masks: Masks, rewind: str) -> MaskEnforcer:
    """Where the ticket's retraining starts: the initialization (``init``, ``backbone`` as built) or the dense
    run's best-val weights (``dense``), with the masks applied; returns the callback that keeps them exact."""
    if rewind == "dense":
        backbone.load_state_dict(dense_state)
    enforcer = MaskEnforcer(masks)
    enforcer.attach(backbone)
    return enforcer


def attach_masks(masks_fn, grad_sink=None, load: dict | None = None, extra: list | None = None):
    """A ``prepare`` hook of :func:`gnnzoo.tasks.backbone.train`: optionally load weights, then keep the weight
    masks (``masks_fn()``) exact; ``extra`` callbacks join the fit."""

    def prepare(backbone):
        if load is not None:
            backbone.load_state_dict(load)
        enforcer = MaskEnforcer(masks_fn, grad_sink)
        enforcer.attach(backbone)
        return [enforcer, *(extra or [])]

    return prepare


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


def load_ticket(entry: ZooEntry) -> tuple[Masks, Tensor | None]:
    """(weight masks, edge keep mask or None) of a pruned zoo entry."""
    masks = entry.ticket()
    edge = masks.pop(EDGE_KEY, None)
    return masks, edge


class PruningContext:
    """The configs, the graph, the dense parent and the clock of one prune run, and what every method does
    with them: name a ticket (:meth:`ticket_id`), describe it (:meth:`info`), retrain it (:meth:`retrain`)."""

    def __init__(self, cfg: DictConfig):
        self.cfg, self.p = cfg, cfg.pruning
        self.zoo = Zoo(cfg.paths.zoo_dir)
        self.template = self.new_model()
        self.names = scope_of(cfg).names(self.template)
        self.shapes = {n: p.shape for n, p in self.template.named_parameters() if n in self.names}
        self.graph = load_graph(cfg)
        self.edge_index = self.graph.data.edge_index
        self.prune_graph = float(self.p.graph_sparsity) > 0
        self.units = EdgeUnits(self.edge_index, bool(self.p.symmetric)) if self.prune_graph else None
        self.plain = OmegaConf.to_container(self.p, resolve=True)
        self.min_per_neuron = min_per_neuron(cfg)
        self.t0 = time.perf_counter()
        self.dense: dict | None = None

    def new_model(self) -> nn.Module:
        """A fresh model of the run's problem (the backbone, or the link predictor / graph classifier around it)."""
        return for_problem(
            instantiate_clean(self.cfg.backbone), problem_of(self.cfg), int(self.cfg.dataset.num_classes)
        )

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def new_ticket(self, **kw) -> Ticket:
        return Ticket(
            self.edge_index if self.prune_graph else None,
            self.shapes,
            symmetric=bool(self.p.symmetric),
            renormalize=bool(self.p.renormalize),
            **kw,
        )

    def ticket_id(self, **extra) -> str:
        return hash_id(
            {
                "kind": "pruned",
                "config": identity_config(self.cfg),
                "pruning": self.plain,
                "parents": [self.dense["run_id"]],
                **extra,
            }
        )

    def magnitude(self, state: dict[str, Tensor], target: float, keep: Masks | None = None) -> Masks:
        """Magnitude masks of the prunable tensors at ``target`` sparsity, with the configured threshold and
        per-neuron minimum."""
        return magnitude_masks(
            state, self.names, target, self.p.threshold, keep=keep, min_per_neuron=self.min_per_neuron
        )

    def targets(self) -> tuple[int, int]:
        """Entries to prune at the targets: (weights, edge units)."""
        w_total = sum(int(torch.Size(sh).numel()) for sh in self.shapes.values())
        g_total = self.units.num_units if self.units else 0
        return int(round(float(self.p.weight_sparsity) * w_total)), int(round(float(self.p.graph_sparsity) * g_total))

    def all_kept(self) -> tuple[Masks, Tensor | None]:
        """Masks that keep everything: (weight masks, edge keep mask or None)."""
        return (
            {n: torch.ones(sh, dtype=torch.bool) for n, sh in self.shapes.items()},
            torch.ones(self.units.num_units, dtype=torch.bool) if self.units else None,
        )

    def files(self, wmasks: Masks, edge_keep: Tensor | None) -> dict:
        out = {k: v.to(torch.uint8) for k, v in wmasks.items()}
        if edge_keep is not None:
            out[EDGE_KEY] = edge_keep.to(torch.uint8)
        return {TICKET: out}

    def info(self, wmasks: Masks, edge_keep: Tensor | None, wall: float, **extra) -> dict:
        """The record's ``pruning`` field of a ticket."""
        w = sparsity(wmasks)
        kept_edges = (
            int(self.units.directed(edge_keep)[~self.units.loops].sum())
            if edge_keep is not None
            else int(self.edge_index.size(1))
        )
        n, e = self.graph.num_nodes, int(self.edge_index.size(1))
        dense_macs, ticket_macs = macs(self.template, {}, n, e), macs(self.template, wmasks, n, kept_edges)
        g_total = self.units.num_units if self.units else 0
        g_pruned = int((~edge_keep).sum()) if edge_keep is not None else 0
        return {
            "method": self.p.method,
            "weight_sparsity": w["sparsity"],
            "weights_pruned": w["pruned"],
            "weights_total": w["total"],
            "tensors": self.names,
            "threshold": self.p.threshold,
            "min_per_neuron": self.min_per_neuron,
            "layer_density": layer_density(wmasks),
            "rewind": self.p.rewind,
            "graph_sparsity": g_pruned / g_total if g_total else 0.0,
            "edges_pruned": g_pruned,
            "edges_total": g_total,
            "edge_unit": ("undirected" if self.p.symmetric else "directed") if self.units else None,
            "renormalize": bool(self.p.renormalize),
            "macs": ticket_macs,
            "dense_macs": dense_macs,
            "mac_saving": 1.0 - ticket_macs / dense_macs,
            "search_wall_s": wall,
            **extra,
        }

    def retrain(self, rid: str, wmasks: Masks, edge_keep: Tensor | None, info: dict, start: dict | None = None) -> dict:
        """Train the ticket from the initialization (or from ``start`` weights) as the zoo entry ``rid``;
        ``info`` is the record's ``pruning`` field (``search_wall_s``: the search before this retraining; the
        record's ``wall_time_s`` is the retraining)."""
        ticket = None
        if edge_keep is not None:
            ticket = self.new_ticket()
            ticket.set_edge_keep(edge_keep)

        def prepare(backbone):
            return [start_weights(backbone, start or {}, wmasks, "dense" if start is not None else "init")]

        return train(
            self.cfg,
            kind="pruned",
            rid=rid,
            parents=[self.dense["run_id"]],
            prepare=prepare,
            fields={"pruning": info},
            masker=ticket,
            files=lambda: self.files(wmasks, edge_keep),
        )

    def skipped(self, rid: str, entry: ZooEntry) -> dict:
        """The result of a ticket that is already completed in the zoo."""
        return {**entry.record.get("metrics", {}), "run_id": rid, "skipped": True, "pruning": entry.record["pruning"]}
