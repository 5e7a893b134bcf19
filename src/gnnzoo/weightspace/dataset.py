"""The zoo as a dataset of neural graphs: one graph per checkpoint (best-val weights and snapshots; identical
weights once), its record's fields as targets, splits by trajectory (never by run or checkpoint), processed once
and cached on disk."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch_geometric.data import Data, Dataset

from gnnzoo.utils.errors import ConfigError
from gnnzoo.weightspace.basis import InputBasis, projected
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
    """What the encoders read of ``items`` (from :func:`checkpoints`), cached under ``root/<digest>``.

    Per checkpoint: its neural graph with the first layer in its dataset's input basis
    (:func:`gnnzoo.weightspace.basis.projected_graph`; ``bases`` maps every dataset of ``items`` to its
    :class:`~gnnzoo.weightspace.basis.InputBasis`), ``y`` (the target), ``epoch``, ``run`` (an index into
    :attr:`runs`), ``snapshot`` (1 for a snapshot, 0 for the best-val weights), and the cached baseline
    features: ``stats`` (layer statistics of the raw weights), ``hparams`` (configuration and epoch) and, once
    :meth:`add_probe` ran, ``probe``. :meth:`view` picks what ``ds[i]`` carries (graph and/or which features):
    the baselines train on vectors without building a graph.

    **Memory.** What the checkpoints of one architecture share (edge index, node kinds, ranks and layers, GAT's
    head edges) is stored once per architecture; each checkpoint stores only its values in one float32 file on
    disk, written as the graphs are built and read back by memory map. Building holds one checkpoint at a time.
    """

    FIELDS = ("stats", "hparams", "probe")

    def __init__(self, zoo: Zoo, items: Sequence[Checkpoint], root: str | Path, bases: dict[str, InputBasis]):
        if not items:
            raise ConfigError(f"the zoo query selects no completed checkpoint in {zoo.root}")
        missing = sorted({c.dataset for c in items} - set(bases))
        if missing:
            raise ConfigError(f"no input basis for the dataset(s) {missing} of the zoo query")
        self.zoo, self.items, self.bases = zoo, list(items), {d: bases[d] for d in sorted({c.dataset for c in items})}
        self.runs = sorted({c.run_id for c in self.items})
        self.graphs, self.fields = True, ("stats", "hparams")
        self._last: tuple = (None, None)  # (run id, zoo entry) read last
        h = hashlib.sha256(json.dumps([c.__dict__ for c in self.items], sort_keys=True).encode())
        for name, b in self.bases.items():
            h.update(name.encode() + b.directions.numpy().tobytes() + b.scales.numpy().tobytes())
        h.update(f"ngraph/{NODE_DIM + 1}".encode())
        super().__init__(str(Path(root) / h.hexdigest()[:16]))
        self._index = torch.load(self.processed_paths[0], weights_only=True)
        self._probe = None
        probe = Path(self.processed_dir) / "probe.pt"
        if probe.exists():
            self._probe = torch.load(probe, weights_only=True)
        self._values = None  # the memory map, opened on first use (and in each DataLoader worker)

    @property
    def processed_file_names(self) -> list[str]:
        return ["index.pt", "values.f32"]

    def len(self) -> int:
        return len(self.items)

    def num_params(self) -> set[int]:
        """The parameter counts of the projected graphs (flat_mlp's input length), one per architecture."""
        return {
            int(st["num_nodes"]) * int(st["node_dim"]) + int(st["edge_index"].size(1)) * EDGE_DIM
            for st in self._index["structures"]
        }

    def view(self, graphs: bool = True, fields: Sequence[str] = ("stats", "hparams")) -> "ZooGraphs":
        """The same dataset, its items carrying the graph (``graphs``) and the cached ``fields``."""
        unknown = sorted(set(fields) - set(self.FIELDS))
        if unknown:
            raise ValueError(f"ZooGraphs.view: unknown fields {unknown} (known: {', '.join(self.FIELDS)})")
        if "probe" in fields and self._probe is None:
            raise ValueError("ZooGraphs.view: the probe features are not computed yet (ZooGraphs.add_probe)")
        out = copy.copy(self)
        out.graphs, out.fields = bool(graphs), tuple(fields)
        return out

    def _map(self):
        if self._values is None:
            import numpy as np

            size = int(self._index["offsets"][-1])
            self._values = np.memmap(self.processed_paths[1], dtype=np.float32, mode="r", shape=(size,))
        return self._values

    def get(self, idx: int) -> Data:
        ix = self._index
        extra = {k: ix[k][idx : idx + 1] for k in ("y", "epoch", "run", "snapshot")}
        for f in self.fields:
            extra[f] = (self._probe if f == "probe" else ix[f])[idx : idx + 1]
        if not self.graphs:
            return Data(num_nodes=1, **extra)
        st = ix["structures"][int(ix["arch"][idx])]
        flat = torch.from_numpy(self._map()[int(ix["offsets"][idx]) : int(ix["offsets"][idx + 1])].copy())
        n, ew, roots, nd = int(st["num_nodes"]), int(st["weight_edges"]), bool(st["roots"]), int(st["node_dim"])
        x = flat[: n * nd].view(n, nd)
        edge_attr = torch.zeros(st["edge_index"].size(1), EDGE_DIM)
        edge_attr[:ew, 0] = flat[n * nd : n * nd + ew]
        if roots:
            edge_attr[:ew, 1] = flat[n * nd + ew : n * nd + 2 * ew]
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
            **extra,
        )

    def _entry(self, run_id: str):
        """The zoo entry of ``run_id`` (its record read once for the consecutive checkpoints of one run)."""
        if self._last[0] != run_id:
            self._last = (run_id, self.zoo[run_id])
        return self._last[1]

    def _state(self, c: Checkpoint) -> dict:
        entry = self._entry(c.run_id)
        try:
            return entry.snapshot(c.snapshot) if c.snapshot is not None else entry.state_dict()
        except ZooError as e:
            raise ConfigError(f"zoo entry {c.run_id}: {e}") from e

    def process(self) -> None:
        from rich.progress import track
        from torch_geometric.data import Batch

        from gnnzoo.weightspace.baselines import STAT_LAYERS, layer_statistics
        from gnnzoo.weightspace.features import hparam_features

        run_index = {r: i for i, r in enumerate(self.runs)}
        specs: dict = {}  # GraphSpec -> index into structures
        structures, arch, offsets, stats, hparams = [], [], [0], [], []
        tmp = Path(self.processed_paths[1] + ".tmp")
        with open(tmp, "wb") as out:
            for c in track(self.items, description="neural graphs", transient=True):
                state = self._state(c)
                try:
                    raw = to_graph(spec_of(c.backbone, state), state)
                    spec, g = projected(c.backbone, state, self.bases[c.dataset])
                except (UnsupportedBackbone, ValueError) as e:
                    raise ConfigError(f"zoo entry {c.run_id}: {e}") from e
                stats.append(layer_statistics(Batch.from_data_list([raw]), STAT_LAYERS)[0])
                hparams.append(hparam_features(self._entry(c.run_id).record.get("config") or {}, c.backbone, c.epoch))
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
            "stats": torch.stack(stats),
            "hparams": torch.stack(hparams),
        }
        torch.save(index, self.processed_paths[0])

    def add_probe(self, graph_of: Callable[[str], object]) -> None:
        """Compute (once; cached beside the graphs) each checkpoint's ``probe`` features: its backbone, rebuilt
        from the run's record, run on the whole graph of its dataset (``graph_of(name)`` -> a
        :class:`~gnnzoo.data.datasets.GraphData`), summarised on a fixed, seeded sample of the dataset's nodes
        (:func:`gnnzoo.weightspace.features.probe_features`)."""
        if self._probe is not None:
            return
        from rich.progress import track

        from gnnzoo.utils.config import instantiate_clean
        from gnnzoo.weightspace.features import probe_features, probe_nodes

        out: list = [None] * len(self.items)
        order = sorted(range(len(self.items)), key=lambda i: (self.items[i].dataset, self.items[i].run_id))
        models: dict = {}
        current, graph = None, None
        for i in track(order, description="probe features", transient=True):  # one dataset's graph at a time
            c = self.items[i]
            if c.dataset != current:
                gd = graph_of(c.dataset)
                current, graph = c.dataset, (gd.data.x, gd.data.edge_index, probe_nodes(gd.num_nodes))
            run_cfg = self._entry(c.run_id).record.get("config") or {}
            problem = (run_cfg.get("problem") or {}).get("name", "node")
            if problem != "node":
                raise ConfigError(
                    f"encoder=probe runs node classifiers on their graph; zoo entry {c.run_id} is a problem={problem} "
                    "checkpoint (the weight-only encoders read every problem: ng_gnn, ng_transformer, stat, flat_mlp)"
                )
            bb_cfg = run_cfg.get("backbone")
            if not bb_cfg:
                raise ConfigError(f"zoo entry {c.run_id}: its record has no backbone config to run the probe with")
            key = json.dumps(bb_cfg, sort_keys=True, default=str)
            if key not in models:
                models = {key: instantiate_clean(bb_cfg)}  # one at a time: a run's checkpoints come together
            out[i] = probe_features(models[key], self._state(c), *graph)
        probe = torch.stack(out)
        tmp = Path(self.processed_dir) / "probe.pt.tmp"
        torch.save(probe, tmp)
        tmp.replace(Path(self.processed_dir) / "probe.pt")
        self._probe = probe


