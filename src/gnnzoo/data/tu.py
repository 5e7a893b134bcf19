"""Graph classification data: TU datasets (MUTAG, PROTEINS ...) from the data folder, and their folds.

:func:`tu_dataset` loads PyG's ``TUDataset`` from ``data_dir/TUDataset/<name>/raw`` (nothing is downloaded);
:func:`fold_masks` is the 10-fold stratified cross-validation of Errica et al. (2020): the test fold, and a
stratified validation holdout inside the training folds on which model selection happens (it never reads the
test fold).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import Batch

from gnnzoo.data.datasets import GraphData, _prepare_root, open_dataset

# the raw files each TU dataset needs (the TU Dortmund collection's names)
TU_FILES = {
    "MUTAG": ["A", "graph_indicator", "graph_labels", "node_labels", "edge_labels"],
    "PROTEINS": ["A", "graph_indicator", "graph_labels", "node_labels", "node_attributes"],
}


def tu_dataset(data_dir: str, cache_dir: str, name: str, use_node_attr: bool = False) -> GraphData:
    """A TU graph dataset as a :class:`GraphData` whose ``graphs`` are its graphs and ``data`` their union."""
    from torch_geometric.datasets import TUDataset

    if name not in TU_FILES:
        raise ValueError(f"unknown TU dataset {name!r}; known: {', '.join(sorted(TU_FILES))}")
    files = [f"{name}_{f}.txt" for f in TU_FILES[name]]
    root = _prepare_root(data_dir, cache_dir, "TUDataset", name, files)
    ds = open_dataset(
        lambda: TUDataset(str(root), name, use_node_attr=use_node_attr),
        f"TUDataset/{name}",
        root / name,
        Path(data_dir).expanduser() / "TUDataset" / name / "raw",
        files,
    )
    graphs = [g for g in ds]
    for g in graphs:
        g.x = g.x.float()
    union = Batch.from_data_list(graphs)
    union.y = union.y.view(-1).long()
    return GraphData(
        data=union,
        name=name.lower(),
        num_features=int(ds.num_features),
        num_classes=int(ds.num_classes),
        info={"num_graphs": len(graphs)},
        graphs=graphs,
    )


def fold_masks(y: Tensor, folds: int, fold: int, val_ratio: float, split_seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """(train, val, test) boolean masks over the graphs: fold ``fold`` of a stratified ``folds``-fold split is the
    test set; a stratified ``val_ratio`` of the other folds is the validation set, the rest trains."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"problem.folds={folds!r}: expected a whole number >= 2")
    if not isinstance(fold, int) or not 0 <= fold < folds:
        raise ValueError(f"fold={fold!r}: expected a whole number in [0, {folds - 1}] (problem.folds={folds})")
    if not 0 < val_ratio < 1:
        raise ValueError(f"problem.val_ratio={val_ratio}: expected a value in (0, 1)")
    labels = y.cpu().numpy()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(split_seed))
    train_idx, test_idx = list(splitter.split(labels.reshape(-1, 1), labels))[fold]
    fit_idx, val_idx = train_test_split(
        train_idx, test_size=val_ratio, stratify=labels[train_idx], random_state=int(split_seed)
    )
    masks = []
    for idx in (fit_idx, val_idx, test_idx):
        m = torch.zeros(y.numel(), dtype=torch.bool)
        m[torch.as_tensor(idx)] = True
        masks.append(m)
    return masks[0], masks[1], masks[2]
