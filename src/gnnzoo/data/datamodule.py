"""GraphDataModule: full-batch training for small graphs, neighbour-sampled mini-batches for large ones."""

from __future__ import annotations

from typing import Iterator, Sequence

import pytorch_lightning as pl
from torch_geometric.data import Data

from gnnzoo.data.datasets import GraphData
from gnnzoo.data.sampler import NeighborLoader


class FullBatch:
    """A 'loader' that yields the whole graph once per epoch (no collation, no workers)."""

    def __init__(self, data: Data):
        self.data = data

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Data]:
        yield self.data


class GraphDataModule(pl.LightningDataModule):
    """Serves one node-classification graph.

    ``batch_size=None`` trains full-batch; an integer trains on neighbour-sampled mini-batches of
    that many training nodes (``num_neighbors`` per hop). Validation and test always run one
    full-graph forward, so every model is evaluated on the same full neighbourhoods.
    """

    def __init__(
        self,
        graph: GraphData,
        batch_size: int | None = None,
        num_neighbors: Sequence[int] = (10, 10),
        shuffle: bool = True,
    ):
        super().__init__()
        if batch_size is not None and int(batch_size) <= 0:
            raise ValueError(f"data.batch_size must be a positive integer or null (full batch), got {batch_size}")
        self.graph = graph
        self.batch_size = batch_size
        self.num_neighbors = list(num_neighbors)
        self.shuffle = shuffle
        self._full = FullBatch(graph.data)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        # Lightning's default walks every attribute of a Data object even when nothing moves.
        if device.type == "cpu" and batch.x.device.type == "cpu":
            return batch
        return batch.to(device)

    def train_dataloader(self):
        if self.batch_size is None:
            return self._full
        d = self.graph.data
        t = self.trainer
        rank, world = (t.global_rank, t.world_size) if t is not None else (0, 1)
        return NeighborLoader(d, d.train_mask, self.num_neighbors, self.batch_size, self.shuffle, rank, world)

    def val_dataloader(self):
        return self._full

    def test_dataloader(self):
        return self._full


class GraphSetDataModule(GraphDataModule):
    """Serves a graph dataset (graph classification): shuffled mini-batches of the fold's training graphs;
    validation and test are one forward over the union of all graphs (read through the fold's masks)."""

    def __init__(self, graph: GraphData, batch_size: int = 32, shuffle: bool = True):
        if graph.graphs is None:
            raise ValueError(f"{graph.name} is one graph, not a set of graphs (graph classification needs one)")
        if int(batch_size) <= 0:
            raise ValueError(f"problem.batch_size must be a positive integer, got {batch_size}")
        super().__init__(graph, batch_size=int(batch_size), shuffle=shuffle)

    def train_dataloader(self):
        from torch_geometric.loader import DataLoader

        idx = self.graph.data.train_mask.nonzero().view(-1).tolist()
        return DataLoader([self.graph.graphs[i] for i in idx], batch_size=self.batch_size, shuffle=self.shuffle)
