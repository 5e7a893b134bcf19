"""``task=prune`` (selected by ``python train.py pruning=<method>``): find a sparse ticket (weights and graph).

Every method starts from the configured backbone and its initialization, and every ticket it finds is
retrained (or, for ``fastglt`` with ``retrain=false``, kept as trained) and written as a zoo entry of kind
``pruned`` whose parent is the ordinary dense run (trained once, or reused from the zoo), with its masks
in ``ticket.safetensors``. This module only wires the package:

* ``checks``: every option, before any training;
* ``context``: :class:`PruningContext`, what the methods share (graph, dense parent, ticket ids, records,
  retraining);
* ``one_shot``, ``ugs`` (``imp_ugs``), ``fastglt``: the methods, one module each;
* ``macs``: inference cost; ``report``: plot, W&B and the console line; ``batched``: several seeds at once.
"""

from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gnnzoo.pruning.batched import run_seeds
from gnnzoo.pruning.checks import check_pruning
from gnnzoo.pruning.context import PruningContext
from gnnzoo.pruning.fastglt import fastglt
from gnnzoo.pruning.one_shot import one_shot
from gnnzoo.pruning.report import log_to_wandb, plot_tickets, print_ticket
from gnnzoo.pruning.ugs import imp_ugs
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.config import backbone_config, check_config, check_one_method
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import console
from gnnzoo.zoo.store import Zoo

SEARCHES = {"one_shot": one_shot, "imp_ugs": imp_ugs, "fastglt": fastglt}


def run(cfg: DictConfig) -> dict[str, Any]:
    """The prune task: returns the (last) ticket's metrics with ``value`` = its monitored metric."""
    check_config(cfg)
    check_one_method(cfg, "prune")
    check_pruning(cfg)
    p = cfg.pruning
    Zoo(cfg.paths.zoo_dir).check_writable()
    n = int(cfg.zoo.get("parallel_models", 1))
    if n > 1:
        return run_seeds(cfg, n, run)
    ctx = PruningContext(cfg)
    if not ctx.names and float(p.weight_sparsity) > 0:
        raise ConfigError(
            f"pruning.scope selects no tensor of {cfg.backbone.name} "
            f"({OmegaConf.to_container(p.scope)}); enable first_layer / last_layer / bias"
        )
    dense_cfg = backbone_config(cfg)
    dense_cfg.zoo.enabled = True  # the ticket reads its parent from the zoo (and names it)
    console.print(f"[bold]prune[/] {p.method}: dense {cfg.backbone.name} on {cfg.dataset.name} seed={cfg.seed}")
    ctx.dense = train(dense_cfg)
    ctx.t0 = time.perf_counter()  # the search's clock starts after the shared dense run
    results = SEARCHES[p.method](ctx)
    final = results[-1]
    info = final.get("pruning") or ctx.zoo[final["run_id"]].record["pruning"]
    log_to_wandb(cfg, plot_tickets(ctx, cfg.paths.get("output_dir")), results)
    print_ticket(cfg, final, info, ctx.dense)
    return {
        **{k: v for k, v in final.items() if k != "pruning"},
        "value": final.get(cfg.monitor.metric),
        "prune/weight_sparsity": info["weight_sparsity"],
        "prune/graph_sparsity": info["graph_sparsity"],
        "prune/mac_saving": info["mac_saving"],
        "prune/dense_test_acc": ctx.dense.get("test/acc"),
        "dense_run_id": ctx.dense["run_id"],
        "tickets": [r["run_id"] for r in results],
    }
