"""The zoo as a dataset of neural graphs: one graph per checkpoint (best-val weights and snapshots; identical
weights once), its record's fields as targets, splits by trajectory (never by run or checkpoint), processed once
and cached on disk."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch_geometric.data import Data, Dataset

from gnnzoo.utils.errors import ConfigError
from gnnzoo.weightspace.graph import EDGE_DIM, NODE_DIM, UnsupportedBackbone, spec_of, to_graph
from gnnzoo.zoo.checkpoints import list_checkpoints
from gnnzoo.zoo.splits import make_split
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
    trajectory: str  # the runs that share these weights (gnnzoo.zoo.checkpoints); splits are by trajectory


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
    """The checkpoints of a zoo query (:func:`gnnzoo.zoo.checkpoints.list_checkpoints`: identical weights kept
    once, each with its trajectory), each with ``target`` (a curve key) at its epoch, sorted by run and epoch.

    A ``target`` that none of the selected entries records is a :class:`ConfigError` naming the curves they have."""
    where = {k: list(v) for k, v in (("dataset", datasets), ("backbone", backbones)) if v}
    listed = list_checkpoints(zoo, kinds=kinds, where=where, snapshots=snapshots)
    out = []
    for c in listed.items:
        y = _target_at(listed.entries[c.run_id].record, target, c.epoch)
        if y is not None:
            # a snapshot that is also the best-val weights is read as the best-val file (snapshot=None)
            out.append(
                Checkpoint(c.run_id, c.epoch, None if c.best else c.epoch, y, c.backbone, c.dataset, c.trajectory)
            )
    curve_keys = {k for e in listed.entries.values() for k in (e.record.get("curves") or {})} - {"epoch"}
    if listed.entries and not out and target not in curve_keys:
        raise ConfigError(
            f"encoder.target={target!r} is not a curve of the {len(listed.entries)} completed entries the zoo query "
            f"selects in {zoo.root}; their curves: {', '.join(sorted(curve_keys)) or 'none'}"
        )
    return sorted(out, key=lambda c: (c.run_id, c.epoch, c.snapshot is None))


class ZooGraphs(Dataset):
    """Neural graphs of ``items`` (from :func:`checkpoints`), cached under ``root/<digest of the query>``.

    Each graph has ``y`` (the target), ``epoch``, ``run`` (an index into :attr:`runs`) and ``snapshot``
    (1 for a snapshot, 0 for the best-val weights); ``ds[i]`` equals ``to_graph`` of the checkpoint.

    **Memory.** What the checkpoints of one architecture share (edge index, node kinds, ranks and layers, GAT's
    head edges: 3 of every 4 bytes of a graph) is stored once per architecture; each checkpoint stores only its
    values (weights, SAGE's root weights, node features) in one float32 file on disk, written as the graphs are
    built and read back by memory map. Building the dataset of a zoo therefore holds one checkpoint at a time,
    and reading touches only the items asked for (the whole-graph list of the default GNN Zoo v1 would be ~28 GB).
    """

    def __init__(self, zoo: Zoo, items: Sequence[Checkpoint], root: str | Path):
        if not items:
            raise ConfigError(f"the zoo query selects no completed checkpoint in {zoo.root}")
        self.zoo, self.items = zoo, list(items)
        self.runs = sorted({c.run_id for c in self.items})
        key = hashlib.sha256(json.dumps([c.__dict__ for c in self.items], sort_keys=True).encode()).hexdigest()[:16]
        super().__init__(str(Path(root) / key))
        self._index = torch.load(self.processed_paths[0], weights_only=True)
        self._values = None  # the memory map, opened on first use (and in each DataLoader worker)

    @property
    def processed_file_names(self) -> list[str]:
        return ["index.pt", "values.f32"]

    def len(self) -> int:
        return len(self.items)

    def _map(self):
        if self._values is None:
            import numpy as np

            size = int(self._index["offsets"][-1])
            self._values = np.memmap(self.processed_paths[1], dtype=np.float32, mode="r", shape=(size,))
        return self._values

    def get(self, idx: int) -> Data:
        ix = self._index
        st = ix["structures"][int(ix["arch"][idx])]
        flat = torch.from_numpy(self._map()[int(ix["offsets"][idx]) : int(ix["offsets"][idx + 1])].copy())
        n, ew, roots = int(st["num_nodes"]), int(st["weight_edges"]), bool(st["roots"])
        x = flat[: n * NODE_DIM].view(n, NODE_DIM)
        edge_attr = torch.zeros(st["edge_index"].size(1), EDGE_DIM)
        edge_attr[:ew, 0] = flat[n * NODE_DIM : n * NODE_DIM + ew]
        if roots:
            edge_attr[:ew, 1] = flat[n * NODE_DIM + ew : n * NODE_DIM + 2 * ew]
        edge_attr[ew:] = st["head_attr"]
        return Data(
            x=x,
            edge_index=st["edge_index"],
            edge_attr=edge_attr,
            node_kind=st["node_kind"],
            node_rank=st["node_rank"],
            node_layer=st["node_layer"],
            edge_layer=st["edge_layer"],
            num_nodes=n,
            y=ix["y"][idx : idx + 1],
            epoch=ix["epoch"][idx : idx + 1],
            run=ix["run"][idx : idx + 1],
            snapshot=ix["snapshot"][idx : idx + 1],
        )

    def process(self) -> None:
        from rich.progress import track

        run_index = {r: i for i, r in enumerate(self.runs)}
        specs: dict = {}  # GraphSpec -> index into structures
        structures, arch, offsets = [], [], [0]
        tmp = Path(self.processed_paths[1] + ".tmp")
        with open(tmp, "wb") as out:
            for c in track(self.items, description="neural graphs", transient=True):
                entry = self.zoo[c.run_id]
                try:
                    state = entry.snapshot(c.snapshot) if c.snapshot is not None else entry.state_dict()
                    spec = spec_of(c.backbone, state)
                    g = to_graph(spec, state)
                except (UnsupportedBackbone, ZooError) as e:
                    raise ConfigError(f"zoo entry {c.run_id}: {e}") from e
                if spec not in specs:
                    specs[spec] = len(structures)
                    structures.append(_structure(spec, g))
                st = structures[specs[spec]]
                ew = st["weight_edges"]
                parts = [g.x.reshape(-1), g.edge_attr[:ew, 0]] + ([g.edge_attr[:ew, 1]] if st["roots"] else [])
                values = torch.cat(parts).float().contiguous()
                out.write(values.numpy().tobytes())
                arch.append(specs[spec])
                offsets.append(offsets[-1] + values.numel())
        tmp.replace(self.processed_paths[1])
        index = {
            "structures": structures,
            "arch": torch.tensor(arch),
            "offsets": torch.tensor(offsets),
            "y": torch.tensor([c.target for c in self.items], dtype=torch.float),
            "epoch": torch.tensor([c.epoch for c in self.items]),
            "run": torch.tensor([run_index[c.run_id] for c in self.items]),
            "snapshot": torch.tensor([int(c.snapshot is not None) for c in self.items]),
        }
        torch.save(index, self.processed_paths[0])


def _structure(spec, g: Data) -> dict:
    """What every checkpoint of ``spec`` shares: the graph without its values."""
    ew = int((g.edge_layer >= 0).sum())  # weight edges come first; GAT's head edges after them
    return {
        "num_nodes": int(g.num_nodes),
        "weight_edges": ew,
        "roots": any(lin.root is not None for lin in spec.layers),
        "edge_index": g.edge_index,
        "head_attr": g.edge_attr[ew:].clone(),
        "node_kind": g.node_kind,
        "node_rank": g.node_rank,
        "node_layer": g.node_layer,
        "edge_layer": g.edge_layer,
    }


def split_checkpoints(
    items: Sequence[Checkpoint],
    by: str = "random",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    held: str | None = None,
) -> dict[str, set[str]]:
    """The trajectories of ``items`` split into train / val / test (``gnnzoo.zoo.splits``): ``by`` is ``random``,
    ``dataset`` or ``backbone`` (leave ``held`` out as the test set). Every checkpoint of a trajectory lands on
    one side, so no run and no copy of its weights is on two."""
    dataset_of = {c.trajectory: c.dataset for c in items}
    backbone_of = {c.trajectory: c.backbone for c in items}
    return {k: set(v) for k, v in make_split(by, dataset_of, backbone_of, fractions, seed, held).items()}
