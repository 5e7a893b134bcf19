"""Reading and writing the zoo: one folder per run under ``paths.zoo_dir``.

```
<zoo_dir>/<run_id>/
    weights.safetensors          best-validation weights
    snapshots/epoch_0010.safetensors ...   optional (zoo.snapshot_every)
    record.json                  written last: an entry without it is incomplete and ignored
```

Every file is written to a temporary name in the same folder and renamed into place, so a run
killed at any point leaves either the old file or the new one, never half of one. Loading never
unpickles code: weights are safetensors, and ``.pt``/``.ckpt`` files are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from gnnzoo.backbones.pruned import PrunedBackbone
from gnnzoo.utils.io import atomic_write_bytes, atomic_write_json, check_writable
from gnnzoo.zoo.ids import tensors_digest
from gnnzoo.zoo.record import RecordError, record_engine, validate_record

log = logging.getLogger(__name__)

WEIGHTS = "weights.safetensors"
RECORD = "record.json"
SNAPSHOTS = "snapshots"
TICKET = "ticket.safetensors"  # a pruned entry's masks
EDGE_KEY = "edge_keep"  # the edge mask's key in it


class ZooError(RuntimeError):
    """A zoo entry or weights file that cannot be used (missing, corrupt, foreign, unsafe)."""


# ------------------------------------------------------------------------------------ writing


def save_weights(path: Path, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> str:
    """Write a state dict as safetensors, atomically; return its sha256 digest."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    atomic_write_bytes(Path(path), save(tensors, metadata=dict(metadata or {})))
    return tensors_digest(tensors)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a weights file without executing code; :class:`ZooError` if corrupt, foreign or unsafe."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own error types on corrupt headers
            raise ZooError(f"corrupt safetensors file {path}: {e}") from e
    if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ZooError(
                f"refused to load {path}: it is not a plain tensor file ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}). Files are loaded with weights_only=True "
                "and never unpickle code."
            ) from e
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]  # Lightning checkpoint
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ZooError(f"{path} does not hold a state dict of tensors")
        return obj
    raise ZooError(f"unsupported weights file type {path.suffix!r} ({path}); use .safetensors or .pt")


# ------------------------------------------------------------------------------------ reading


