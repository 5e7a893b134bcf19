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
) -> tuple[Tensor, float]:
    """Train :class:`GraphCondition` on the training nodes (cross-entropy, full batch) and return its mean-pooled
    node embedding ``[1, dim]`` and its final training accuracy. Never reads validation or test labels."""
    torch.manual_seed(int(seed))
    x = x.to_dense() if x.layout != torch.strided else x
    model = GraphCondition(x.size(1), int(y.max()) + 1, dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
    for _ in range(int(steps)):
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(x, edge_index)[train_mask], y[train_mask])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        h = model.embed(x, edge_index)
        acc = float((model.dec(h)[train_mask].argmax(-1) == y[train_mask]).float().mean())
    return h.mean(0, keepdim=True), acc
