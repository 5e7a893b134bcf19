"""Dataset factory: PyG / OGB node-classification datasets and synthetic graphs.

Every loader has the signature ``loader(data_dir, cache_dir, **options) -> GraphData``.

* ``data_dir`` holds raw files in PyG's raw layout (``$GNNZOO_DATA_DIR``); it is only read.
* ``cache_dir`` receives PyG's ``processed/`` files. Raw folders are linked (or copied) into
  it, so a shared, read-only data folder is never written to.

Nothing is downloaded when the raw files are missing: a :class:`DatasetNotFoundError` names the
dataset, the directory and the files expected there.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnzoo.data.synthetic import make_sbm_graph


class DatasetNotFoundError(FileNotFoundError):
    """Raw files of a dataset are missing and cannot be downloaded here."""

    def __init__(self, dataset: str, directory: Path, missing: Sequence[str], hint: str = ""):
        files = "\n".join(f"  - {directory / m}" for m in missing)
        msg = (
            f"Dataset '{dataset}' is not available offline: expected raw files are missing in\n"
            f"  {directory}\nMissing:\n{files}\n"
            "Put the files there (PyG raw layout), or point GNNZOO_DATA_DIR / paths.data_dir at a "
            "folder that has them."
        )
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)
        self.dataset, self.directory, self.missing = dataset, directory, list(missing)


class DatasetCorruptError(ValueError):
    """A raw file of a dataset cannot be read (truncated, corrupt, or not what PyG expects)."""


def _unreadable(path: Path) -> str | None:
    """Why ``path`` (a raw file in PyG's layout) cannot be read, or None if it reads."""
    import gzip
    import pickle

    import numpy as np

    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                for k in z.files:
                    z[k]
        elif path.suffix == ".gz":
            with gzip.open(path) as f:
                while f.read(1 << 20):
                    pass
        elif path.name.endswith(".test.index"):
            [int(line) for line in path.read_text().split()]
        elif path.name.startswith("ind."):  # Planetoid's pickles, read the way PyG reads them
            with open(path, "rb") as f:
                pickle.load(f, encoding="latin1")
    except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
        return f"{type(e).__name__}: {e}"
    return None


def _processed_files(root: Path) -> list[Path]:
    d = root / "processed"
    return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []


@contextmanager
def _cache_lock(root: Path):
    """An exclusive lock on a dataset's cache folder, so parallel jobs (sweep workers, benchmark processes)
    do not process it at the same time and read each other's half-written files (POSIX; elsewhere a no-op)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".gnnzoo.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_dataset(make, dataset: str, root: Path, raw_dir: Path, raw_files: Sequence[str]):
    """``make()`` (a PyG dataset constructor over ``root``) with clear errors for bad files, under a lock
    on ``root`` (one process builds the cache, the others wait for it, then load it).

    * A processed cache (``root/processed``, gnnzoo's own cache folder) that cannot be loaded is deleted
      with a warning naming it, and rebuilt from the raw files once.
    * Raw files that cannot be processed: :class:`DatasetCorruptError` naming the file that does not read."""
    with _cache_lock(root):
        return _open_dataset(make, dataset, root, raw_dir, raw_files)


def _open_dataset(make, dataset: str, root: Path, raw_dir: Path, raw_files: Sequence[str]):
    import warnings

    cached = _processed_files(root)
    try:
        return make()
    except Exception as e:  # noqa: BLE001 - re-raised below with what the user needs to know
        first = e
    if cached:
        # (torch's own message would advise weights_only=False: unsafe, and no help for a corrupt file)
        warnings.warn(
            f"the processed cache of {dataset} ({', '.join(str(p) for p in cached)}) could not be "
            f"loaded ({type(first).__name__}): deleting {root / 'processed'} and rebuilding it from the "
            "raw files",
            stacklevel=3,
        )
        shutil.rmtree(root / "processed", ignore_errors=True)
        try:
            return make()
        except Exception as e:  # noqa: BLE001
            first = e
    for name in raw_files:
        why = _unreadable(raw_dir / name)
        if why:
            raise DatasetCorruptError(
                f"raw file {raw_dir / name} of {dataset} cannot be read ({why[:300]}): it looks truncated or "
                f"corrupt. Replace it with an intact copy (PyG raw layout) and run again."
            ) from first
    raise DatasetCorruptError(
        f"{dataset}: the raw files in {raw_dir} could not be processed "
        f"({type(first).__name__}: {str(first).splitlines()[0][:300]})"
    ) from first


@dataclass
class GraphData:
    """A graph (or, for graph classification, a set of graphs) plus what the rest of gnnzoo needs to know about it.

    One graph: ``data`` is it. A graph dataset (``graphs`` set, see :mod:`gnnzoo.data.tu`): ``data`` is the
    disjoint union of its graphs (``batch`` [N] maps nodes to graphs, ``y`` [G] and the ``*_mask`` [G] are per
    graph), so one forward evaluates every graph, and ``graphs`` serves training mini-batches."""

    data: Data  # x [N, F] (dense or sparse CSR), edge_index [2, E], y [N], *_mask [N]
    name: str
    num_features: int
    num_classes: int
    metric: str = "acc"  # "acc" (fraction correct) or "ogb" (ogb Evaluator)
    ogb_name: str | None = None
    info: dict = field(default_factory=dict)
    graphs: Sequence[Data] | None = None  # a graph dataset's graphs, in the order of data.batch

    @property
    def num_nodes(self) -> int:
        return int(self.data.num_nodes)


# --------------------------------------------------------------------------------------------
# helpers


def _link_raw(src: Path, dst: Path) -> None:
    """Make ``dst`` point at ``src`` (a raw folder) without writing into ``src``."""
    if dst.exists() or dst.is_symlink():
        if dst.resolve() == src.resolve():
            return
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        else:
            shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst, target_is_directory=True)
    except OSError:  # filesystems without symlinks
        shutil.copytree(src, dst)


def _check_raw(dataset: str, raw_dir: Path, files: Sequence[str], hint: str = "") -> None:
    missing = [f for f in files if not (raw_dir / f).is_file()]
    if missing:
        raise DatasetNotFoundError(dataset, raw_dir, missing, hint)


def _prepare_root(
    data_dir: str | Path,
    cache_dir: str | Path,
    collection: str,
    name: str,
    raw_files: Sequence[str],
    subdirs: Sequence[str] = ("raw",),
) -> Path:
    """Check raw files in ``data_dir/collection/name/raw`` and link them into the cache."""
    src_root = Path(data_dir).expanduser() / collection / name
    _check_raw(f"{collection}/{name}", src_root / subdirs[0], raw_files)
    dst_root = Path(cache_dir).expanduser() / collection / name
    for sub in subdirs:
        _link_raw(src_root / sub, dst_root / sub)
    return Path(cache_dir).expanduser() / collection


def row_normalize(x: Tensor) -> Tensor:
    """Divide every row by its sum (rows that sum to 0 stay 0), as PyG's NormalizeFeatures."""
    s = x.sum(dim=-1, keepdim=True).clamp_(min=1e-12)
    return x / s


def maybe_sparse(x: Tensor, sparse_features: str | bool) -> Tensor:
    """Store ``x`` as sparse CSR when asked, or (``"auto"``) when it is under 10% dense.

    Dropout on a dense 2708x1433 bag-of-words matrix costs ~50 ms per call on a CPU core while
    dropout on the 49k stored values costs microseconds; the layers that read ``x`` first apply a
    linear map, which CSR supports (see ``gnnzoo.backbones``).
    """
    if sparse_features is False or sparse_features == "false" or x.is_sparse_csr:
        return x
    density = float((x != 0).sum()) / max(x.numel(), 1)
    if sparse_features is True or sparse_features == "true" or (sparse_features == "auto" and density < 0.1):
        return x.to_sparse_csr()
    return x


def random_split(
    y: Tensor, num_classes: int, train_per_class: int, val_per_class: int, seed: int, test: str | int = "rest"
) -> tuple[Tensor, Tensor, Tensor]:
    """Shchur et al. split: ``train_per_class`` / ``val_per_class`` nodes of every class, rest test."""
    g = torch.Generator().manual_seed(int(seed))
    n = y.numel()
    train = torch.zeros(n, dtype=torch.bool)
    val = torch.zeros(n, dtype=torch.bool)
    for c in range(num_classes):
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        train[idx[:train_per_class]] = True
        val[idx[train_per_class : train_per_class + val_per_class]] = True
    rest = (~train & ~val).nonzero().view(-1)
    testm = torch.zeros(n, dtype=torch.bool)
    if test == "rest":
        testm[rest] = True
    else:
        testm[rest[torch.randperm(rest.numel(), generator=g)[: int(test)]]] = True
    return train, val, testm


def _finish(
    data: Data, name: str, num_classes: int, normalize_features: bool, sparse_features: str | bool, **extra
) -> GraphData:
    x = data.x.float()
    if normalize_features:
        x = row_normalize(x)
    data.x = maybe_sparse(x, sparse_features)
    data.y = data.y.view(-1).long()
    return GraphData(data=data, name=name, num_features=int(x.size(1)), num_classes=num_classes, **extra)


# --------------------------------------------------------------------------------------------
# loaders


PLANETOID_FILES = [f"ind.{{n}}.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")]


def planetoid(
    data_dir: str,
    cache_dir: str,
    name: str,
    split: str = "public",
    normalize_features: bool = True,
    sparse_features: str | bool = "auto",
) -> GraphData:
    """Planetoid Cora / CiteSeer / PubMed with the public split."""
    from torch_geometric.datasets import Planetoid

    files = [f.format(n=name.lower()) for f in PLANETOID_FILES]
    root = _prepare_root(data_dir, cache_dir, "Planetoid", name, files)
    ds = open_dataset(
        lambda: Planetoid(str(root), name, split=split),
        f"Planetoid/{name}",
        root / name,
        Path(data_dir).expanduser() / "Planetoid" / name / "raw",
        files,
    )
    return _finish(ds[0], name.lower(), ds.num_classes, normalize_features, sparse_features)


_NPZ = {
    ("Amazon", "computers"): ("Computers", "amazon_electronics_computers.npz"),
    ("Amazon", "photo"): ("Photo", "amazon_electronics_photo.npz"),
    ("Coauthor", "cs"): ("CS", "ms_academic_cs.npz"),
    ("Coauthor", "physics"): ("Physics", "ms_academic_phy.npz"),
}


def npz_dataset(
    data_dir: str,
    cache_dir: str,
    collection: str,
    name: str,
    train_per_class: int = 20,
    val_per_class: int = 30,
    split_seed: int = 0,
    normalize_features: bool = True,
    sparse_features: str | bool = "auto",
) -> GraphData:
    """Amazon Computers/Photo and Coauthor CS/Physics with a seeded per-class random split."""
    from torch_geometric import datasets

    key = (collection, name.lower())
    if key not in _NPZ:
        raise ValueError(f"unknown {collection} dataset '{name}'; known: {[k[1] for k in _NPZ if k[0] == collection]}")
    folder, raw = _NPZ[key]
    root = _prepare_root(data_dir, cache_dir, collection, folder, [raw])
    ds = open_dataset(
        lambda: getattr(datasets, collection)(str(root), folder),
        f"{collection}/{folder}",
        root / folder,
        Path(data_dir).expanduser() / collection / folder / "raw",
        [raw],
    )
    data = ds[0]
    num_classes = int(data.y.max()) + 1
    data.train_mask, data.val_mask, data.test_mask = random_split(
        data.y, num_classes, train_per_class, val_per_class, split_seed
    )
    return _finish(
        data, name.lower(), num_classes, normalize_features, sparse_features, info={"split_seed": split_seed}
    )


def ogb_node(
    data_dir: str,
    cache_dir: str,
    name: str,
    to_undirected: bool = True,
    normalize_features: bool = False,
    sparse_features: str | bool = False,
) -> GraphData:
    """OGB node property prediction (``ogbn-arxiv``, ``ogbn-products``) via ``ogb``'s PyG dataset.

    Expects ``data_dir/<ogbn_name>/{raw,split}/`` as ``ogb`` lays them out after download.
    Evaluated with ``ogb.nodeproppred.Evaluator``.
    """
    import ogb.nodeproppred as onp
    import pandas as pd
    from ogb.nodeproppred import PygNodePropPredDataset
    from torch_geometric.utils import to_undirected as undirect

    master = pd.read_csv(os.path.join(os.path.dirname(onp.__file__), "master.csv"), index_col=0, keep_default_na=False)
    if name not in master:
        raise ValueError(f"unknown OGB node dataset '{name}'; known: {list(master.columns)}")
    meta = master[name]
    dir_name = name.replace("-", "_")
    src = Path(data_dir).expanduser() / dir_name
    raw = ["edge.csv.gz", "num-node-list.csv.gz", "num-edge-list.csv.gz", "node-label.csv.gz"]
    if meta["has_node_attr"] == "True":
        raw.append("node-feat.csv.gz")
    split_dir = src / "split" / meta["split"]
    _check_raw(
        name,
        src / "raw",
        raw,
        hint=f"Also needed: {split_dir}/{{train,valid,test}}.csv.gz. OGB's layout after "
        f"download of {meta['url']} (unzipped into {dir_name}/).",
    )
    _check_raw(name, split_dir, ["train.csv.gz", "valid.csv.gz", "test.csv.gz"])
    dst = Path(cache_dir).expanduser() / "ogb" / dir_name
    _link_raw(src / "raw", dst / "raw")
    _link_raw(src / "split", dst / "split")
    # ogb asks interactively to re-download when the release marker is missing: write it.
    (dst / f"RELEASE_v{meta['version']}.txt").write_text("gnnzoo: prepared from local raw files\n")
    # ogb 1.3.6 reloads its processed file with torch.load, whose weights_only default (torch >= 2.6)
    # rejects PyG's Data containers: allowlist exactly those classes (still no arbitrary code).
    with torch.serialization.safe_globals(_pyg_safe_globals()):
        ds = open_dataset(lambda: PygNodePropPredDataset(name, root=str(dst.parent)), name, dst, src / "raw", raw)
    data = ds[0]
    split = ds.get_idx_split()
    num_nodes = data.num_nodes
    for key, part in (("train_mask", "train"), ("val_mask", "valid"), ("test_mask", "test")):
        mask = torch.zeros(num_nodes, dtype=torch.bool)
        mask[split[part]] = True
        data[key] = mask
    if to_undirected:
        data.edge_index = undirect(data.edge_index, num_nodes=num_nodes)
    return _finish(
        data, name, int(meta["num classes"]), normalize_features, sparse_features, metric="ogb", ogb_name=name
    )


def _pyg_safe_globals() -> list:
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import EdgeStorage, GlobalStorage, NodeStorage

    return [DataEdgeAttr, DataTensorAttr, GlobalStorage, NodeStorage, EdgeStorage]


def synthetic(
    data_dir: str | None = None, cache_dir: str | None = None, normalize_features: bool = False, **options
) -> GraphData:
    """Seeded stochastic-block-model graph (see :func:`gnnzoo.data.synthetic.make_sbm_graph`); its Gaussian
    features are used as drawn (``normalize_features=true`` divides each row by its sum, as for the others)."""
    data = make_sbm_graph(**options)
    if normalize_features:
        data.x = row_normalize(data.x)
    return GraphData(
        data=data,
        name="synthetic",
        num_features=int(data.x.size(1)),
        num_classes=int(options.get("num_classes", 4)),
        info={"options": dict(options)},
    )
