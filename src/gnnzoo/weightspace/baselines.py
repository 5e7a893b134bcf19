"""The baselines every encoder table carries (``encoder=stat | hparams | probe | flat_mlp``): vectors per checkpoint
(cached with the dataset) or flattened parameters -> MLP. See :mod:`gnnzoo.weightspace.models` for the neural-graph
encoders."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch

from gnnzoo.weightspace.models import _mlp

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


STAT_GROUPS = 5  # weights, root weights, biases, att_src, att_dst
STAT_WIDTH = STAT_GROUPS * (2 + len(QUANTILES))  # per weight layer


def layer_statistics(batch, max_layers: int) -> Tensor:
    """Per graph and per weight layer: [mean, std, quantiles] of the weights (both edge channels) and of the
    biases and attention vectors of its output neurons; layers beyond a graph's depth are zeros.
    ``[graphs, max_layers * 5 * 7]``."""
    b_edge = (
        batch.batch[batch.edge_index[1]]
        if getattr(batch, "batch", None) is not None
        else torch.zeros_like(batch.edge_layer)
    )
    b_node = batch.batch if getattr(batch, "batch", None) is not None else torch.zeros_like(batch.node_layer)
    g = int(b_node.max()) + 1
    feats = torch.zeros(g, max_layers, STAT_GROUPS * (2 + len(QUANTILES)))
    for gi in range(g):
        em, nm = b_edge == gi, b_node == gi
        layers_e, attr = batch.edge_layer[em], batch.edge_attr[em]
        layers_n, xs = batch.node_layer[nm], batch.x[nm]
        neuron = batch.node_kind[nm] != 3
        for a in range(min(int(layers_e.max()) + 1, max_layers)):
            parts = []
            out = (layers_n == a + 1) & neuron
            for v in (attr[layers_e == a, 0], attr[layers_e == a, 1], xs[out, 0], xs[out, 2], xs[out, 3]):
                v = v.float()
                parts.append(
                    torch.cat(
                        [v.mean().view(1), v.std(unbiased=False).view(1), torch.quantile(v, torch.tensor(QUANTILES))]
                    )
                    if v.numel()
                    else torch.zeros(2 + len(QUANTILES))
                )
            feats[gi, a] = torch.cat(parts)
    return feats.view(g, -1)


STAT_LAYERS = 8  # weight layers the cached statistics cover (zeros beyond a checkpoint's depth)


class _VectorBaseline(nn.Module):
    """A feature vector per checkpoint (cached with the dataset: ``batch.<field>`` of shape ``[G, d_in]``) ->
    normalisation -> MLP. The baselines every encoder table carries."""

    field: str = ""
    reads: tuple[str, ...] = ()

    def __init__(self, d_in: int, d: int = 64, dropout: float = 0.0, d_out: int = 1):
        super().__init__()
        self.norm = nn.BatchNorm1d(d_in, affine=False)
        self.body = _mlp(d_in, d, d, layers=2, dropout=dropout)
        self.head = nn.Linear(d, d_out)
        self.embed_dim = d

    def features(self, batch: Batch) -> Tensor:
        v = getattr(batch, self.field, None)
        if v is None:
            raise ValueError(
                f"{type(self).__name__} reads the cached `{self.field}` features of a checkpoint (ZooGraphs with "
                f"features=[{self.field}]); this batch has none"
            )
        return v.view(v.size(0), -1)

    def embed(self, batch: Batch) -> Tensor:
        return F.silu(self.body(self.norm(self.features(batch))))

    def forward(self, batch: Batch) -> Tensor:
        return self.head(self.embed(batch)).squeeze(-1)


class StatNN(_VectorBaseline):
    """Statistics baseline (StatNN-style): per-layer statistics of the raw weights (:func:`layer_statistics`,
    computed once per checkpoint and cached as ``batch.stats``; computed from the graph when a batch has none)
    -> MLP.

    Args:
        max_layers: weight layers read (at most :data:`STAT_LAYERS`); d: MLP width; dropout; d_out.

    Shapes:
        - **input:** a ``Batch`` of ``G`` checkpoints
        - **output:** ``forward -> [G]``; ``embed -> [G, d]``
    """

    field = "stats"
    reads = ("stats",)

    def __init__(self, max_layers: int = STAT_LAYERS, d: int = 64, dropout: float = 0.0, d_out: int = 1):
        if not 1 <= max_layers <= STAT_LAYERS:
            raise ValueError(f"stat: max_layers={max_layers} must be in 1..{STAT_LAYERS}")
        self.max_layers = max_layers
        super().__init__(max_layers * STAT_WIDTH, d, dropout, d_out)

    def features(self, batch: Batch) -> Tensor:
        v = getattr(batch, "stats", None)
        if v is None:
            v = layer_statistics(batch, STAT_LAYERS)
        return v.view(v.size(0), STAT_LAYERS, STAT_WIDTH)[:, : self.max_layers].reshape(v.size(0), -1)


class HParamsNN(_VectorBaseline):
    """Hyperparameters-only floor: the training configuration and the checkpoint's epoch
    (:func:`gnnzoo.weightspace.features.hparam_features`, ``batch.hparams``) -> MLP. An encoder that does not
    beat it reads nothing from the weights.

    Shapes: as :class:`StatNN`.
    """

    field = "hparams"
    reads = ("hparams",)

    def __init__(self, d: int = 64, dropout: float = 0.0, d_out: int = 1):
        from gnnzoo.weightspace.features import HPARAM_DIM

        super().__init__(HPARAM_DIM, d, dropout, d_out)


class ProbeNN(nn.Module):
    """Probing baseline (in the spirit of ProbeGen): the checkpoint run on a fixed, seeded sample of its
    dataset's nodes (:func:`gnnzoo.weightspace.features.probe_features`, ``batch.probe``); each node's
    class-order-free output summary (sorted top softmax probabilities, normalised entropy, logit spread) goes
    through a shared MLP, mean- and max-pooled over the nodes (a set: any dataset, any number of classes),
    joined with the sorted class histogram of the predictions -> MLP.

    Shapes:
        - **input:** a ``Batch`` with ``probe [G, P * PROBE_NODE_DIM + PROBE_GLOBAL_DIM]``
        - **output:** ``forward -> [G]``; ``embed -> [G, d]``
    """

    reads = ("probe",)

    def __init__(self, d: int = 64, dropout: float = 0.0, d_out: int = 1):
        super().__init__()
        from gnnzoo.weightspace.features import PROBE_GLOBAL_DIM, PROBE_NODE_DIM

        self.node_dim, self.global_dim = PROBE_NODE_DIM, PROBE_GLOBAL_DIM
        self.node_norm = nn.LayerNorm(PROBE_NODE_DIM, elementwise_affine=False)
        self.phi = _mlp(PROBE_NODE_DIM, d, d, layers=2, dropout=dropout)
        self.body = _mlp(2 * d + PROBE_GLOBAL_DIM, d, d, layers=2, dropout=dropout)
        self.head = nn.Linear(d, d_out)
        self.embed_dim = d

    def embed(self, batch: Batch) -> Tensor:
        v = getattr(batch, "probe", None)
        if v is None:
            raise ValueError("ProbeNN reads the cached `probe` features (ZooGraphs with features=[probe])")
        g = v.size(0)
        nodes = v[:, : v.size(1) - self.global_dim].reshape(g, -1, self.node_dim)
        h = self.phi(nodes)
        pooled = torch.cat([h.mean(1), h.amax(1), v[:, v.size(1) - self.global_dim :]], -1)
        return F.silu(self.body(pooled))

    def forward(self, batch: Batch) -> Tensor:
        return self.head(self.embed(batch)).squeeze(-1)


class FlatMLP(nn.Module):
    """Flattened parameters (weights, both edge channels, and biases) -> MLP; one architecture per zoo.

    Args:
        num_params: the length of the flattened vector (one architecture); d: MLP width; dropout; d_out.

    Shapes:
        - **input:** a ``Batch`` of ``G`` neural graphs of one architecture
        - **output:** ``forward -> [G]``; ``embed -> [G, d]``
    """

    reads = ("graph",)

    def __init__(self, num_params: int, d: int = 64, dropout: float = 0.0, d_out: int = 1):
        super().__init__()
        self.num_params = num_params
        self.norm = nn.BatchNorm1d(num_params, affine=False)
        self.body = _mlp(num_params, d, d, layers=2, dropout=dropout)
        self.head = nn.Linear(d, d_out)
        self.embed_dim = d

    def flatten(self, batch) -> Tensor:
        b_node = batch.batch if getattr(batch, "batch", None) is not None else torch.zeros_like(batch.node_layer)
        b_edge = b_node[batch.edge_index[1]]
        g = int(b_node.max()) + 1
        rows = [
            torch.cat([batch.edge_attr[b_edge == i].reshape(-1), batch.x[b_node == i].reshape(-1)]) for i in range(g)
        ]
        if any(r.numel() != self.num_params for r in rows):
            raise ValueError(
                f"flat_mlp reads one architecture: this encoder takes {self.num_params} parameters, a "
                f"checkpoint has {sorted({r.numel() for r in rows})}; use ng_gnn or stat for mixed zoos"
            )
        return torch.stack(rows)

    def embed(self, batch: Batch) -> Tensor:
        return F.silu(self.body(self.norm(self.flatten(batch))))

    def forward(self, batch: Batch) -> Tensor:
        return self.head(self.embed(batch)).squeeze(-1)
