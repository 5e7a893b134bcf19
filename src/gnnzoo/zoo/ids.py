"""Run ids (hash of what determines a result) and init ids (hash of the initial weights).

A run id hashes the **identity** of a config: the top-level keys in :data:`IDENTITY` (what a trained
backbone's result depends on), minus the display/logging keys in :data:`IDENTITY_IGNORE`, resolved to
plain containers, plus the seed. Everything else (paths, loggers, the zoo's own switches, and the
config groups of the methods built on top: ``task``, ``soup``, ``pruning`` ...) is left out, so a new
group at its neutral default or a new display key leaves every existing id unchanged. A method's task
hashes this identity together with what it adds (its own group, its parents) with :func:`hash_id`.

This list is the only one: the zoo config, the batched trainer, the soups and the report all read it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

# What determines a backbone run's result (top-level config keys).
IDENTITY = (
    "seed",
    "init_seed",
    "monitor",
    "dataset",
    "problem",
    "backbone",
    "optimizer",
    "scheduler",
    "data",
    "trainer",
    "callbacks",
)
# Keys inside those that only change how a run is shown or where its files go.
IDENTITY_IGNORE = (
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "trainer.default_root_dir",
    "dataset.problems",  # what a dataset supports, not what a run did (that is `problem`)
)
# The training engines whose randomness differs (see README, "Many models at the cost of one run"):
# a batched run's id carries ``engine: batched``; the single (Lightning) path adds nothing, so its ids
# are those of every earlier gnnzoo version.
ENGINES = ("single", "batched")


def _drop(tree: dict, dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if head not in tree:
        return
    if rest:
        if isinstance(tree[head], dict):
            _drop(tree[head], rest)
    else:
        del tree[head]


def _plain(cfg: DictConfig | Mapping[str, Any]) -> dict:
    return (
        OmegaConf.to_container(cfg, resolve=True)
        if isinstance(cfg, DictConfig)
        else json.loads(json.dumps(cfg, default=str))
    )


def identity_config(cfg: DictConfig | Mapping[str, Any], engine: str = "single") -> dict:
    """The part of a config that determines a backbone run's result, resolved to plain containers."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if isinstance(cfg, DictConfig):
        tree = {
            k: (OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig) else cfg[k])
            for k in IDENTITY
            if k in cfg
        }
    else:
        tree = {k: v for k, v in _plain(cfg).items() if k in IDENTITY}
    for key in IDENTITY_IGNORE:
        _drop(tree, key)
    if (tree.get("problem") or {}).get("name", "node") == "node":
        tree.pop("problem", None)  # node classification, the default: the ids of every earlier gnnzoo version
    if engine != "single":
        tree["engine"] = engine
    return tree


def hash_id(obj: Any) -> str:
    """16 hex chars of sha256 over the canonical JSON of ``obj``."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_id(cfg: DictConfig | Mapping[str, Any], engine: str = "single") -> str:
    """The id of a backbone run: a hash of its identity config (seed included)."""
    return hash_id(identity_config(cfg, engine))


# What a resumable run's id leaves out: the budget it has been trained to (``zoo.resumable``; see
# gnnzoo.tasks.backbone.train), so the same run continued to more epochs keeps its id.
RESUMABLE_IGNORE = ("trainer.max_epochs",)


def resumable_run_id(cfg: DictConfig | Mapping[str, Any], engine: str = "single") -> str:
    """The id of a resumable backbone run (``zoo.resumable=true``): its identity without ``trainer.max_epochs``,
    marked ``resumable`` so it never equals the id of a plain run."""
    tree = identity_config(cfg, engine)
    for key in RESUMABLE_IGNORE:
        _drop(tree, key)
    tree["resumable"] = True
    return hash_id(tree)


# What a trajectory leaves out of a run's identity: how long it trains and what stops it or picks its best epoch.
# Two runs of one configuration that differ only there share their weights up to the shorter one's end.
TRAJECTORY_IGNORE = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "monitor", "callbacks")


def trajectory_id(cfg: DictConfig | Mapping[str, Any], engine: str = "single") -> str:
    """The trajectory of a backbone run: its identity without :data:`TRAJECTORY_IGNORE` (and without the resumable
    mark, a resumable run continues one trajectory). ``engine`` is kept: the engines draw different dropout masks.
    Leaving a key out can only merge trajectories, never split one, so a split by trajectory never leaks."""
    tree = identity_config(cfg, "single")
    for key in TRAJECTORY_IGNORE:
        _drop(tree, key)
    tree["engine"] = engine
    tree["trajectory"] = True
    return hash_id(tree)


def tensors_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (order independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-dim too
    return h.hexdigest()


def init_id(state: Mapping[str, torch.Tensor]) -> str:
    return tensors_digest(state)[:16]
