"""Uniform neighbour sampling in plain PyTorch.

PyG's ``NeighborLoader`` needs ``pyg-lib`` or ``torch-sparse``, which have no wheels for every
platform. This loader yields the same kind of mini-batch (GraphSAGE-style, ``num_neighbors`` per
hop, sampled without replacement, ``-1`` = all neighbours) with only ``torch`` ops:

* ``n_id``: global ids of the nodes in the subgraph, the ``batch_size`` seed nodes first;
* ``edge_index``: local ids, edges pointing from sampled neighbours to the nodes they were sampled for;
* ``x``, ``y`` gathered for ``n_id``.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data


def csr_rows(x: Tensor, idx: Tensor) -> Tensor:
    """Rows ``idx`` of a sparse CSR matrix, as sparse CSR (``index_select`` is missing for CSR)."""
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    start, end = crow[idx], crow[idx + 1]
    lens = end - start
    new_crow = torch.zeros(idx.numel() + 1, dtype=crow.dtype)
    torch.cumsum(lens, 0, out=new_crow[1:])
    pos = torch.repeat_interleave(start - new_crow[:-1], lens) + torch.arange(int(new_crow[-1]))
    return torch.sparse_csr_tensor(new_crow, col[pos], val[pos], (idx.numel(), x.size(1)))


def gather_rows(x: Tensor, idx: Tensor) -> Tensor:
    return csr_rows(x, idx) if x.is_sparse_csr else x[idx]


class NeighborSampler:
    """Samples ``num_neighbors[h]`` incoming neighbours per node at hop ``h``."""

    def __init__(self, edge_index: Tensor, num_nodes: int, num_neighbors: Sequence[int]):
        src, dst = edge_index
        perm = torch.argsort(dst, stable=True)
        self.col = src[perm]  # neighbours, grouped by target node
        self.rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=self.rowptr[1:])
        self.num_nodes = num_nodes
        self.num_neighbors = [int(k) for k in num_neighbors]

    def sample(self, seeds: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(n_id, edge_index)`` with local ids; ``n_id[:len(seeds)] == seeds``."""
        assoc = torch.full((self.num_nodes,), -1, dtype=torch.long)
        n_id = seeds.clone()
        assoc[n_id] = torch.arange(n_id.numel())
        frontier = n_id
        srcs, dsts = [], []
        for k in self.num_neighbors:
            start = self.rowptr[frontier]
            deg = self.rowptr[frontier + 1] - start
            seg = torch.repeat_interleave(torch.arange(frontier.numel()), deg)
            seg_start = torch.cumsum(deg, 0) - deg
            within = torch.arange(seg.numel()) - seg_start[seg]
            if k >= 0:
                # random order inside each segment, keep the first k: sampling without replacement
                order = torch.argsort(seg.double() + torch.rand(seg.numel(), dtype=torch.double) * 0.5)
                seg, within = seg[order], within[order]
                rank = torch.arange(seg.numel()) - seg_start[seg]
                keep = rank < k
                seg, within = seg[keep], within[keep]
            nbr = self.col[start[seg] + within]
            new = torch.unique(nbr[assoc[nbr] < 0])
            assoc[new] = torch.arange(n_id.numel(), n_id.numel() + new.numel())
            n_id = torch.cat([n_id, new])
            srcs.append(assoc[nbr])
            dsts.append(assoc[frontier[seg]])
            frontier = new
        edge_index = torch.stack([torch.cat(srcs), torch.cat(dsts)]) if srcs else torch.empty(2, 0, dtype=torch.long)
        return n_id, edge_index


class NeighborLoader:
    """Mini-batches of seed nodes (shuffled each epoch) with their sampled neighbourhoods."""

    def __init__(
        self,
        data: Data,
        input_nodes: Tensor,
        num_neighbors: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.data = data
        self.input_nodes = input_nodes.nonzero().view(-1) if input_nodes.dtype == torch.bool else input_nodes
        self.sampler = NeighborSampler(data.edge_index, data.num_nodes, num_neighbors)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def __len__(self) -> int:
        per_rank = (self.input_nodes.numel() + self.world_size - 1) // self.world_size
        return (per_rank + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Data]:
        nodes = self.input_nodes
        if self.shuffle:
            if self.world_size > 1:  # same permutation on every rank, then each takes its share
                g = torch.Generator().manual_seed(self.epoch)
                nodes = nodes[torch.randperm(nodes.numel(), generator=g)]
            else:
                nodes = nodes[torch.randperm(nodes.numel())]
        self.epoch += 1
        if self.world_size > 1:
            nodes = nodes[self.rank :: self.world_size]
        for i in range(0, nodes.numel(), self.batch_size):
            seeds = nodes[i : i + self.batch_size]
            n_id, edge_index = self.sampler.sample(seeds)
            yield Data(
                x=gather_rows(self.data.x, n_id),
                y=self.data.y[n_id],
                edge_index=edge_index,
                n_id=n_id,
                batch_size=seeds.numel(),
                num_nodes=n_id.numel(),
            )
