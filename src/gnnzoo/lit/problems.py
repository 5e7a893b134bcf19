"""The LightningModules of link prediction and graph classification (node classification: BackboneModule).

Both keep BackboneModule's contract with the rest of gnnzoo: ``backbone`` is the whole model (its state dict is the
checkpoint), ``last_eval`` holds the epoch's ``val/*`` and ``test/*`` metrics for the recorder, training stops on a
non-finite loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnzoo.data.links import hits_at_k, train_negatives
from gnnzoo.lit.backbone_module import BackboneModule


def link_metrics(logits: Tensor, labels: Tensor, k: int) -> dict[str, float]:
    """AUC, AP, Hits@K and accuracy at probability 0.5 (logit 0) of scored node pairs (labels 1. / 0.)."""
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    target = labels.long()
    pos, neg = logits[target == 1], logits[target == 0]
    return {
        "loss": float(F.binary_cross_entropy_with_logits(logits, labels)),
        "auc": float(binary_auroc(logits, target)),
        "ap": float(binary_average_precision(logits, target)),
        f"hits@{k}": hits_at_k(pos, neg, k),
        "acc": float(((logits > 0).long() == target).float().mean()),
    }


def link_loss(model, z: Tensor, data, neg_ratio: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, logits, labels) of a link predictor's node embeddings ``z``: binary cross-entropy of the training edges
    against ``neg_ratio`` times as many node pairs drawn at random."""
    pos = data.train_pos
    neg = train_negatives(data, max(1, int(round(pos.size(1) * neg_ratio))))
    logits = model.score(z, torch.cat([pos, neg], dim=1))
    labels = torch.cat([logits.new_ones(pos.size(1)), logits.new_zeros(neg.size(1))])
    return F.binary_cross_entropy_with_logits(logits, labels), logits, labels


def train_loss(model, out: Tensor, data) -> Tensor:
    """The training loss of a model's full-graph output ``out``: cross-entropy on the training nodes, or, for a
    link predictor (``out``: node embeddings), :func:`link_loss`. For code that trains outside the
    LightningModules (GNN-Diff's collection, FastGLT's edge regrowth)."""
    if hasattr(model, "score"):
        return link_loss(model, out, data)[0]
    return F.cross_entropy(out[data.train_mask], data.y[data.train_mask])


def split_metric(model, out: Tensor, data, split: str) -> float:
    """The selection metric of ``out`` on a split (``val`` / ``test``): accuracy, or AUC for a link predictor."""
    if hasattr(model, "score"):
        from torchmetrics.functional.classification import binary_auroc

        logits = model.score(out, data[f"{split}_edges"])
        return float(binary_auroc(logits, data[f"{split}_labels"].long()))
    mask = data[f"{split}_mask"]
    return float((out[mask].argmax(-1) == data.y[mask]).float().mean())


class LinkModule(BackboneModule):
    """Trains a :class:`~gnnzoo.backbones.heads.LinkModel` on the training edges of a split graph
    (:func:`gnnzoo.data.links.split_edges`): every step embeds the nodes over the message-passing edges, scores
    the training edges and ``neg_ratio`` times as many node pairs drawn anew, and takes binary cross-entropy.
    Evaluation scores the validation and test edges (with their fixed negatives): ``{val,test}/{loss, auc, ap,
    hits@K, acc}``.

    Args:
        hits_k: K of Hits@K.
        neg_ratio: training negatives per training edge.
        (the rest as :class:`BackboneModule`)
    """

    def __init__(self, *args, hits_k: int = 20, neg_ratio: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.hits_k = int(hits_k)
        self.neg_ratio = float(neg_ratio)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        loss, logits, labels = link_loss(self.backbone, self.forward(batch.x, batch.edge_index), batch, self.neg_ratio)
        self._tally(loss, float(((logits > 0).float() == labels).sum()), labels.numel())
        regularizer = getattr(self.masker, "regularizer", None)  # a ticket's UGS penalties
        return loss + regularizer() if regularizer is not None else loss

    def _evaluate(self, batch) -> dict[str, float]:
        z = self.forward(batch.x, batch.edge_index)
        res = {}
        for split in ("val", "test"):
            scores = self.backbone.score(z, batch[f"{split}_edges"])
            for name, value in link_metrics(scores, batch[f"{split}_labels"], self.hits_k).items():
                res[f"{split}/{name}"] = value
        return res


class GraphModule(BackboneModule):
    """Trains a :class:`~gnnzoo.backbones.heads.GraphModel` on mini-batches of the training graphs (cross-entropy
    per graph); evaluation is one forward over the union of all graphs (``batch``, ``num_graphs``), read through
    the fold's graph masks: ``{val,test}/{loss, acc}``."""

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None, num_graphs: int | None = None):
        if self.masker is not None:  # a ticket's weight masks (graph classification prunes no edges)
            return self.masker(self.backbone, x, edge_index, batch=batch, num_graphs=num_graphs)
        return self.backbone(x, edge_index, batch, num_graphs)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        out = self.forward(batch.x, batch.edge_index, batch.batch, batch.num_graphs)
        loss = F.cross_entropy(out, batch.y)
        self._tally(loss, float((out.argmax(-1) == batch.y).sum()), batch.y.numel())
        regularizer = getattr(self.masker, "regularizer", None)
        return loss + regularizer() if regularizer is not None else loss

    def _evaluate(self, batch) -> dict[str, float]:
        out = self.forward(batch.x, batch.edge_index, batch.batch, int(batch.y.numel()))
        pred, y = out.argmax(-1), batch.y
        res = {}
        for split, mask in (("val", batch.val_mask), ("test", batch.test_mask)):
            res[f"{split}/loss"] = float(F.cross_entropy(out[mask], y[mask])) if mask.any() else float("nan")
            res[f"{split}/acc"] = self.metric(pred[mask], y[mask])
        return res
