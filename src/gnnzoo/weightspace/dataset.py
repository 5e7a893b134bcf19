"""The zoo as a dataset of neural graphs: one graph per checkpoint (best-val weights and snapshots), its
record's fields as targets, splits by run (never by checkpoint), processed once and cached on disk."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch_geometric.data import Data, InMemoryDataset

from gnnzoo.utils.errors import ConfigError
from gnnzoo.weightspace.graph import UnsupportedBackbone, spec_of, to_graph
from gnnzoo.zoo.store import Zoo, ZooError


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of the zoo: a run's best-val weights (``snapshot=None``) or a snapshot."""

    run_id: str
    epoch: int  # 1-based: the weights after this many epochs
    snapshot: int | None
    target: float
    backbone: str
    dataset: str


def _target_at(rec: dict, key: str, epoch: int) -> float | None:
    curves = rec.get("curves") or {}
    epochs = curves.get("epoch") or []
    if key not in curves or (epoch - 1) not in epochs:
        return None
    v = curves[key][epochs.index(epoch - 1)]
    return None if v != v else float(v)


def checkpoints(
    zoo: Zoo,
    kinds: Sequence[str] = ("run",),
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    snapshots: bool = True,
    target: str = "val/acc",
) -> list[Checkpoint]:
    """The checkpoints of a zoo query, each with ``target`` (a curve key) at its epoch, sorted by run and epoch.

    A ``target`` that none of the selected entries records is a :class:`ConfigError` naming the curves they have."""
    out, matched, curve_keys = [], 0, set()
    for e in zoo.entries():
        rec = e.record
        if rec.get("status") != "completed" or rec.get("kind", "run") not in kinds:
            continue
        if datasets and rec.get("dataset") not in datasets or backbones and rec.get("backbone") not in backbones:
            continue
        matched += 1
        curve_keys |= set(rec.get("curves") or {}) - {"epoch"}
        best = rec.get("best_epoch")
        if best is not None:
            y = _target_at(rec, target, best + 1)
            if y is not None:
                out.append(Checkpoint(e.run_id, best + 1, None, y, rec["backbone"], rec["dataset"]))
        if snapshots:
            for snap in rec.get("snapshots") or []:
                y = _target_at(rec, target, int(snap["epoch"]))
                if y is not None:
                    out.append(
                        Checkpoint(e.run_id, int(snap["epoch"]), int(snap["epoch"]), y, rec["backbone"], rec["dataset"])
                    )
    if matched and not out and target not in curve_keys:
        raise ConfigError(
            f"encoder.target={target!r} is not a curve of the {matched} completed entries the zoo query "
            f"selects in {zoo.root}; their curves: {', '.join(sorted(curve_keys)) or 'none'}"
        )
    return sorted(out, key=lambda c: (c.run_id, c.epoch, c.snapshot is None))


class ZooGraphs(InMemoryDataset):
    """Neural graphs of ``items`` (from :func:`checkpoints`), cached under ``root/<digest of the query>``.

    Each graph has ``y`` (the target), ``epoch``, ``run`` (an index into :attr:`runs`) and ``snapshot``
    (1 for a snapshot, 0 for the best-val weights)."""

    def __init__(self, zoo: Zoo, items: Sequence[Checkpoint], root: str | Path):
        if not items:
            raise ConfigError(f"the zoo query selects no completed checkpoint in {zoo.root}")
        self.zoo, self.items = zoo, list(items)
        self.runs = sorted({c.run_id for c in self.items})
        key = hashlib.sha256(json.dumps([c.__dict__ for c in self.items], sort_keys=True).encode()).hexdigest()[:16]
        super().__init__(str(Path(root) / key))
        self.load(self.processed_paths[0])

    @property
    def processed_file_names(self) -> list[str]:
        return ["graphs.pt"]

    def process(self) -> None:
        from rich.progress import track

        run_index = {r: i for i, r in enumerate(self.runs)}
        graphs: list[Data] = []
        for c in track(self.items, description="neural graphs", transient=True):
            entry = self.zoo[c.run_id]
            try:
                state = entry.snapshot(c.snapshot) if c.snapshot is not None else entry.state_dict()
                g = to_graph(spec_of(c.backbone, state), state)
            except (UnsupportedBackbone, ZooError) as e:
                raise ConfigError(f"zoo entry {c.run_id}: {e}") from e
            g.y = torch.tensor([c.target], dtype=torch.float)
            g.epoch = torch.tensor([c.epoch])
            g.run = torch.tensor([run_index[c.run_id]])
            g.snapshot = torch.tensor([int(c.snapshot is not None)])
            graphs.append(g)
        self.save(graphs, self.processed_paths[0])


def split_by_run(
    runs: Sequence[str], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, set[str]]:
    """Runs shuffled by ``seed`` and cut into train/val/test by ``fractions`` (every split gets >= 1 run)."""
    runs = sorted(runs)
    if len(runs) < 3:
        raise ConfigError(f"a zoo of {len(runs)} run(s) cannot be split by run into train/val/test (need >= 3)")
    g = torch.Generator().manual_seed(int(seed))
    order = [runs[i] for i in torch.randperm(len(runs), generator=g).tolist()]
    n_val = max(1, int(round(fractions[1] * len(runs))))
    n_test = max(1, int(round(fractions[2] * len(runs))))
    n_train = len(runs) - n_val - n_test
    if n_train < 1:
        raise ConfigError(f"{len(runs)} runs leave no training run for split fractions {tuple(fractions)}")
    return {
        "train": set(order[:n_train]),
        "val": set(order[n_train : n_train + n_val]),
        "test": set(order[n_train + n_val :]),
    }
