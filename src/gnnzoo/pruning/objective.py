"""The losses the edge criteria differentiate, per problem: node classification scores nodes, link prediction
scores the training edges (message-passing edges are what is pruned; supervision and evaluation edges never are).

* :func:`self_loss` (one-shot edge saliency): the model against its own predictions, no label read;
* :func:`train_loss` (FastGLT's edge regrowth): the training objective on the training labels / edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def self_loss(model: nn.Module, out: Tensor, data) -> Tensor:
    """Cross-entropy of ``out`` (the model's output on every node) against its own predictions: node classes, or,
    for a link predictor, its own edge / non-edge calls on the training edges."""
    if hasattr(model, "score"):  # a link predictor: out is node embeddings
        logits = model.score(out, data.train_pos)
        return F.binary_cross_entropy_with_logits(logits, (logits > 0).float().detach())
    return F.cross_entropy(out, out.argmax(-1).detach())


def train_loss(model: nn.Module, out: Tensor, data) -> Tensor:
    """The training loss of ``out``: cross-entropy on the training nodes, or, for a link predictor, binary
    cross-entropy of the training edges against as many node pairs drawn at random."""
    if hasattr(model, "score"):
        from gnnzoo.data.links import train_negatives

        pos = data.train_pos
        neg = train_negatives(data, pos.size(1))
        logits = model.score(out, torch.cat([pos, neg], dim=1))
        labels = torch.cat([logits.new_ones(pos.size(1)), logits.new_zeros(neg.size(1))])
        return F.binary_cross_entropy_with_logits(logits, labels)
    return F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
