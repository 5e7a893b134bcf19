from gnnzoo.data.datamodule import FullBatch, GraphDataModule
from gnnzoo.data.datasets import DatasetNotFoundError, GraphData
from gnnzoo.data.graph import graph_spec, load_graph
from gnnzoo.data.sampler import NeighborLoader, NeighborSampler

__all__ = [
    "DatasetNotFoundError",
    "FullBatch",
    "GraphData",
    "GraphDataModule",
    "NeighborLoader",
    "NeighborSampler",
    "graph_spec",
    "load_graph",
]
