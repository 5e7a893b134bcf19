from gnnzoo.data.datamodule import FullBatch, GraphDataModule
from gnnzoo.data.datasets import DatasetNotFoundError, GraphData
from gnnzoo.data.sampler import NeighborLoader, NeighborSampler

__all__ = ["DatasetNotFoundError", "FullBatch", "GraphData", "GraphDataModule", "NeighborLoader", "NeighborSampler"]
