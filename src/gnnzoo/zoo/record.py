"""The zoo record: one ``record.json`` per entry, written last (it marks the entry complete)."""
from __future__ import annotations

import datetime as _dt
import functools
import platform
import socket
from importlib import metadata
from typing import Any

SCHEMA = "gnnzoo.record/1"
STATUSES = ("completed", "failed")
KINDS = ("run", "soup")
REQUIRED = ("schema", "kind", "run_id", "status", "config", "seed")
_PACKAGES = ("gnnzoo", "torch", "torch_geometric", "pytorch-lightning", "torchmetrics", "hydra-core",
             "omegaconf", "safetensors", "numpy", "ogb", "wandb")


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
