"""``task=prune`` (selected by ``python train.py pruning=<method>``): dense run -> ticket -> retrained sparse run.

This first slice builds ``one_shot`` on weights: the dense run is trained (or reused from the zoo: it is
an ordinary backbone run with the same id), its best-val weights are pruned by magnitude to
``pruning.weight_sparsity``, and the ticket is retrained from the dense run's initialization (``rewind``).
The result is a zoo entry of kind ``pruned`` whose parent is the dense run; its masks are saved as
``ticket.safetensors`` in the entry.
"""
from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gnnzoo.data.graph import load_graph
from gnnzoo.pruning.masks import Masks, MaskEnforcer, Scope, magnitude_masks, sparsity
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.config import backbone_config, check_config, check_one_method, instantiate_clean
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import console
from gnnzoo.zoo.ids import hash_id, identity_config
from gnnzoo.zoo.store import Zoo

METHODS = ("one_shot",)
REWINDS = ("init", "dense")
TICKET = "ticket.safetensors"


def check_pruning(cfg: DictConfig) -> None:
    """Every pruning option checked before any training, naming the key."""
    p = cfg.pruning
    if p.method not in METHODS:
        raise ConfigError(f"pruning.method={p.method!r}: one of {', '.join(METHODS)} (imp_ugs and fastglt are not "
                          "built yet)")
    for key in ("weight_sparsity", "graph_sparsity"):
        v = p.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) < 1.0:
            raise ConfigError(f"pruning.{key}={v!r} is out of range: expected a fraction in [0, 1)")
    if float(p.graph_sparsity) > 0:
        raise ConfigError("pruning.graph_sparsity > 0: graph (edge) pruning is not built yet; this slice prunes "
                          "weights only (pruning.graph_sparsity=0)")
    if p.threshold not in ("global", "layer"):
        raise ConfigError(f"pruning.threshold={p.threshold!r}: expected global or layer")
    if p.rewind not in REWINDS:
        raise ConfigError(f"pruning.rewind={p.rewind!r}: expected one of {', '.join(REWINDS)}")
    if cfg.data.get("batch_size") is not None:
        raise ConfigError("task=prune trains full-batch (data=full_batch); neighbour sampling is not supported yet")


def scope_of(cfg: DictConfig) -> Scope:
    return Scope(**OmegaConf.to_container(cfg.pruning.scope, resolve=True))


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
    edges (approximated as edges x the layer's output width; APPNP: x K propagation steps; MLP: none)."""
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


def run(cfg: DictConfig) -> dict[str, Any]:
    """The prune task: returns the ticket's metrics with ``value`` = its monitored metric."""
    check_config(cfg)
    check_one_method(cfg, "prune")
    check_pruning(cfg)
    p = cfg.pruning
    dense_cfg = backbone_config(cfg)
    dense_cfg.zoo.enabled = True  # the ticket reads its parent from the zoo (and names it)
    Zoo(cfg.paths.zoo_dir).check_writable()
    template = instantiate_clean(cfg.backbone)  # for the tensor names and the MAC count
    names = scope_of(cfg).names(template)
    if not names:
        raise ConfigError(f"pruning.scope selects no tensor of {cfg.backbone.name} "
                          f"({OmegaConf.to_container(p.scope)}); enable first_layer / last_layer / bias")

    console.print(f"[bold]prune[/] {p.method}: dense {cfg.backbone.name} on {cfg.dataset.name} seed={cfg.seed}")
    dense = train(dense_cfg)
    zoo = Zoo(cfg.paths.zoo_dir)
    dense_state = zoo[dense["run_id"]].state_dict()
    masks = magnitude_masks(dense_state, names, float(p.weight_sparsity), p.threshold)
    reached = sparsity(masks)
    graph = load_graph(cfg)
    n_edges = int(graph.data.edge_index.size(1))
    dense_macs, ticket_macs = macs(template, {}, graph.num_nodes, n_edges), macs(template, masks, graph.num_nodes, n_edges)
    info = {"method": p.method, "weight_sparsity": reached["sparsity"], "weights_pruned": reached["pruned"],
            "weights_total": reached["total"], "tensors": names, "threshold": p.threshold, "rewind": p.rewind,
            "graph_sparsity": 0.0, "macs": ticket_macs, "dense_macs": dense_macs,
            "mac_saving": 1.0 - ticket_macs / dense_macs}
    pruning_plain = OmegaConf.to_container(p, resolve=True)
    rid = hash_id({"kind": "pruned", "config": identity_config(cfg), "pruning": pruning_plain,
                   "parents": [dense["run_id"]]})
    res = train(cfg, kind="pruned", rid=rid, parents=[dense["run_id"]],
                prepare=lambda backbone: [start_weights(backbone, dense_state, masks, p.rewind)],
                fields={"pruning": info},
                files=lambda: {TICKET: {k: v.to(torch.uint8) for k, v in masks.items()}})
    out = {**res, "value": res.get(cfg.monitor.metric), "prune/weight_sparsity": reached["sparsity"],
           "prune/mac_saving": info["mac_saving"], "prune/dense_test_acc": dense.get("test/acc"),
           "dense_run_id": dense["run_id"]}
    tag = "[yellow]skipped (already in zoo)[/]" if res.get("skipped") else "[green]pruned[/]"
    console.print(f"{tag} {cfg.backbone.name} on {cfg.dataset.name}: weight sparsity {100 * reached['sparsity']:.1f}% "
                  f"of {reached['total']} weights, test {100 * res['test/acc']:.2f}% (dense "
                  f"{100 * dense['test/acc']:.2f}%), MACs -{100 * info['mac_saving']:.1f}%; run_id={rid}")
    return out
