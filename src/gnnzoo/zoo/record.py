"""The zoo record: one ``record.json`` per entry, written last (it marks the entry complete)."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import socket
from importlib import metadata
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from gnnzoo.zoo.ids import ENGINES, IDENTITY, trajectory_id

SCHEMA = "gnnzoo.record/1"
STATUSES = ("completed", "failed")
KINDS = ("run", "soup", "pruned", "encoder", "generator", "generated")
REQUIRED = ("schema", "kind", "run_id", "status", "config", "seed")
_PACKAGES = (
    "gnnzoo",
    "torch",
    "torch_geometric",
    "pytorch-lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "safetensors",
    "numpy",
    "ogb",
    "wandb",
)


class RecordError(ValueError):
    """A record.json that is not a valid gnnzoo record."""


@functools.lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str], ...]:
    out = [("python", platform.python_version())]
    for name in _PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape results (looked up once per process)."""
    return dict(_package_versions())


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def host_info() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "machine": platform.machine()}


def validate_record(rec: Any, where: str = "record") -> dict:
    """Check a loaded record.json; raise :class:`RecordError` naming what is wrong."""
    if not isinstance(rec, dict):
        raise RecordError(f"{where}: not a JSON object")
    if rec.get("schema") != SCHEMA:
        raise RecordError(f"{where}: schema is {rec.get('schema')!r}, expected {SCHEMA!r} (not a gnnzoo record)")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise RecordError(f"{where}: missing keys {missing}")
    if rec["status"] not in STATUSES:
        raise RecordError(f"{where}: status {rec['status']!r} not in {STATUSES}")
    if rec["kind"] not in KINDS:
        raise RecordError(f"{where}: kind {rec['kind']!r} not in {KINDS}")
    return rec


def build_record(
    cfg: DictConfig,
    kind: str,
    run_id: str,
    *,
    parents: Iterable[str] = (),
    plain: dict | None = None,
    engine: str = "single",
    **fields: Any,
) -> dict[str, Any]:
    """The record skeleton of every zoo entry, whatever its kind; the task fills in the rest as it goes
    (``status``, ``metrics``, ``best_val``, ``test_at_best_val``, ``curves`` ...).

    ``parents``: the run ids the entry was made from (soup ingredients, the dense run of a ticket, the
    checkpoints a generator learned from), queryable as ``Zoo.df(parent=<run id>)``. ``engine``: which
    trainer produced a backbone run (``single`` | ``batched``; their randomness differs). ``plain``: ``cfg``
    already resolved to containers, if the caller has it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    plain = OmegaConf.to_container(cfg, resolve=True) if plain is None else plain
    rec = {
        "schema": SCHEMA,
        "kind": kind,
        "run_id": run_id,
        "status": "failed",
        "error": None,
        "parents": sorted(set(parents)),
        "engine": engine,
        "dataset": cfg.dataset.name,
        "backbone": cfg.backbone.name,
        # what the run predicts (records before problems existed: node)
        "problem": str((cfg.get("problem") or {}).get("name", "node")),
        "seed": int(cfg.seed),
        "init_seed": int(cfg.init_seed),
        "init_id": None,
        "config": plain,
        "identity": [k for k in IDENTITY if k in plain],
        "monitor": OmegaConf.to_container(cfg.monitor, resolve=True),
        "started_at": now_iso(),
        "versions": package_versions(),
        "host": host_info(),
        "batch": None,  # batched runs: {"size", "index", "wall_time_s"} of the batch they trained in
    }
    if kind == "run":  # runs that share weights (one config, other lengths) share it; see gnnzoo.zoo.trajectory
        rec["trajectory"] = trajectory_id(plain, engine)
    rec.update(fields)
    return rec


def record_engine(rec: dict) -> str:
    """The engine that wrote a record. Records of gnnzoo 0.1 have no ``engine`` field: a run with a
    ``batch`` came from the batched trainer, whose dropout then depended on the whole batch
    (``batched-legacy``: reused by no engine)."""
    if "engine" in rec:
        return rec["engine"]
    return "batched-legacy" if rec.get("batch") else "single"
