"""Seeded synthetic node-classification graphs (stochastic block model, planted partition).

Generation is O(N + E) and vectorised, so graphs of millions of nodes are built in seconds:
each undirected edge picks a uniform source; with probability ``homophily`` its target is a
uniform node of the source's class, otherwise a uniform node of any class. That is a
degree-corrected planted-partition SBM with expected degree ``avg_degree``.
Features are class means plus Gaussian noise; ``feature_noise`` sets how separable they are.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data


def make_sbm_graph(
    num_nodes: int = 1000,
    num_classes: int = 4,
    num_features: int = 32,
    avg_degree: float = 8.0,
    homophily: float = 0.8,
    feature_noise: float = 1.0,
    train_per_class: int = 20,
    val_fraction: float = 0.2,
    test_fraction: float = 0.4,
    seed: int = 0,
) -> Data:
    if num_nodes < num_classes * (train_per_class + 1):
        raise ValueError(
            f"synthetic: num_nodes={num_nodes} too small for {num_classes} classes x {train_per_class} training nodes"
        )
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"synthetic: homophily must be in [0, 1], got {homophily}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError("synthetic: val_fraction + test_fraction must be < 1")
    gen = torch.Generator().manual_seed(int(seed))
    n_nodes, n_classes = int(num_nodes), int(num_classes)

    labels = torch.randint(0, n_classes, (n_nodes,), generator=gen)
    labels[:n_classes] = torch.arange(n_classes)  # every class present
    order = torch.argsort(labels, stable=True)  # nodes grouped by class
    counts = torch.bincount(labels, minlength=n_classes)
    starts = torch.cumsum(counts, 0) - counts

    num_edges = int(n_nodes * avg_degree / 2)
    src = torch.randint(0, n_nodes, (num_edges,), generator=gen)
    same = torch.rand(num_edges, generator=gen) < homophily
    tgt_cls = torch.where(same, labels[src], labels[torch.randint(0, n_nodes, (num_edges,), generator=gen)])
    offset = (torch.rand(num_edges, generator=gen) * counts[tgt_cls]).long().clamp_max_(counts[tgt_cls] - 1)
    dst = order[starts[tgt_cls] + offset]
    keep = src != dst
    src, dst = src[keep], dst[keep]
    ei = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    # remove duplicate edges: encode (s, t) as one int64
    key = torch.unique(ei[0] * n_nodes + ei[1])
    edge_index = torch.stack([key // n_nodes, key % n_nodes])

    means = torch.randn(n_classes, num_features, generator=gen)
    features = means[labels] + feature_noise * torch.randn(n_nodes, num_features, generator=gen)

    perm = torch.randperm(n_nodes, generator=gen)
    train = torch.zeros(n_nodes, dtype=torch.bool)
    # first train_per_class nodes of each class in a random order
    ranks = torch.empty(n_nodes, dtype=torch.long)
    yp = labels[perm]
    sort_idx = torch.argsort(yp, stable=True)
    cls_sorted = yp[sort_idx]
    cls_counts = torch.bincount(cls_sorted, minlength=n_classes)
    first = torch.cumsum(cls_counts, 0) - cls_counts
    ranks[sort_idx] = torch.arange(n_nodes) - first[cls_sorted]
    train[perm[ranks < train_per_class]] = True
    rest = perm[~train[perm]]
    n_val = int(val_fraction * n_nodes)
    n_test = int(test_fraction * n_nodes)
    val = torch.zeros(n_nodes, dtype=torch.bool)
    test = torch.zeros(n_nodes, dtype=torch.bool)
    val[rest[:n_val]] = True
    test[rest[n_val : n_val + n_test]] = True
    return Data(x=features, edge_index=edge_index, y=labels, train_mask=train, val_mask=val, test_mask=test)
