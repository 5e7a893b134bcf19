"""Run ids (hash of the resolved config and seed) and init ids (hash of the initial weights)."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

# Keys that never change what a run computes: where files go, how it is shown and logged.
DEFAULT_ID_IGNORE = (
    "paths", "logger", "extras", "zoo", "fail_fast", "task_name", "tags", "threads", "soup",
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
    "trainer.default_root_dir",
)


def _drop(tree: dict, dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if head not in tree:
        return
    if rest:
        if isinstance(tree[head], dict):
            _drop(tree[head], rest)
    else:
        del tree[head]


def identity_config(cfg: DictConfig | Mapping[str, Any], ignore: Iterable[str] = DEFAULT_ID_IGNORE) -> dict:
    """The part of a config that determines a run's results, resolved to plain containers."""
    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else json.loads(json.dumps(cfg))
    for key in ignore:
        _drop(tree, key)
    return tree


def run_id(cfg: DictConfig | Mapping[str, Any], ignore: Iterable[str] = DEFAULT_ID_IGNORE) -> str:
    """16 hex chars of sha256 over the canonical JSON of the identity config (seed included)."""
    blob = json.dumps(identity_config(cfg, ignore), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tensors_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (order independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def init_id(state: Mapping[str, torch.Tensor]) -> str:
    return tensors_digest(state)[:16]
