"""Atomic file writes: every file is written to a temporary name in its folder and renamed into place,
so a process killed at any moment leaves the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

TMP_MARK = ".tmp-"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=_json_default).encode())


def clean_stale_tmp(directory: Path, min_age_s: float = 600.0) -> int:
    """Remove temporary files left by writers that were killed (their pid is gone here and the
    file is older than ``min_age_s``). Returns how many were removed."""
    removed = 0
    if not directory.is_dir():
        return 0
    now = time.time()
    for p in directory.rglob(f"*{TMP_MARK}*"):
        try:
            pid = int(p.name.split(TMP_MARK, 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive and now - p.stat().st_mtime > min_age_s:
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def check_writable(directory: str | Path, what: str) -> Path:
    """Create ``directory`` if needed and prove a file can be written there; else one clear error."""
    d = Path(directory).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".write-probe{TMP_MARK}{os.getpid()}-", dir=d)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PermissionError(
            f"{what} {d} is not writable ({e.strerror or e}); nothing was trained. Point it "
            "at a writable folder (e.g. paths.zoo_dir=... or GNNZOO_ZOO_DIR) or fix its "
            "permissions"
        ) from None
    return d
