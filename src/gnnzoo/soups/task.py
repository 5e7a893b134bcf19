"""``task=soup`` (selected by ``python train.py soup=<strategy>``): ingredients -> soup -> metrics -> zoo entry."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gnnzoo.backbones.heads import for_problem
from gnnzoo.data.graph import graph_spec, load_graph
from gnnzoo.data.problems import problem_of
from gnnzoo.soups.ingredients import IngredientMismatchError, from_zoo, train_ingredients
from gnnzoo.soups.memory import PeakMemory
from gnnzoo.soups.partition import make_parts
from gnnzoo.soups.registry import STRATEGIES
from gnnzoo.soups.strategies import Evaluator, check_params, recompute_batchnorm
from gnnzoo.utils.config import check_config, check_one_method, problem_name
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import close_loggers, console, instantiate_loggers
from gnnzoo.utils.validate import integer
from gnnzoo.zoo.ids import hash_id, identity_config
from gnnzoo.zoo.record import build_record, now_iso
from gnnzoo.zoo.store import Zoo

log = logging.getLogger("gnnzoo")


def split_holdout(val: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the validation nodes into disjoint fit / select halves (seeded)."""
    idx = val.nonzero().view(-1)
    idx = idx[torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(int(seed)))]
    fit, select = torch.zeros_like(val), torch.zeros_like(val)
    fit[idx[: idx.numel() // 2]] = True
    select[idx[idx.numel() // 2 :]] = True
    return fit, select


def unsplit_mask(d) -> torch.Tensor | None:
    """Labelled nodes in none of the train/val/test masks (Planetoid's public split leaves ~40% of the nodes
    out), or None where there are none. Soups never fit on them; ``soup/unsplit_acc`` scores the soup there,
    a tuning set that touches neither the fit nodes nor the test nodes."""
    masks = [getattr(d, k, None) for k in ("train_mask", "val_mask", "test_mask")]
    if any(m is None or m.dim() != 1 for m in masks) or d.y is None or d.y.dim() != 1:
        return None
    rest = ~(masks[0] | masks[1] | masks[2]) & (d.y >= 0)
    return rest if bool(rest.any()) else None


def soup_run_id(cfg: DictConfig, ingredient_ids: list[str]) -> str:
    """The config's identity, the soup group and the ingredients (the formula of gnnzoo 0.1: ids unchanged)."""
    return hash_id(
        {
            "config": identity_config(cfg),
            "soup_strategy": OmegaConf.to_container(cfg.soup, resolve=True),
            "ingredients": sorted(ingredient_ids),
        }
    )


def check_same_graph(cfg: DictConfig, entries) -> None:
    """Ingredients must have been trained on the graph the soup evaluates on: the same resolved loader
    (name, split, seeds, sizes), not only the same dataset name."""
    want = graph_spec(cfg)
    for e in entries:
        got = graph_spec(e.record["config"])
        if got != want:
            diff = ", ".join(
                f"dataset.loader.{k}: {got.get(k)!r} (ingredient) vs {want.get(k)!r} (soup)"
                for k in sorted(set(got) | set(want))
                if got.get(k) != want.get(k)
            )
            raise IngredientMismatchError(
                f"ingredient {e.run_id} was trained on another graph than the soup "
                f"evaluates on: {diff}; souping it here would score the wrong graph"
            )


def _check(cfg: DictConfig) -> int | None:
    """Every soup option, before any ingredient is trained; returns ``soup.limit``."""
    s = cfg.soup
    if not s.get("strategy"):
        raise ConfigError(f"task=soup needs a strategy: soup=<one of {', '.join(sorted(STRATEGIES))}>")
    if s.strategy not in STRATEGIES:
        raise ConfigError(f"unknown soup strategy {s.strategy!r}; choose from {sorted(STRATEGIES)}")
    check_config(cfg)
    check_one_method(cfg, "soup")
    params = OmegaConf.to_container(s.params, resolve=True) if s.get("params") else {}
    check_params(s.strategy, params)
    problem = problem_name(cfg)
    if s.strategy == "partition_learned" and problem == "graph" and params.get("partition", "metis") != "random":
        raise ConfigError(
            f"soup.params.partition={params.get('partition', 'metis')}: graph classification splits its graphs "
            "into parts at random (METIS would cut single graphs); set soup.params.partition=random"
        )
    if cfg.zoo.enabled:
        Zoo(cfg.paths.zoo_dir).check_writable()
    # a soup of one model is that model: at least two ingredients
    if not s.get("from_zoo"):
        integer(s, "ingredients", "soup", lo=2)
    return integer(s, "limit", "soup", lo=2, optional=True)


def _ingredients(cfg: DictConfig, limit: int | None):
    """The ingredients: a zoo query's completed runs, or ``soup.ingredients`` runs trained now."""
    s = cfg.soup
    if s.get("from_zoo"):
        query = {k: v for k, v in OmegaConf.to_container(s.from_zoo).items() if v is not None}
        ing = from_zoo(cfg.paths.zoo_dir, query, limit)
        if len(ing) < 2:
            raise ConfigError(
                f"the soup's zoo query {query} selects {len(ing)} completed run ({ing.ids[0]}): a soup "
                "needs at least two ingredients (a soup of one model is that model); nothing was written"
            )
    else:
        ing = train_ingredients(cfg, int(s.ingredients))
    ing_dataset = ing.entries[0].record.get("dataset")
    if ing_dataset != cfg.dataset.name:
        raise IngredientMismatchError(
            f"ingredients were trained on {ing_dataset!r} but the soup evaluates on "
            f"{cfg.dataset.name!r}; set dataset={ing_dataset}"
        )
    check_same_graph(cfg, ing.entries)
    if ing.problem != problem_of(cfg):
        raise IngredientMismatchError(
            f"ingredients solve {ing.problem} but the soup is configured for {problem_of(cfg)}: set the soup's "
            "problem (problem=..., fold=...) to the ingredients'"
        )
    return ing


def _items(cfg: DictConfig, d) -> tuple[torch.Tensor, dict, dict[str, torch.Tensor]]:
    """What a soup is scored on: (labels, forward keyword arguments, the val / test masks over the items). Nodes;
    graphs (graph classification: the fold's graph masks); the validation then test pairs (link prediction)."""
    problem = problem_name(cfg)
    if problem == "link":
        nv, nt = d.val_labels.numel(), d.test_labels.numel()
        val = torch.cat([torch.ones(nv, dtype=torch.bool), torch.zeros(nt, dtype=torch.bool)])
        y = torch.cat([d.val_labels, d.test_labels])
        return y, {"pairs": torch.cat([d.val_edges, d.test_edges], dim=1)}, {"val": val, "test": ~val}
    extra = {"batch": d.batch, "num_graphs": int(d.y.numel())} if problem == "graph" else {}
    masks = {"val": d.val_mask, "test": d.test_mask}
    if problem == "node":
        masks["unsplit"] = unsplit_mask(d)
    return d.y, extra, masks


def _masks(cfg: DictConfig, masks: dict) -> dict:
    """The fit and select sets (the validation items, or two halves of them with ``soup.holdout``) beside
    ``masks`` (val, test, unsplit)."""
    val = masks["val"]
    if cfg.soup.holdout:
        fit, select = split_holdout(val, cfg.seed)
    else:
        fit = select = val
    if not (bool(fit.any()) and bool(select.any())):
        n = int(val.sum())
        raise ValueError(
            f"soups fit and select on validation items, and {cfg.dataset.name} has {n}"
            + (
                ": too few to split in two halves (soup.holdout=true); set soup.holdout=false"
                if cfg.soup.holdout
                else ""
            )
        )
    return {k: m for k, m in {"fit": fit, "select": select, **masks}.items() if m is not None}


def evaluator(cfg: DictConfig, template, d) -> Evaluator:
    """The soup's :class:`Evaluator` for ``cfg``'s problem on the prepared data ``d``."""
    y, extra, masks = _items(cfg, d)
    return Evaluator(template, d.x, d.edge_index, y, _masks(cfg, masks), problem=problem_name(cfg), extra=extra)


def _mix(cfg: DictConfig, ing, ev: Evaluator, d):
    """Run the strategy under the memory probe: (its result, seconds, peak memory)."""
    s = cfg.soup
    kwargs = dict(OmegaConf.to_container(s.params, resolve=True)) if s.get("params") else {}
    kwargs.setdefault("seed", int(cfg.seed))
    with PeakMemory() as pm:
        t0 = time.perf_counter()
        if s.strategy == "partition_learned" and ev.problem == "graph":  # parts are sets of graphs
            kwargs.pop("partition", None)  # "random" (checked before any work)
            n_parts = int(kwargs.pop("num_parts", 32))
            kwargs["parts"] = make_parts("random", d.edge_index, int(d.y.numel()), n_parts, ev.masks["fit"], cfg.seed)
        elif s.strategy == "partition_learned":
            balance = ev.masks["fit"]
            if ev.problem == "link":  # balanced on the nodes the fit pairs touch
                balance = torch.zeros(d.num_nodes, dtype=torch.bool)
                balance[ev.extra["pairs"][:, ev.masks["fit"]].reshape(-1)] = True
            kwargs["parts"] = make_parts(
                kwargs.pop("partition", "metis"),
                d.edge_index,
                d.num_nodes,
                int(kwargs.pop("num_parts", 32)),
                balance,
                cfg.seed,
            )
        res = STRATEGIES[s.strategy](ing.states, ev, **kwargs)
        elapsed = time.perf_counter() - t0
    return res, elapsed, pm


def _metrics(final: dict, ing_acc: list[dict], elapsed: float, pm, calls: int, metric: str = "acc") -> dict:
    """The soup's record metrics; ``metric``: what the scores are (acc, or auc for link prediction)."""
    best_i = max(range(len(ing_acc)), key=lambda i: ing_acc[i]["select"])
    return {
        f"soup/val_{metric}": final["select"],
        f"soup/test_{metric}": final["test"],
        "soup/time_s": elapsed,
        "soup/peak_mem_mb": pm.peak_mb,
        "soup/mem_delta_mb": pm.delta_mb,
        "soup/forward_calls": calls,
        **({f"soup/unsplit_{metric}": final["unsplit"]} if "unsplit" in final else {}),
        f"ingredients/best_val_{metric}": ing_acc[best_i]["select"],
        f"ingredients/best_test_{metric}": ing_acc[best_i]["test"],
        f"ingredients/mean_test_{metric}": sum(a["test"] for a in ing_acc) / len(ing_acc),
        f"ingredients/max_test_{metric}": max(a["test"] for a in ing_acc),
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """The soup task: returns the soup's metrics with ``value`` = ``soup/val_acc``."""
    s = cfg.soup
    ing = _ingredients(cfg, _check(cfg))
    d = load_graph(cfg).data
    template = for_problem(instantiate(ing.backbone_cfg), ing.problem, int(cfg.dataset.num_classes)).eval()
    ev = evaluator(cfg, template, d)
    ing_acc = [ev.accuracies(st, ["select", "test"]) for st in ing.states]
    rid = soup_run_id(cfg, ing.ids)
    console.print(
        f"[bold]soup[/] {s.strategy} of {len(ing)} {cfg.backbone.name} ingredients on {cfg.dataset.name}"
        f"{' (holdout: fit on half of val)' if s.holdout else ''}"
    )
    res, elapsed, pm = _mix(cfg, ing, ev, d)
    state = recompute_batchnorm(template, res.state, d.x, d.edge_index, ev.extra if ev.problem == "graph" else None)
    final = ev.accuracies(state, [k for k in ("select", "test", "unsplit") if k in ev.masks])  # one forward
    metrics = _metrics(final, ing_acc, elapsed, pm, ev.calls, ev.metric)
    info = {k: v for k, v in res.info.items() if k != "parts"}
    rec = build_record(
        cfg,
        "soup",
        rid,
        parents=ing.ids,
        status="completed",
        init_id=ing.entries[0].record.get("init_id"),
        strategy=s.strategy,
        ingredients=ing.ids,
        ingredient_accuracy=ing_acc,
        coefficients=info,
        metrics=metrics,
        best_val=final["select"],
        test_at_best_val=final["test"],
        wall_time_s=elapsed,
        finished_at=now_iso(),
        curves={"epoch": list(range(len(info.get("loss", [])))), "soup/loss": info.get("loss", [])},
    )
    entry = Zoo(cfg.paths.zoo_dir).write(rec, state) if cfg.zoo.enabled else None
    _log_soup(cfg, metrics, ing.ids, ing_acc, final)
    console.print(
        f"[green]soup[/] {s.strategy}: test {ev.metric} {100 * final['test']:.2f}% (best ingredient by val "
        f"{100 * metrics[f'ingredients/best_test_{ev.metric}']:.2f}%, "
        f"mean {100 * metrics[f'ingredients/mean_test_{ev.metric}']:.2f}%)"
        f" in {elapsed:.2f}s, peak RSS {pm.peak_mb:.0f} MB; zoo={entry}"
    )
    return {**metrics, "value": final["select"], "run_id": rid, "entry_dir": str(entry) if entry else None}


def _log_soup(cfg: DictConfig, metrics: dict, ids: list[str], ing_acc: list[dict], final: dict) -> None:
    """Metrics to the configured loggers, a W&B bar chart, and a PNG bar chart in the output folder."""
    names = [f"ingr {i}" for i in range(len(ids))] + [f"soup ({cfg.soup.strategy})"]
    accs = [100 * a["test"] for a in ing_acc] + [100 * final["test"]]
    loggers = instantiate_loggers(cfg)
    try:
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
            lg.log_metrics(metrics)
            if type(lg).__name__ == "WandbLogger":
                import wandb

                table = wandb.Table(data=[[n, a] for n, a in zip(names, accs)], columns=["model", "test_acc"])
                lg.experiment.log(
                    {
                        "soup/ingredients_vs_soup": wandb.plot.bar(
                            table, "model", "test_acc", title="test accuracy: ingredients vs soup"
                        )
                    }
                )
    finally:
        close_loggers(loggers)
    out = cfg.paths.get("output_dir")
    if out:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(names)), 3.5))
            ax.bar(range(len(names)), accs, color=["C0"] * (len(names) - 1) + ["C3"])
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
            ax.set_ylim(min(accs) - 3, max(accs) + 1.5)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{cfg.soup.strategy} soup on {cfg.dataset.name} ({cfg.backbone.name})")
            fig.tight_layout()
            Path(out).mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(out) / f"soup_{cfg.soup.strategy}.png", dpi=110)
            plt.close(fig)
        except Exception as e:  # a plot must never fail the run
            log.warning("soup bar chart not written: %s", e)
