"""The graph condition of GNN-Diff: a small GNN trained on the task (a two-hop GCN branch, a one-hop GCN
branch and an MLP branch, concatenated and projected to ``dim``), its node embeddings mean-pooled into one
condition vector for the task.

The three branches' first linear maps read the node features once, as one ``[F, 3H]`` map, and the features stay
in gnnzoo's sparse CSR form (dropout on the stored values only): on Cora a dense 2708 x 1433 copy cost most of
the stage (``benchmarks/results/generate_condition.md``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnzoo.backbones.models import dropout_input, sparse_linear


def normalized_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a sparse CSR matrix (GCN's propagation), built once per graph."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
    return torch.sparse_coo_tensor(ei.flip(0), w, (num_nodes, num_nodes)).coalesce().to_sparse_csr()


class GraphCondition(nn.Module):
    """Args:
        in_channels: node features F; num_classes: the decoder's outputs (1 for link prediction);
        dim: the condition's width; hidden: each branch's width H; dropout: on the input and the hidden layer.

    Shapes:
        embed: x [N, F] (dense or CSR), adj [N, N] (:func:`normalized_adjacency`) -> [N, dim]
    """

    def __init__(self, in_channels: int, num_classes: int, dim: int = 64, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.hidden = int(hidden)
        self.lin_in = nn.Linear(in_channels, 3 * hidden, bias=False)  # two-hop, one-hop and MLP first maps
        self.bias_in = nn.Parameter(torch.zeros(3 * hidden))
        self.lin_two = nn.Linear(hidden, hidden)  # the two-hop branch's second GCN layer
        self.proj = nn.Linear(3 * hidden, dim)
        self.dec = nn.Linear(dim, num_classes)
        self.dropout = float(dropout)

    def embed(self, x: Tensor, adj: Tensor) -> Tensor:
        h = sparse_linear(dropout_input(x, self.dropout, self.training), self.lin_in.weight)
        two, one, mlp = h.split(self.hidden, dim=-1)
        b_two, b_one, b_mlp = self.bias_in.split(self.hidden)
        a = torch.sparse.mm(adj, F.relu(torch.sparse.mm(adj, two) + b_two))
        a = torch.sparse.mm(adj, self.lin_two(a) - self.lin_two.bias) + self.lin_two.bias  # GCN: A (h W) + b
        h = torch.cat([a, torch.sparse.mm(adj, one) + b_one, mlp + b_mlp], -1)
        return self.proj(F.dropout(F.relu(h), self.dropout, self.training))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        return self.dec(self.embed(x, adj))


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
    adj = normalized_adjacency(edge_index, x.size(0))
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
            loss = F.cross_entropy(model(x, adj)[train_mask], y[train_mask])
        else:
            logits, labels = link_logits(model.embed(x, adj))
            loss = F.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        h = model.embed(x, adj)
        if train_pos is None:
            acc = float((model.dec(h)[train_mask].argmax(-1) == y[train_mask]).float().mean())
        else:
            logits, labels = link_logits(h)
            acc = float(((logits > 0).float() == labels).float().mean())
    return h.mean(0, keepdim=True), acc