def _structure(spec, g: Data) -> dict:
    """What every checkpoint of ``spec`` shares: the graph without its values."""
    ew = int((g.edge_layer >= 0).sum())  # weight edges come first; GAT's head edges after them
    return {
        "num_nodes": int(g.num_nodes),
        "node_dim": int(g.x.size(1)),
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


def dataset_configs(zoo: Zoo, items: Sequence[Checkpoint]) -> dict[str, dict]:
    """The ``dataset`` config each dataset of ``items`` was trained on (from the runs' records). Two runs of one
    dataset name with different loaders (another split or preprocessing) are a :class:`ConfigError`: their
    input bases would differ."""
    from gnnzoo.data.graph import graph_spec

    out: dict[str, dict] = {}
    for run_id in sorted({c.run_id for c in items}):
        cfg = (zoo[run_id].record.get("config") or {}).get("dataset")
        if not cfg or "loader" not in cfg:
            raise ConfigError(f"zoo entry {run_id}: its record has no dataset loader config (an older or foreign zoo?)")
        name = str(cfg.get("name"))
        if name in out and graph_spec({"dataset": out[name]}) != graph_spec({"dataset": cfg}):
            raise ConfigError(
                f"the zoo query holds runs of dataset {name!r} with different loaders ({run_id} and an earlier "
                "run): narrow encoder.zoo so that each dataset name means one graph"
            )
        out.setdefault(name, cfg)
    return out


def graph_loader(paths) -> Callable[[dict], object]:
    """``load(dataset_cfg) -> GraphData`` reading from ``paths.data_dir`` / ``paths.cache_dir``."""
    from omegaconf import OmegaConf

    from gnnzoo.data.graph import load_graph

    def load(dataset_cfg: dict):
        # a graph dataset (MUTAG ...) loads as graph classification, the others as node classification (the
        # features an encoder reads are the same for every problem the dataset supports)
        first = (dataset_cfg.get("problems") or ["node"])[0]
        problem = (
            {"name": "graph", "folds": 10, "fold": 0, "val_ratio": 0.1, "split_seed": 0} if first == "graph" else {}
        )
        cfg = {"dataset": dataset_cfg, "paths": OmegaConf.to_container(paths)}
        return load_graph(OmegaConf.create({**cfg, **({"problem": problem} if problem else {})}))

    return load


def input_bases(configs: dict[str, dict], paths, k: int) -> dict[str, InputBasis]:
    """Each dataset's :class:`~gnnzoo.weightspace.basis.InputBasis` (``k`` directions of its node features),
    cached under ``paths.cache_dir/weightspace/bases`` by the loader config and ``k``."""
    from gnnzoo.data.graph import graph_spec
    from gnnzoo.weightspace.basis import input_basis

    load = graph_loader(paths)
    out = {}
    for name, cfg in configs.items():
        key = hashlib.sha256(json.dumps([graph_spec({"dataset": cfg}), int(k)], sort_keys=True).encode()).hexdigest()
        path = Path(paths.cache_dir) / "weightspace" / "bases" / f"{name}-{key[:16]}.pt"
        if path.exists():
            t = torch.load(path, weights_only=True)
            out[name] = InputBasis(name, t["directions"], t["scales"])
            continue
        b = input_basis(name, load(cfg).data.x, int(k))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"directions": b.directions, "scales": b.scales}, tmp)
        tmp.replace(path)
        out[name] = b
    return out
