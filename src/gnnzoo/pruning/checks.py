"""The checks of ``task=prune``: every pruning option, before any training, naming the key."""

from __future__ import annotations

import math

from omegaconf import DictConfig

from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.validate import choice, fraction, integer, number

METHODS = ("one_shot", "imp_ugs", "fastglt")
REWINDS = ("init", "dense")
RENORMALIZING = ("gcn", "appnp")  # backbones whose normalisation the `renormalize` option switches


def check_pruning(cfg: DictConfig) -> None:
    """Raise a :class:`ConfigError` for the first option that cannot be honoured."""
    p = cfg.pruning
    choice(p, "method", "pruning", METHODS)
    ws, gs = fraction(p, "weight_sparsity", "pruning"), fraction(p, "graph_sparsity", "pruning")
    if ws == 0 and gs == 0:
        raise ConfigError("pruning.weight_sparsity and pruning.graph_sparsity are both 0: nothing to prune")
    choice(p, "threshold", "pruning", ("global", "layer"))
    choice(p, "rewind", "pruning", REWINDS)
    integer(p, "min_per_neuron", "pruning", lo=0, optional=True)
    if cfg.data.get("batch_size") is not None:
        raise ConfigError("task=prune trains full-batch (data=full_batch); neighbour sampling is not supported")
    name = cfg.backbone.name
    problem = str((cfg.get("problem") or {}).get("name", "node"))
    if gs > 0 and problem == "graph":
        raise ConfigError(
            "pruning.graph_sparsity > 0 with problem=graph: edge masks over a set of graphs are not built; "
            "prune the weights (pruning.graph_sparsity=0)"
        )
    if gs > 0 and name == "mlp":
        raise ConfigError("pruning.graph_sparsity > 0 with backbone=mlp: an MLP does not use the graph")
    if not p.get("renormalize", True) and name not in RENORMALIZING:
        raise ConfigError(
            f"pruning.renormalize=false applies to {', '.join(RENORMALIZING)} (normalised adjacency); "
            f"{name} always aggregates over the kept edges (sage: mean, gat: softmax, gin: sum)"
        )
    if p.method == "imp_ugs":
        _check_ugs(p, ws, gs)
    if p.method == "fastglt":
        _check_fastglt(p)


def _check_ugs(p: DictConfig, ws: float, gs: float) -> None:
    rounds = integer(p, "rounds", "pruning", lo=1)
    for key, target in (("rate_weight", ws), ("rate_graph", gs)):
        if target == 0:
            continue
        rate = fraction(p, key, "pruning", lo_open=True)
        reach = 1 - (1 - rate) ** rounds
        if reach + 1e-9 < target:
            need = math.ceil(math.log(1 - target) / math.log(1 - rate))
            raise ConfigError(
                f"pruning.{key}={rate} over pruning.rounds={rounds} reaches {reach:.4f}, below the "
                f"target {target}: it needs pruning.rounds>={need}"
            )
    for key in ("l1_weight", "l1_graph"):
        number(p, key, "pruning", lo=0, optional=True)


def _check_fastglt(p: DictConfig) -> None:
    integer(p, "pretrain_epochs", "pruning", lo=0)
    total = integer(p, "denoise_epochs", "pruning", lo=1)
    delta = integer(p, "delta", "pruning", lo=1)
    integer(p, "accumulation", "pruning", lo=1)
    fraction(p, "alpha", "pruning")
    if delta > total:
        raise ConfigError(f"pruning.delta={delta} > pruning.denoise_epochs={total}: no denoising update would run")
    if p.rewind != "init":
        raise ConfigError(
            "pruning.rewind: fastglt retrains from the initialization (rewind=init) or not at all "
            "(pruning.retrain=false)"
        )
