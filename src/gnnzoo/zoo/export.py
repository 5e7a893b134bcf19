"""Export a zoo to a versioned folder that loads without gnnzoo (``python -m gnnzoo.zoo export <zoo> <out>``).

```
<out>/
    manifest.json            format version, gnnzoo version, counts, query, dtype, sha256 of every other file
    checkpoints.parquet      one row per checkpoint: id, run id, trajectory, epoch, best / snapshot, dataset,
                             backbone, hyperparameters, train/val/test accuracy and loss at that epoch, weight
                             digest, shard and key
    runs.parquet             the learning curves: one row per run and epoch
    records.jsonl            every run's full gnnzoo record (what an import back into a zoo needs)
    splits.json              declared, seeded splits of the trajectories (random, leave one dataset / backbone out)
    weights/shard-00000.safetensors ...   bounded size; tensor ``<checkpoint id>/<parameter name>``
    accuracy_histograms.png  test accuracy of every checkpoint, per dataset x backbone
    DATASHEET.md             how it was built, what it holds, what it is for and its limits
```

Checkpoints come from :func:`gnnzoo.zoo.checkpoints.list_checkpoints` (identical weights once, the count
dropped is in the manifest). The export is written to a temporary folder beside ``out`` and renamed into place,
so a killed export leaves no half-written dataset. ``weight_digest`` is the digest of the zoo's float32 weights
(:func:`gnnzoo.zoo.ids.tensors_digest`), whatever ``dtype`` the shards hold.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from gnnzoo.zoo.checkpoints import list_checkpoints, record_field
from gnnzoo.zoo.datasheet import write_datasheet, write_histograms
from gnnzoo.zoo.ids import tensors_digest
from gnnzoo.zoo.splits import declared_splits
from gnnzoo.zoo.store import Zoo, ZooError, flatten_tree, load_weights

FORMAT = "gnnzoo.export/1"
DTYPES = {"float32": torch.float32, "float16": torch.float16}
SHARD_BYTES = 256 * 2**20
# short hyperparameter columns (also present as cfg.<dotted key>): column -> dotted config key
HPARAMS = {
    "optimizer": "optimizer._target_",
    "lr": "optimizer.lr",
    "weight_decay": "optimizer.weight_decay",
    "dropout": "backbone.dropout",
    "hidden_channels": "backbone.hidden_channels",
    "num_layers": "backbone.num_layers",
    "max_epochs": "trainer.max_epochs",
    "seed": "seed",
}
METRICS = ("train/acc", "train/loss", "val/acc", "val/loss", "test/acc", "test/loss")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _hparams(rec: dict) -> dict[str, Any]:
    cfg = rec.get("config") or {}
    row = {k: record_field(rec, dotted) if "." in dotted else cfg.get(dotted) for k, dotted in HPARAMS.items()}
    if isinstance(row["optimizer"], str):
        row["optimizer"] = row["optimizer"].rsplit(".", 1)[-1].lower()
    ident: dict = {}
    flatten_tree("", {k: cfg[k] for k in rec.get("identity") or [] if k in cfg}, ident)
    row.update({f"cfg.{k}": v for k, v in ident.items()})
    return row


def _at_epoch(rec: dict, epoch: int) -> dict[str, float | None]:
    curves = rec.get("curves") or {}
    epochs = curves.get("epoch") or []
    at = epochs.index(epoch - 1) if (epoch - 1) in epochs else None
    return {k: (None if at is None or k not in curves else curves[k][at]) for k in METRICS}


def _frame(rows: list[dict]):
    """A DataFrame whose mixed-type columns (numbers and strings) are strings, so Parquet can store them."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in df.columns:
        vals = df[col].dropna()
        if (
            len(vals)
            and vals.map(lambda v: isinstance(v, str)).any()
            and not vals.map(lambda v: isinstance(v, str)).all()
        ):
            df[col] = df[col].map(lambda v: None if v is None or v != v else str(v))
    return df


class _ShardWriter:
    """Tensors into ``weights/shard-XXXXX.safetensors`` files of at most ~``limit`` bytes each."""

    def __init__(self, folder: Path, limit: int):
        self.folder, self.limit = folder, int(limit)
        self.index, self.size, self.tensors = 0, 0, {}
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return f"weights/shard-{self.index:05d}.safetensors"

    def add(self, key: str, state: dict[str, torch.Tensor]) -> str:
        nbytes = sum(t.numel() * t.element_size() for t in state.values())
        if self.tensors and self.size + nbytes > self.limit:
            self.flush()
        for name, t in state.items():
            self.tensors[f"{key}/{name}"] = t.contiguous()
        self.size += nbytes
        return self.name

    def flush(self) -> None:
        from safetensors.torch import save_file

        if self.tensors:
            save_file(self.tensors, str(self.folder.parent / self.name), metadata={"format": FORMAT})
            self.index, self.size, self.tensors = self.index + 1, 0, {}


