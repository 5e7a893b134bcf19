"""The losses the edge criteria differentiate, per problem: node classification scores nodes, link prediction
scores the training edges (message-passing edges are what is pruned; supervision and evaluation edges never are).

* :func:`self_loss` (one-shot edge saliency): the model against its own predictions, no label read;
* FastGLT's edge regrowth differentiates the training objective, :func:`gnnzoo.lit.problems.train_loss`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def self_loss(model: nn.Module, out: Tensor, data) -> Tensor:
    """Cross-entropy of ``out`` (the model's output on every node) against its own predictions: node classes, or,
    for a link predictor, its own edge / non-edge calls on the training edges."""
    if hasattr(model, "score"):  # a link predictor: out is node embeddings
        logits = model.score(out, data.train_pos)
        return F.binary_cross_entropy_with_logits(logits, (logits > 0).float().detach())
    return F.cross_entropy(out, out.argmax(-1).detach())
