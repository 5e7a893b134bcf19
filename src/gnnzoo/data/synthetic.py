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
    g = torch.Generator().manual_seed(int(seed))
    n, c = int(num_nodes), int(num_classes)

    y = torch.randint(0, c, (n,), generator=g)
    y[:c] = torch.arange(c)  # every class present
    order = torch.argsort(y, stable=True)  # nodes grouped by class
    counts = torch.bincount(y, minlength=c)
    starts = torch.cumsum(counts, 0) - counts

    num_edges = int(n * avg_degree / 2)
    src = torch.randint(0, n, (num_edges,), generator=g)
    same = torch.rand(num_edges, generator=g) < homophily
    tgt_cls = torch.where(same, y[src], y[torch.randint(0, n, (num_edges,), generator=g)])
    offset = (torch.rand(num_edges, generator=g) * counts[tgt_cls]).long().clamp_max_(counts[tgt_cls] - 1)
    dst = order[starts[tgt_cls] + offset]
    keep = src != dst
    src, dst = src[keep], dst[keep]
    ei = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    # remove duplicate edges: encode (s, t) as one int64
    key = torch.unique(ei[0] * n + ei[1])
    edge_index = torch.stack([key // n, key % n])

    means = torch.randn(c, num_features, generator=g)
    x = means[y] + feature_noise * torch.randn(n, num_features, generator=g)

    perm = torch.randperm(n, generator=g)
    train = torch.zeros(n, dtype=torch.bool)
    # first train_per_class nodes of each class in a random order
    ranks = torch.empty(n, dtype=torch.long)
    yp = y[perm]
    sort_idx = torch.argsort(yp, stable=True)
    cls_sorted = yp[sort_idx]
    cls_counts = torch.bincount(cls_sorted, minlength=c)
    first = torch.cumsum(cls_counts, 0) - cls_counts
    ranks[sort_idx] = torch.arange(n) - first[cls_sorted]
    train[perm[ranks < train_per_class]] = True
    rest = perm[~train[perm]]
    n_val = int(val_fraction * n)
    n_test = int(test_fraction * n)
    val = torch.zeros(n, dtype=torch.bool)
    test = torch.zeros(n, dtype=torch.bool)
    val[rest[:n_val]] = True
    test[rest[n_val : n_val + n_test]] = True
    return Data(x=x, edge_index=edge_index, y=y, train_mask=train, val_mask=val, test_mask=test)
