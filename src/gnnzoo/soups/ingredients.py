"""Soup ingredients: K trained models of one architecture, ideally from one shared initialisation.

Taken from the zoo (``soup.from_zoo``: filters on dataset, backbone, init id) or trained on the fly
(``soup.ingredients=K``: K runs of the soup's config that share ``init_seed`` and differ in ``seed``,
i.e. in dropout masks and data order; they land in the zoo like any run and are reused next time).
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig

from gnnzoo.batched.trainer import train_batched
from gnnzoo.data.graph import graph_spec
from gnnzoo.data.problems import problem_of
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.config import backbone_config
from gnnzoo.zoo.store import Zoo, ZooEntry

log = logging.getLogger("gnnzoo")


class IngredientMismatchError(ValueError):
    """Ingredients cannot be mixed: different architectures, parameter names or shapes."""


@dataclass
class Ingredients:
    entries: list[ZooEntry]
    states: list[dict[str, torch.Tensor]]
    backbone_cfg: dict
    info: dict[str, Any] = field(default_factory=dict)
    problem: dict = field(default_factory=lambda: {"name": "node"})  # the runs' problem block (one for all)

    @property
    def ids(self) -> list[str]:
        return [e.run_id for e in self.entries]

    def __len__(self) -> int:
        return len(self.states)


def _arch(cfg_backbone: dict) -> dict:
    """The backbone config without the settings that do not change parameter shapes."""
    return {k: v for k, v in cfg_backbone.items() if k not in ("dropout", "attn_dropout", "cached")}


def check_compatible(entries: list[ZooEntry], states: list[dict[str, torch.Tensor]]) -> None:
    """Raise :class:`IngredientMismatchError` naming the first mismatch (architecture, names, shapes)."""
    ref_e, ref_s = entries[0], states[0]
    ref_arch = _arch(ref_e.record["config"]["backbone"])
    for e, s in zip(entries[1:], states[1:]):
        arch = _arch(e.record["config"]["backbone"])
        if arch != ref_arch:
            diff = {
                k: (ref_arch.get(k), arch.get(k)) for k in set(ref_arch) | set(arch) if ref_arch.get(k) != arch.get(k)
            }
            raise IngredientMismatchError(
                f"ingredients {ref_e.run_id} and {e.run_id} have different architectures: "
                + ", ".join(f"backbone.{k}: {a!r} vs {b!r}" for k, (a, b) in sorted(diff.items()))
            )
        if s.keys() != ref_s.keys():
            raise IngredientMismatchError(
                f"ingredients {ref_e.run_id} and {e.run_id} have different parameter names: "
                f"{sorted(set(s) ^ set(ref_s))}"
            )
        for k in ref_s:
            if s[k].shape != ref_s[k].shape:
                raise IngredientMismatchError(
                    f"ingredients {ref_e.run_id} and {e.run_id}: {k} has shape "
                    f"{tuple(ref_s[k].shape)} vs {tuple(s[k].shape)}"
                )
    ref_problem = problem_of(ref_e.record["config"])
    for e in entries[1:]:
        if problem_of(e.record["config"]) != ref_problem:  # another split or fold: mixing would leak test data
            raise IngredientMismatchError(
                f"ingredients {ref_e.run_id} and {e.run_id} solve different problems or splits: "
                f"{ref_problem} vs {problem_of(e.record['config'])}"
            )
    datasets = {e.record.get("dataset") for e in entries}
    if len(datasets) > 1:
        raise IngredientMismatchError(f"ingredients come from different datasets: {sorted(datasets)}")
    ref_graph = graph_spec(ref_e.record["config"])
    for e in entries[1:]:
        if graph_spec(e.record["config"]) != ref_graph:
            raise IngredientMismatchError(
                f"ingredients {ref_e.run_id} and {e.run_id} were trained on different graphs "
                f"(dataset.loader differs): {ref_graph} vs {graph_spec(e.record['config'])}"
            )


def from_entries(entries: list[ZooEntry]) -> Ingredients:
    if not entries:
        raise ValueError("no ingredients: the zoo query matched no completed run")
    states = [e.state_dict() for e in entries]
    check_compatible(entries, states)
    inits = {e.record.get("init_id") for e in entries}
    if len(inits) > 1:
        warnings.warn(
            f"soup ingredients do not share one initialisation ({len(inits)} init ids); weight "
            "averaging of GNNs trained from different inits usually fails",
            stacklevel=2,
        )
    return Ingredients(
        entries,
        states,
        entries[0].record["config"]["backbone"],
        {"init_ids": sorted(inits)},
        problem_of(entries[0].record["config"]),
    )


def from_zoo(zoo_dir: str, query: dict, limit: int | None = None) -> Ingredients:
    """Completed runs matching ``query`` (dataset, backbone, init_id or any record/config column)."""
    zoo = Zoo(zoo_dir)
    df = zoo.df(status="completed", kind="run", **{k: v for k, v in query.items() if v is not None})
    if df.empty:
        raise ValueError(f"no completed runs in {zoo_dir} match {query}")
    df = df.sort_values("run_id")
    ids = df.run_id.tolist()[: limit or None]
    return from_entries([zoo[i] for i in ids])


def ingredient_configs(cfg: DictConfig, k: int) -> list[DictConfig]:
    """K ingredient run configs: the soup config without the soup, one shared ``init_seed``, seeds
    ``soup.seed_offset + 0..K-1``. Ingredients always go to the zoo (the soup reads them from there and
    its record names them), whatever ``zoo.enabled`` says: that switch applies to the soup's own entry.
    They are plain backbone runs: their configs carry neither the soup group nor the soup task."""
    out = []
    base = backbone_config(cfg)
    for i in range(k):
        c = copy.deepcopy(base)
        c.init_seed = int(cfg.init_seed)
        c.seed = int(cfg.soup.seed_offset) + i
        c.zoo.enabled = True
        out.append(c)
    return out


def train_ingredients(cfg: DictConfig, k: int) -> Ingredients:
    """Train (or reuse from the zoo) K ingredients; batched when the config allows it."""
    cfgs = ingredient_configs(cfg, k)
    try:
        results = train_batched(cfgs, progress=bool(cfg.trainer.get("enable_progress_bar", True)))
    except NotImplementedError as e:
        log.info("ingredients train one by one (%s)", e)
        results = [train(c) for c in cfgs]
    failed = [r for r in results if r.get("status") == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {k} ingredients failed to train: {failed[0].get('error')}")
    zoo = Zoo(cfg.paths.zoo_dir)
    return from_entries([zoo[r["run_id"]] for r in results])
