"""Graph partitions for Partition Learned Souping: METIS (pymetis) balanced on the fit nodes, or random."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

log = logging.getLogger("gnnzoo")
METHODS = ("metis", "random")


def metis_parts(
    edge_index: Tensor, num_nodes: int, num_parts: int, balance: Tensor | None = None, seed: int = 0
) -> Tensor:
    """Part id per node. With ``balance`` (a node mask), every part gets about the same number of those
    nodes (METIS multi-constraint: weights (1, is_balance_node))."""
    import pymetis

    src, dst = edge_index
    keep = src != dst
    src, dst = src[keep], dst[keep]
    key = torch.unique(torch.cat([src * num_nodes + dst, dst * num_nodes + src]))
    s, d = key // num_nodes, key % num_nodes  # symmetric, sorted by source, no duplicates
    xadj = torch.zeros(num_nodes + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(s, minlength=num_nodes), 0, out=xadj[1:])
    # int32 arrays are METIS's own index type, which pymetis reads without a copy (the xadj=/adjncy= keyword
    # form used before is deprecated, its removal announced for 2027)
    if int(xadj[-1]) >= 2**31:
        raise ValueError(
            f"METIS indexes with int32 and this graph has {int(xadj[-1])} directed edges; "
            "use soup.params.partition=random"
        )
    idx = torch.int32
    adjacency = pymetis.CSRAdjacency(adj_starts=xadj.to(idx).numpy(), adjacent=d.to(idx).numpy())
    opts = pymetis.Options(seed=int(seed))
    kwargs = {}
    if balance is not None:
        kwargs["vweights"] = torch.stack([torch.ones(num_nodes, dtype=idx), balance.to(idx)], 1).reshape(-1).numpy()
    try:
        _, membership = pymetis.part_graph(int(num_parts), adjacency=adjacency, options=opts, **kwargs)
    except Exception as e:  # e.g. a METIS build without multi-constraint support
        log.warning("METIS with fit-node balancing failed (%s); partitioning without it", e)
        _, membership = pymetis.part_graph(int(num_parts), adjacency=adjacency, options=opts)
    return torch.as_tensor(membership, dtype=torch.long)


def random_parts(num_nodes: int, num_parts: int, balance: Tensor | None = None, seed: int = 0) -> Tensor:
    """Random balanced assignment (fit nodes dealt round-robin first, then the rest)."""
    g = torch.Generator().manual_seed(int(seed))
    parts = torch.empty(num_nodes, dtype=torch.long)
    groups = (
        [balance.nonzero().view(-1), (~balance).nonzero().view(-1)]
        if balance is not None
        else [torch.arange(num_nodes)]
    )
    for nodes in groups:
        nodes = nodes[torch.randperm(nodes.numel(), generator=g)]
        parts[nodes] = torch.arange(nodes.numel()) % num_parts
    return parts


def make_parts(
    method: str, edge_index: Tensor, num_nodes: int, num_parts: int, balance: Tensor | None, seed: int
) -> Tensor:
    """Part id per node, ids 0..P-1 with no empty part (P <= ``num_parts``: METIS may leave parts empty).

    ``num_parts`` may not exceed the number of ``balance`` (fit) nodes: a part without any would give its
    steps no loss, and METIS, asked for more parts than it can fill, degenerates."""
    if method not in METHODS:
        raise ValueError(f"soup.params.partition must be one of {', '.join(METHODS)}, got {method!r}")
    limit, what = (int(balance.sum()), "fit (validation) nodes") if balance is not None else (num_nodes, "nodes")
    if not 1 <= int(num_parts) <= limit:
        raise ValueError(
            f"soup.params.num_parts must be in [1, {limit}] (the graph has {limit} {what}, and every "
            f"part needs some), got {num_parts}"
        )
    parts = None
    if method == "metis":
        try:
            parts = metis_parts(edge_index, num_nodes, num_parts, balance, seed)
        except ImportError:
            log.warning("pymetis is not installed: random partitions instead of METIS")
    if parts is None:
        parts = random_parts(num_nodes, num_parts, balance, seed)
    used, parts = torch.unique(parts, return_inverse=True)
    if used.numel() < int(num_parts):
        log.warning(
            "METIS left %d of %d parts empty: using the %d non-empty ones",
            int(num_parts) - used.numel(),
            int(num_parts),
            used.numel(),
        )
    return parts


class PartitionSchedule:
    """Yields the induced subgraph of R parts per step, cycling through a shuffled order of all K parts,
    so every ceil(K / R) consecutive steps cover every node (ClusterGCN-style: cut edges dropped)."""

    def __init__(self, parts: Tensor, edge_index: Tensor, parts_per_step: int, seed: int = 0):
        self.parts = parts
        self.num_parts = int(parts.max()) + 1
        if not 1 <= parts_per_step <= self.num_parts:
            raise ValueError(f"soup.num_parts_per_step must be in [1, {self.num_parts}], got {parts_per_step}")
        self.r = int(parts_per_step)
        self.edge_index = edge_index
        self.g = torch.Generator().manual_seed(int(seed))
        self.queue: list[int] = []
        self.n = parts.numel()

    def take(self) -> list[int]:
        """The next R part ids of the shuffled cycle."""
        if len(self.queue) < self.r:
            self.queue += torch.randperm(self.num_parts, generator=self.g).tolist()
        chosen, self.queue = self.queue[: self.r], self.queue[self.r :]
        return chosen

    def subgraph(self, chosen: list[int]) -> tuple[Tensor, Tensor]:
        inside = torch.isin(self.parts, torch.tensor(chosen))
        nodes = inside.nonzero().view(-1)
        assoc = torch.full((self.n,), -1, dtype=torch.long)
        assoc[nodes] = torch.arange(nodes.numel())
        src, dst = self.edge_index
        keep = inside[src] & inside[dst]
        return nodes, torch.stack([assoc[src[keep]], assoc[dst[keep]]])

    def next(self) -> tuple[Tensor, Tensor]:
        return self.subgraph(self.take())
