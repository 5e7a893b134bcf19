"""Link prediction: a graph's edges split into message-passing, validation and test edges.

:func:`split_edges` uses PyG's ``RandomLinkSplit`` (undirected edges are split as pairs; validation and test
negatives are sampled once, from node pairs that are not edges of the whole graph) under a seed of its own, so a
split depends only on the graph and ``split_seed``, never on the run's seed. The message-passing graph
(``data.edge_index`` afterwards) holds the training edges only, both directions: no validation or test edge ever
carries a message. Training negatives are drawn anew every epoch by the training module
(:func:`train_negatives`).
"""

from __future__ import annotations

import copy
import random

import torch
from torch import Tensor
from torch_geometric.data import Data

# the attributes a split graph carries beside x / edge_index (the message-passing, i.e. training, edges)
LINK_KEYS = ("train_pos", "val_edges", "val_labels", "test_edges", "test_labels")


def split_edges(data: Data, val_ratio: float, test_ratio: float, split_seed: int) -> Data:
    """A shallow copy of ``data`` whose ``edge_index`` is the training edges (both directions) and which carries
    ``train_pos`` [2, E_train] (each undirected training edge once), ``{val,test}_edges`` [2, 2 E_split] (positives
    then as many sampled negatives) and ``{val,test}_labels`` [2 E_split] (1. / 0.).

    Seeded: the same graph and ``split_seed`` give the same split, whatever the global random state (which is
    left as it was)."""
    from torch_geometric.transforms import RandomLinkSplit

    if not 0 < val_ratio < 1 or not 0 < test_ratio < 1 or val_ratio + test_ratio >= 1:
        raise ValueError(
            f"problem.val_ratio={val_ratio} and problem.test_ratio={test_ratio}: each must lie in (0, 1) and their "
            "sum below 1 (the rest are the training edges)"
        )
    edges_only = Data(edge_index=data.edge_index, num_nodes=data.num_nodes)
    transform = RandomLinkSplit(
        num_val=float(val_ratio),
        num_test=float(test_ratio),
        is_undirected=True,
        add_negative_train_samples=False,
        neg_sampling_ratio=1.0,
    )
    state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(split_seed))
        random.seed(int(split_seed))
        try:
            train, val, test = transform(edges_only)
        finally:
            random.setstate(state)
    out = copy.copy(data)  # new store, same x and labels
    out.edge_index = train.edge_index
    out.train_pos = train.edge_label_index
    out.val_edges, out.val_labels = val.edge_label_index, val.edge_label.float()
    out.test_edges, out.test_labels = test.edge_label_index, test.edge_label.float()
    return out


def train_negatives(data: Data, num: int) -> Tensor:
    """``num`` node pairs drawn uniformly at random, as the negatives of a training step (PyG's
    ``negative_sampling`` against the training edges). [2, num]"""
    from torch_geometric.utils import negative_sampling

    return negative_sampling(data.edge_index, num_nodes=data.num_nodes, num_neg_samples=int(num))


def hits_at_k(pos: Tensor, neg: Tensor, k: int) -> float:
    """OGB's Hits@K: the fraction of positive scores above the K-th highest negative score. NaN when there are
    fewer than K negatives (OGB's evaluator reports 1.0 there, a score no model earned)."""
    if neg.numel() < k:
        return float("nan")
    kth = torch.topk(neg, k).values[-1]
    return float((pos > kth).float().mean())
