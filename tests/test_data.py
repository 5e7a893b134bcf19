"""Data: neighbour sampler, synthetic graphs, sparse features."""

from __future__ import annotations

import torch

from gnnzoo.data.datasets import maybe_sparse, random_split
from gnnzoo.data.sampler import NeighborLoader, NeighborSampler, csr_rows
from gnnzoo.data.synthetic import make_sbm_graph


def test_sampler_edges_exist_and_respect_fanout():
    data = make_sbm_graph(num_nodes=500, avg_degree=12, seed=2)
    edges = set(map(tuple, data.edge_index.t().tolist()))
    sampler = NeighborSampler(data.edge_index, data.num_nodes, [4, 3])
    seeds = torch.tensor([5, 17, 42, 99])
    n_id, ei = sampler.sample(seeds)
    assert torch.equal(n_id[:4], seeds) and n_id.unique().numel() == n_id.numel()
    glob = n_id[ei]
    assert all((s, t) in edges for s, t in glob.t().tolist())
    # hop 1: each seed gets min(deg, 4) distinct neighbours
    deg = torch.bincount(data.edge_index[1], minlength=data.num_nodes)
    hop1 = ei[:, : int(sum(min(int(deg[s]), 4) for s in seeds))]
    for i, s in enumerate(seeds.tolist()):
        srcs = hop1[0][hop1[1] == i]
        assert srcs.numel() == min(int(deg[s]), 4) and srcs.unique().numel() == srcs.numel()


def test_sampler_all_neighbours():
    data = make_sbm_graph(num_nodes=300, seed=3)
    n_id, ei = NeighborSampler(data.edge_index, data.num_nodes, [-1]).sample(torch.tensor([7]))
    deg = int((data.edge_index[1] == 7).sum())
    assert ei.size(1) == deg and n_id.numel() == deg + 1


def test_loader_covers_all_training_nodes():
    data = make_sbm_graph(num_nodes=400, seed=1)
    loader = NeighborLoader(data, data.train_mask, [3], batch_size=16)
    seen = torch.cat([b.n_id[: b.batch_size] for b in loader])
    assert torch.equal(seen.sort().values, data.train_mask.nonzero().view(-1))
    assert len(loader) == (int(data.train_mask.sum()) + 15) // 16


def test_csr_rows_and_sparse_switch():
    x = torch.zeros(6, 10)
    x[1, 2], x[4, 0], x[4, 4] = 1.0, 2.0, 3.0
    idx = torch.tensor([4, 1, 0])
    assert torch.equal(csr_rows(x.to_sparse_csr(), idx).to_dense(), x[idx])
    assert maybe_sparse(x, "auto").is_sparse_csr  # 5% dense -> sparse
    assert not maybe_sparse(torch.ones(3, 3), "auto").is_sparse_csr


def test_synthetic_is_seeded_and_homophilous():
    a, b = make_sbm_graph(num_nodes=1000, seed=5), make_sbm_graph(num_nodes=1000, seed=5)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    src, dst = a.edge_index
    assert float((a.y[src] == a.y[dst]).float().mean()) > 0.7
    assert not (a.train_mask & a.val_mask).any() and not (a.val_mask & a.test_mask).any()
    assert (torch.bincount(a.y[a.train_mask]) == 20).all()
    assert (src != dst).all()


def test_random_split_per_class():
    y = torch.arange(300) % 3
    tr, va, te = random_split(y, 3, 20, 30, seed=0)
    assert (torch.bincount(y[tr]) == 20).all() and (torch.bincount(y[va]) == 30).all()
    assert int(te.sum()) == 300 - 150