class ZooEntry:
    """One run folder of the zoo."""

    def __init__(self, path: Path, record: dict):
        self.path = path
        self.record = record

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def status(self) -> str:
        return self.record["status"]

    def weights_path(self) -> Path:
        return self.path / self.record.get("weights", {}).get("file", WEIGHTS)

    def state_dict(self, verify: bool = True) -> dict[str, torch.Tensor]:
        if self.status != "completed":
            raise ZooError(f"zoo entry {self.run_id} has status {self.status!r}: no weights to load")
        state = load_weights(self.weights_path())
        expected = self.record.get("weights", {}).get("sha256")
        if verify and expected and tensors_digest(state) != expected:
            raise ZooError(f"weights of zoo entry {self.run_id} do not match the digest in its record (corrupt)")
        return state

    def file(self, name: str) -> dict[str, torch.Tensor]:
        """An extra tensor file of this entry (``record["files"]``), digest-checked."""
        digest = (self.record.get("files") or {}).get(name)
        if digest is None:
            raise ZooError(
                f"zoo entry {self.run_id} has no file {name!r} (it has {sorted(self.record.get('files') or {})})"
            )
        state = load_weights(self.path / name)
        if tensors_digest(state) != digest:
            raise ZooError(f"{self.path / name} does not match the digest in its record (corrupt)")
        return state

    def ticket(self, shapes: Mapping[str, tuple] | None = None) -> dict[str, torch.Tensor]:
        """A pruned entry's masks (bool, True = kept) from ``ticket.safetensors``: one per pruned weight tensor,
        and ``edge_keep`` (one entry per edge unit, see ``gnnzoo.backbones.EdgeUnits``) when it pruned the graph.
        Every mask is checked against the entry's weights (name and shape) and the edge mask against the number of
        edge units the record names, so a foreign or damaged ticket fails here, naming the entry, not at a forward.
        ``shapes``: the weights' shapes when the caller has them loaded (else the weights are read for them)."""
        masks = {k: v.bool() for k, v in self.file(TICKET).items()}
        if shapes is None:
            shapes = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        where = f"zoo entry {self.run_id} ({self.path / TICKET})"
        for name, m in masks.items():
            if name == EDGE_KEY:
                total = (self.record.get("pruning") or {}).get("edges_total")
                if m.dim() != 1 or (total is not None and m.numel() != int(total)):
                    raise ZooError(
                        f"{where}: its edge mask has shape {tuple(m.shape)}, but the record names {total} edge units"
                    )
            elif name not in shapes:
                raise ZooError(f"{where}: a mask for {name!r}, which is not a weight of this backbone")
            elif tuple(m.shape) != shapes[name]:
                raise ZooError(f"{where}: the mask of {name!r} has shape {tuple(m.shape)}, the weight {shapes[name]}")
        return masks

    def snapshot(self, epoch: int) -> dict[str, torch.Tensor]:
        for snap in self.record.get("snapshots", []):
            if snap["epoch"] == epoch:
                state = load_weights(self.path / snap["file"])
                if snap.get("sha256") and tensors_digest(state) != snap["sha256"]:
                    raise ZooError(f"{self.path / snap['file']} does not match the digest in its record (corrupt)")
                return state
        raise ZooError(f"zoo entry {self.run_id} has no snapshot at epoch {epoch}")

    def build_backbone(self) -> nn.Module:
        """The recorded model, untrained: the backbone, or for a link / graph run the link predictor / graph
        classifier around it (``gnnzoo.backbones.heads``)."""
        from hydra.utils import instantiate

        from gnnzoo.backbones.heads import for_problem
        from gnnzoo.data.problems import problem_of

        config = self.record["config"]
        gnn = instantiate(config["backbone"])
        return for_problem(gnn, problem_of(config), int((config.get("dataset") or {}).get("num_classes") or 0))

    def load(self, eval_mode: bool = True) -> nn.Module:
        """Rebuild the backbone from the recorded config and load the best-val weights into it. A pruned entry
        comes back as a :class:`PrunedBackbone`: its weights (zeros where pruned), its masks, and its edge mask,
        which removes the pruned edges of the graph it was pruned on before every forward."""
        model = self.build_backbone()
        state = self.state_dict()
        model.load_state_dict(state)
        if self.record.get("kind") == "pruned" and TICKET in (self.record.get("files") or {}):
            masks = self.ticket({k: tuple(v.shape) for k, v in state.items()})
            edge_keep = masks.pop(EDGE_KEY, None)
            info = self.record.get("pruning") or {}
            gnn = getattr(model, "gnn", model)
            if info.get("renormalize") is False and hasattr(gnn, "renormalize"):
                gnn.renormalize = False
            model = PrunedBackbone(model, masks, edge_keep, symmetric=info.get("edge_unit") != "directed")
        return model.eval() if eval_mode else model

    def __repr__(self) -> str:
        return f"ZooEntry({self.run_id}, {self.status}, {self.path})"


