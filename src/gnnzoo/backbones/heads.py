"""What a backbone becomes for each problem: itself (node classification), a link predictor, a graph classifier.

A backbone maps nodes to ``out_channels`` values. For link prediction those are node embeddings that a decoder
scores in pairs (:class:`LinkModel`); for graph classification a readout pools them per graph and a linear head
classifies the graph (:class:`GraphModel`). Either is one ``nn.Module`` whose state dict is the whole checkpoint
(``gnn.*`` the backbone's, then the decoder's or the head's), so the zoo, soups and the encoders see every
parameter the prediction depends on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_mean_pool

from gnnzoo.backbones.models import ACTS

DECODERS = ("dot", "mlp")
READOUTS = {"sum": global_add_pool, "mean": global_mean_pool}


class DotDecoder(nn.Module):
    """Inner-product decoder (GAE): the logit of edge (u, v) is ``z_u · z_v``. No parameters.

    Shapes:
        z [N, D], pairs [2, P] -> logits [P]
    """

    def forward(self, z: Tensor, pairs: Tensor) -> Tensor:
        return (z[pairs[0]] * z[pairs[1]]).sum(-1)


class MLPDecoder(nn.Module):
    """Two-layer MLP on the Hadamard product ``z_u ⊙ z_v`` (symmetric in u and v, as OGB's link baselines).

    Args:
        channels: the embedding width D.
        dropout: dropout before each layer (training only).

    Shapes:
        z [N, D], pairs [2, P] -> logits [P]
    """

    def __init__(self, channels: int, dropout: float = 0.0):
        super().__init__()
        self.lin1 = nn.Linear(channels, channels)
        self.lin2 = nn.Linear(channels, 1)
        self.dropout = float(dropout)

    def forward(self, z: Tensor, pairs: Tensor) -> Tensor:
        h = z[pairs[0]] * z[pairs[1]]
        h = torch.relu(self.lin1(nn.functional.dropout(h, self.dropout, self.training)))
        return self.lin2(nn.functional.dropout(h, self.dropout, self.training)).view(-1)


class LinkModel(nn.Module):
    """A backbone that embeds nodes and a decoder that scores node pairs.

    Args:
        gnn: a backbone (``forward(x, edge_index, edge_weight=None) -> [N, D]``).
        decoder: ``"dot"`` or ``"mlp"``.

    Shapes:
        forward: x [N, F], edge_index [2, E] -> z [N, D] (with pairs [2, P]: logits [P]);
        score: z [N, D], pairs [2, P] -> logits [P]
    """

    def __init__(self, gnn: nn.Module, decoder: str = "dot", dropout: float = 0.0):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"problem.decoder={decoder!r}: expected one of {', '.join(DECODERS)}")
        self.gnn = gnn
        self.decoder = DotDecoder() if decoder == "dot" else MLPDecoder(gnn.out_channels, dropout)
        self.out_channels = gnn.out_channels

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None, pairs: Tensor | None = None
    ) -> Tensor:
        """Node embeddings, or (``pairs`` given) the pairs' logits: one call for ``torch.func.functional_call``."""
        z = self.gnn(x, edge_index, edge_weight)
        return z if pairs is None else self.decoder(z, pairs)

    def score(self, z: Tensor, pairs: Tensor) -> Tensor:
        return self.decoder(z, pairs)


class GraphModel(nn.Module):
    """A backbone over the nodes, then activation, a readout per graph, dropout and a linear classifier.

    Args:
        gnn: a backbone whose ``out_channels`` is the node embedding width D.
        num_classes: graph classes C.
        readout: ``"sum"`` (GIN's) or ``"mean"``.
        dropout: before the classifier (training only).
        act: the activation applied to the node embeddings before the readout.

    Shapes:
        x [N, F], edge_index [2, E], batch [N] (graph of each node) -> logits [G, C]
    """

    def __init__(self, gnn: nn.Module, num_classes: int, readout: str = "sum", dropout: float = 0.5, act: str = "relu"):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"problem.readout={readout!r}: expected one of {', '.join(READOUTS)}")
        self.gnn = gnn
        self.readout = readout
        self.act = ACTS[act]()
        self.dropout = float(dropout)
        self.head = nn.Linear(gnn.out_channels, int(num_classes))
        self.out_channels = int(num_classes)

    def forward(
        self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int | None = None, edge_weight=None
    ) -> Tensor:
        h = self.act(self.gnn(x, edge_index, edge_weight))
        pooled = READOUTS[self.readout](h, batch, size=num_graphs)
        return self.head(nn.functional.dropout(pooled, self.dropout, self.training))


def for_problem(gnn: nn.Module, problem: dict | None, num_classes: int) -> nn.Module:
    """The model a problem trains around ``gnn`` (``problem``: the resolved ``problem`` config, None = node)."""
    name = (problem or {}).get("name", "node")
    if name == "node":
        return gnn
    if name == "link":
        return LinkModel(gnn, problem.get("decoder", "dot"), float(problem.get("decoder_dropout", 0.0)))
    if name == "graph":
        return GraphModel(
            gnn,
            num_classes,
            problem.get("readout", "sum"),
            float(problem.get("head_dropout", 0.5)),
            getattr(gnn, "act_name", "relu"),
        )
    raise ValueError(f"problem.name={name!r}: expected node, link or graph")
