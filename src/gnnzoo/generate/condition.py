"""The graph condition of GNN-Diff: a small GNN trained on the task (a two-hop GCN branch, a one-hop GCN
branch and an MLP branch, concatenated and projected to ``dim``), its node embeddings mean-pooled into one
condition vector for the task."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GraphCondition(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, dim: int = 64, hidden: int = 64, dropout: float = 0.1):
        from torch_geometric.nn import GCNConv

        super().__init__()
        self.two = nn.ModuleList([GCNConv(in_channels, hidden), GCNConv(hidden, hidden)])
        self.one = GCNConv(in_channels, hidden)
        self.mlp = nn.Linear(in_channels, hidden)
        self.proj = nn.Linear(3 * hidden, dim)
        self.dec = nn.Linear(dim, num_classes)
        self.dropout = float(dropout)

    def embed(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.dropout(x, self.dropout, self.training)
        a = self.two[1](F.relu(self.two[0](x, edge_index)), edge_index)
        h = torch.cat([a, self.one(x, edge_index), self.mlp(x)], -1)
        return self.proj(F.dropout(F.relu(h), self.dropout, self.training))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.dec(self.embed(x, edge_index))


def condition_vector(
    x: Tensor,
    edge_index: Tensor,
    y: Tensor,
    train_mask: Tensor,
    dim: int,
    steps: int = 200,
    lr: float = 0.01,
    seed: int = 0,
    train_pos: Tensor | None = None,
) -> tuple[Tensor, float]:
    """Train :class:`GraphCondition` on the task and return its mean-pooled node embedding ``[1, dim]`` and its
    final training accuracy: node classification on the training nodes (cross-entropy, full batch), or, given
    ``train_pos`` (link prediction), the inner products of its embeddings on the training edges against as many
    random node pairs (binary cross-entropy; accuracy at 0.5). Never reads validation or test labels or edges."""
    from torch_geometric.utils import negative_sampling

    torch.manual_seed(int(seed))
    x = x.to_dense() if x.layout != torch.strided else x
    model = GraphCondition(x.size(1), int(y.max()) + 1 if train_pos is None else 1, dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)

    def link_logits(h: Tensor) -> tuple[Tensor, Tensor]:
        neg = negative_sampling(edge_index, num_nodes=x.size(0), num_neg_samples=train_pos.size(1))
        pairs = torch.cat([train_pos, neg], dim=1)
        labels = torch.cat([torch.ones(train_pos.size(1)), torch.zeros(neg.size(1))])
        return (h[pairs[0]] * h[pairs[1]]).sum(-1), labels

    for _ in range(int(steps)):
        model.train()
        opt.zero_grad()
        if train_pos is None:
            loss = F.cross_entropy(model(x, edge_index)[train_mask], y[train_mask])
        else:
            logits, labels = link_logits(model.embed(x, edge_index))
            loss = F.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        h = model.embed(x, edge_index)
        if train_pos is None:
            acc = float((model.dec(h)[train_mask].argmax(-1) == y[train_mask]).float().mean())
        else:
            logits, labels = link_logits(h)
            acc = float(((logits > 0).float() == labels).float().mean())
    return h.mean(0, keepdim=True), acc