class Zoo:
    """Reader (and writer) of a zoo directory.

    >>> zoo = Zoo("zoo")
    >>> df = zoo.df(dataset="cora", status="completed")
    >>> model = zoo.load(df.run_id.iloc[0])
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    # --- writing
    def entry_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def write(
        self,
        record: dict,
        weights: Mapping[str, torch.Tensor] | None = None,
        files: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    ) -> Path:
        """Write weights (if any), extra tensor files (``{name: state dict}``, e.g. a ticket's masks; listed in
        the record's ``files``), then the record, each atomically. Returns the entry folder."""
        validate_record(record, f"record for {record.get('run_id')}")
        d = self.entry_dir(record["run_id"])
        d.mkdir(parents=True, exist_ok=True)
        if record["status"] == "failed":
            existing = self._read(d)
            if existing is not None and existing.status == "completed":
                # a duplicate job that failed must not clobber the completed entry
                log.warning("not overwriting completed zoo entry %s with a failed record", record["run_id"])
                return d
        if weights is not None:
            digest = save_weights(d / WEIGHTS, weights, metadata={"run_id": record["run_id"]})
            record["weights"] = {
                "file": WEIGHTS,
                "sha256": digest,
                "num_params": int(sum(v.numel() for v in weights.values())),
                "names": {k: list(v.shape) for k, v in weights.items()},
            }
        for name, tensors in (files or {}).items():
            if "/" in name or not name.endswith(".safetensors"):
                raise ValueError(f"extra zoo files are <name>.safetensors in the entry folder, got {name!r}")
            record.setdefault("files", {})[name] = save_weights(d / name, tensors)
        atomic_write_json(d / RECORD, record)
        return d

    # --- reading
    def _read(self, d: Path) -> ZooEntry | None:
        f = d / RECORD
        if not f.is_file():
            return None  # incomplete (killed before the record was written) or not an entry
        try:
            rec = validate_record(json.loads(f.read_text()), str(f))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            warnings.warn(f"skipping corrupt zoo record {f}: {e}", stacklevel=3)
            return None
        except RecordError as e:
            warnings.warn(f"skipping foreign or invalid zoo record: {e}", stacklevel=3)
            return None
        return ZooEntry(d, rec)

    def entries(self) -> Iterator[ZooEntry]:
        if not self.root.is_dir():
            return
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and not d.name.startswith("."):
                e = self._read(d)
                if e is not None:
                    yield e

    def get(self, run_id: str) -> ZooEntry | None:
        d = self.entry_dir(run_id)
        return self._read(d) if d.is_dir() else None

    def __getitem__(self, run_id: str) -> ZooEntry:
        e = self.get(run_id)
        if e is None:
            raise KeyError(f"no zoo entry {run_id!r} in {self.root}")
        return e

    def __len__(self) -> int:
        return sum(1 for _ in self.entries())

    def is_completed(self, run_id: str) -> bool:
        e = self.get(run_id)
        return e is not None and e.status == "completed"

    def completed(self, run_id: str, engine: str = "single") -> ZooEntry | None:
        """The completed entry ``run_id`` written by ``engine``, or None (a relaunch then runs it)."""
        e = self.get(run_id)
        if e is None or e.status != "completed":
            return None
        if record_engine(e.record) != engine:
            log.warning(
                "zoo entry %s was written by the %s trainer, not the %s one: not reused",
                run_id,
                record_engine(e.record),
                engine,
            )
            return None
        return e

    def check_writable(self) -> Path:
        """Create the zoo folder if needed and prove it is writable (one clear error before any work)."""
        return check_writable(self.root, "the zoo folder")

    def df(self, parent: str | None = None, **filters: Any):
        """All valid records as a DataFrame, one row per entry; ``filters`` are column == value
        (a list/tuple value means 'is in'). Config values appear as ``cfg.<dotted.key>`` columns.
        ``parent``: only entries made from that run id (``Zoo.df(kind="soup", parent=rid)``)."""
        import pandas as pd

        records = [e.record for e in self.entries()]
        if parent is not None:
            records = [r for r in records if parent in (r.get("parents") or r.get("ingredients") or [])]
        df = pd.DataFrame([flatten_record(r) for r in records])
        for key, value in filters.items():
            if key not in df.columns:
                if df.empty:
                    continue
                raise KeyError(f"unknown zoo column {key!r}; columns: {sorted(df.columns)[:40]} ...")
            df = df[df[key].isin(value)] if isinstance(value, (list, tuple, set)) else df[df[key] == value]
        return df.reset_index(drop=True)

    def load(self, run_id: str, eval_mode: bool = True) -> nn.Module:
        return self[run_id].load(eval_mode)

    @classmethod
    def from_export(cls, path: str | Path, root: str | Path | None = None, verify: bool = True) -> "Zoo":
        """The zoo of an export folder (``python -m gnnzoo.zoo export``), written into ``root`` (default: a cache
        folder named by the export's manifest; a second call reuses it) so every method reads it like any zoo."""
        from gnnzoo.zoo.exported import default_import_root, import_export

        return import_export(path, root if root is not None else default_import_root(path), verify=verify)


def flatten_tree(prefix: str, tree: Any, out: dict) -> None:
    """``{a: {b: 1}}`` -> ``out['<prefix>.a.b'] = 1``; lists as JSON strings."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            flatten_tree(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(tree, list):
        out[prefix] = json.dumps(tree)
    else:
        out[prefix] = tree


def flatten_record(rec: dict) -> dict:
    row = {
        k: rec.get(k)
        for k in (
            "run_id",
            "kind",
            "status",
            "dataset",
            "backbone",
            "seed",
            "init_seed",
            "init_id",
            "best_epoch",
            "best_val",
            "test_at_best_val",
            "wall_time_s",
            "finished_at",
            "error",
        )
    }
    row["engine"] = record_engine(rec)
    row["parents"] = json.dumps(rec.get("parents") or rec.get("ingredients") or [])
    for k, v in (rec.get("metrics") or {}).items():
        row[k] = v
    prune = rec.get("pruning") or {}
    for k in ("method", "weight_sparsity", "graph_sparsity", "mac_saving", "round", "search_wall_s"):
        if k in prune:
            row[f"prune/{k}"] = prune[k]
    row["epochs"] = len((rec.get("curves") or {}).get("epoch", []))
    cfg: dict = {}
    flatten_tree("cfg", rec.get("config", {}), cfg)
    row.update(cfg)
    return row