def _row(c, rec: dict, state: dict[str, torch.Tensor], shard: str) -> dict[str, Any]:
    """One checkpoints.parquet row: identity, hyperparameters, metrics at its epoch, digest, where its tensors are."""
    hp = _hparams(rec)
    return {
        "id": c.id,
        "run_id": c.run_id,
        "trajectory": c.trajectory,
        "epoch": c.epoch,
        "best": c.best,
        "snapshot": c.snapshot,
        "dataset": c.dataset,
        "backbone": c.backbone,
        **{k: v for k, v in hp.items() if not k.startswith("cfg.")},
        **_at_epoch(rec, c.epoch),
        "weight_digest": c.digest,
        "num_params": int(sum(t.numel() for t in state.values())),
        "tensors": json.dumps(sorted(state)),
        "shard": shard,
        "key": c.id,
        **{k: v for k, v in hp.items() if k.startswith("cfg.")},
    }


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def export_zoo(
    zoo: Zoo | str | Path,
    out: str | Path,
    where: dict[str, Any] | None = None,
    dtype: str = "float32",
    shard_bytes: int = SHARD_BYTES,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Write the export of ``zoo``'s completed runs matching ``where`` (record fields, e.g. ``{"dataset": "cora"}``)
    to ``out`` (which must not exist, or be an empty folder); return the manifest."""
    from rich.progress import track

    zoo = zoo if isinstance(zoo, Zoo) else Zoo(zoo)
    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ZooError(f"{out} already exists and is not an empty folder: choose a new output folder")
    t0 = time.perf_counter()
    listed = list_checkpoints(zoo, kinds=("run",), where=where)
    if not listed.items:
        shown = " ".join(f"{k}={v}" for k, v in (where or {}).items()) or "(no filter)"
        raise ZooError(f"the export query {shown} selects no completed run with weights in {zoo.root}")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shards = _ShardWriter(tmp / "weights", shard_bytes)
    rows, by_digest = [], {}
    try:
        for c in track(listed.items, description="export", disable=not progress, transient=True):
            entry = listed.entries[c.run_id]
            state = load_weights(entry.path / c.file)
            shard = shards.add(c.id, _cast(state, DTYPES[dtype]))
            by_digest[c.digest] = c.id
            rows.append(_row(c, entry.record, state, shard))
        shards.flush()
        _write_tables(tmp, listed, rows, by_digest)
        dataset_of = {r["trajectory"]: r["dataset"] for r in rows}
        backbone_of = {r["trajectory"]: r["backbone"] for r in rows}
        (tmp / "splits.json").write_text(json.dumps(declared_splits(dataset_of, backbone_of, seed), indent=1))
        counts = _counts(listed, rows)
        write_histograms(rows, tmp / "accuracy_histograms.png")
        recipe = _recipe(zoo)
        write_datasheet(tmp / "DATASHEET.md", rows, listed, counts, where, dtype, recipe)
        manifest = {
            "format": FORMAT,
            "gnnzoo_version": _version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source_zoo": str(zoo.root.resolve()),
            "query": {k: (list(v) if isinstance(v, (list, tuple, set)) else v) for k, v in (where or {}).items()},
            "dtype": dtype,
            "counts": counts,
            "recipe": recipe,
            "export_wall_s": None,
            "files": {},
        }
        manifest["files"] = {str(p.relative_to(tmp)): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest["export_wall_s"] = round(time.perf_counter() - t0, 3)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _write_tables(tmp: Path, listed, rows: list[dict], by_digest: dict[str, str]) -> None:
    """checkpoints.parquet, runs.parquet (curves) and records.jsonl (each snapshot with its digest and the
    exported checkpoint that holds its weights, so an import rebuilds every file)."""
    _frame(rows).to_parquet(tmp / "checkpoints.parquet", index=False)
    curve_rows = []
    with open(tmp / "records.jsonl", "w") as f:
        for rid in sorted(listed.entries):
            entry = listed.entries[rid]
            rec = json.loads(json.dumps(entry.record))
            curves = rec.get("curves") or {}
            for j, e in enumerate(curves.get("epoch") or []):
                curve_rows.append(
                    {"run_id": rid, "epoch": int(e) + 1, **{k: v[j] for k, v in curves.items() if k != "epoch"}}
                )
            w = rec.get("weights") or {}
            w["checkpoint"] = by_digest.get(w.get("sha256"))
            for s in rec.get("snapshots") or []:
                if not s.get("sha256"):  # a zoo written before snapshot digests
                    s["sha256"] = tensors_digest(load_weights(entry.path / s["file"]))
                s["checkpoint"] = by_digest.get(s["sha256"])
            f.write(json.dumps(rec, sort_keys=True) + "\n")
    _frame(curve_rows).to_parquet(tmp / "runs.parquet", index=False)


def _counts(listed, rows: list[dict]) -> dict:
    cells: dict[str, dict[str, int]] = {}
    runs_per: dict[str, set] = {}
    for r in rows:
        key = f"{r['dataset']}/{r['backbone']}"
        runs_per.setdefault(key, set()).add(r["run_id"])
        cells.setdefault(key, {"checkpoints": 0})["checkpoints"] += 1
    for key, runs in runs_per.items():
        cells[key]["runs"] = len(runs)
    return {
        "runs": len(listed.entries),
        "checkpoints": len(rows),
        "trajectories": len({r["trajectory"] for r in rows}),
        "duplicates_dropped": listed.duplicates,
        "datasets": sorted({r["dataset"] for r in rows}),
        "backbones": sorted({r["backbone"] for r in rows}),
        "per_cell": dict(sorted(cells.items())),
    }


def _recipe(zoo: Zoo) -> dict | None:
    """The build recipe a zoo recipe sweep left in the zoo (``RECIPE.json``), if any."""
    f = zoo.root / "RECIPE.json"
    try:
        return json.loads(f.read_text()) if f.is_file() else None
    except json.JSONDecodeError:
        return None


def _version() -> str:
    import gnnzoo

    return gnnzoo.__version__


def parse_where(items: Sequence[str]) -> dict[str, Any]:
    """``["dataset=cora,citeseer", "backbone=gcn"]`` -> ``{"dataset": ["cora", "citeseer"], "backbone": "gcn"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--where {item!r}: write key=value (e.g. dataset=cora or backbone=gcn,gat)")
        out[key] = value.split(",") if "," in value else value
    return out
