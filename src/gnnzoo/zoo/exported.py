"""Reading an export (``gnnzoo.zoo.export``) back: :class:`ZooExport` reads it as tables and weights (one
checkpoint at a time through ``safe_open``: a shard is never loaded whole), and :func:`import_export` writes it
back into a zoo (``Zoo.from_export``) whose records and weight digests equal the source's (float32 exports)."""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Iterator

import torch

from gnnzoo.zoo.export import FORMAT, file_sha256
from gnnzoo.zoo.ids import tensors_digest
from gnnzoo.zoo.store import Zoo, ZooError, save_weights

MANIFEST = "manifest.json"


class ZooExport:
    """An export folder. ``verify`` checks every file's sha256 against the manifest (reads every byte once)."""

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        f = self.path / MANIFEST
        if not f.is_file():
            raise ZooError(f"{f} not found: {self.path} is not a gnnzoo export")
        try:
            self.manifest = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ZooError(f"{f} is not valid JSON: {e}") from e
        fmt = self.manifest.get("format")
        if fmt != FORMAT:
            raise ZooError(f"{f}: format {fmt!r} is not one this gnnzoo reads ({FORMAT})")
        for rel, digest in self.manifest.get("files", {}).items():
            p = self.path / rel
            if not p.is_file():
                raise ZooError(f"{p} is missing: the manifest of {self.path} lists it")
            if verify and file_sha256(p) != digest:
                raise ZooError(f"{p} does not match its sha256 in {f} (changed or corrupt)")
        self._open: dict = {}  # shard -> safe_open handle (memory-mapped; a tensor is read when asked for)

    @cached_property
    def checkpoints(self):
        import pandas as pd

        return pd.read_parquet(self.path / "checkpoints.parquet")

    @cached_property
    def runs(self):
        import pandas as pd

        return pd.read_parquet(self.path / "runs.parquet")

    @cached_property
    def splits(self) -> dict:
        return json.loads((self.path / "splits.json").read_text())

    def records(self) -> Iterator[dict]:
        with open(self.path / "records.jsonl") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    @cached_property
    def _rows(self) -> dict[str, tuple[str, list[str]]]:
        df = self.checkpoints
        return {i: (s, json.loads(t)) for i, s, t in zip(df["id"], df["shard"], df["tensors"])}

    def weights(self, checkpoint_id: str, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """One checkpoint's state dict (``dtype``: cast floating tensors, e.g. back to float32)."""
        from safetensors import safe_open

        if checkpoint_id not in self._rows:
            raise KeyError(f"no checkpoint {checkpoint_id!r} in {self.path}")
        shard, names = self._rows[checkpoint_id]
        if shard not in self._open:  # opening a shard parses its header (every key of ~1,000 checkpoints): once
            self._open[shard] = safe_open(str(self.path / shard), framework="pt")
        f = self._open[shard]
        state = {n: f.get_tensor(f"{checkpoint_id}/{n}") for n in names}
        return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in state.items()}

    def iter_weights(self, ids: list[str] | None = None, dtype: torch.dtype | None = None):
        """``(id, state)`` for ``ids`` (all by default), each shard opened once, in shard order."""
        from safetensors import safe_open

        ids = list(self._rows) if ids is None else list(ids)
        by_shard: dict[str, list[str]] = {}
        for i in ids:
            by_shard.setdefault(self._rows[i][0], []).append(i)
        for shard, members in by_shard.items():
            with safe_open(str(self.path / shard), framework="pt") as f:
                for i in members:
                    state = {n: f.get_tensor(f"{i}/{n}") for n in self._rows[i][1]}
                    if dtype is not None:
                        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
                    yield i, state


def import_export(path: str | Path, root: str | Path, verify: bool = True) -> Zoo:
    """Write an export's runs into the zoo at ``root`` (entries already there and completed are kept): every run's
    record, best-val weights and snapshots. A float32 export round-trips exactly (every digest is checked); a
    float16 one comes back as float32 with new digests, marked in the record (``imported.exact = false``)."""
    ex = ZooExport(path, verify=verify)
    zoo = Zoo(root)
    zoo.check_writable()
    exact = ex.manifest.get("dtype") == "float32"
    for rec in ex.records():
        if zoo.is_completed(rec["run_id"]):
            continue
        rec = dict(rec)
        w = rec.pop("weights", {}) or {}
        best = _load(ex, w.get("checkpoint"), w.get("sha256"), exact, rec["run_id"])
        snaps = []
        d = zoo.entry_dir(rec["run_id"])
        for s in rec.get("snapshots") or []:
            state = _load(ex, s.get("checkpoint"), s.get("sha256"), exact, rec["run_id"])
            digest = save_weights(d / s["file"], state, metadata={"epoch": str(s["epoch"])})
            snaps.append({"epoch": s["epoch"], "file": s["file"], "sha256": digest})
        rec["snapshots"] = snaps
        if not exact:
            rec["imported"] = {"from": str(Path(path).resolve()), "dtype": ex.manifest.get("dtype"), "exact": False}
        zoo.write(rec, best)
    return zoo


def _load(ex: ZooExport, ckpt: str | None, digest: str | None, exact: bool, run_id: str) -> dict[str, torch.Tensor]:
    if ckpt is None:
        raise ZooError(f"{ex.path}: run {run_id} names weights that no exported checkpoint holds")
    state = ex.weights(ckpt, dtype=torch.float32)
    if exact and digest and tensors_digest(state) != digest:
        raise ZooError(f"{ex.path}: checkpoint {ckpt} of run {run_id} does not match its digest {digest[:12]}…")
    return state


def default_import_root(path: str | Path) -> Path:
    """Where ``Zoo.from_export`` materialises an export by default: a cache folder named by its manifest."""
    digest = file_sha256(Path(path) / MANIFEST)[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gnnzoo" / "exports"
    return base / digest
