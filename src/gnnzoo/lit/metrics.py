"""Node-classification metrics: accuracy, or ogb's Evaluator for OGB datasets."""

from __future__ import annotations

from typing import Callable

from torch import Tensor


def make_metric(kind: str, num_classes: int, ogb_name: str | None = None) -> Callable[[Tensor, Tensor], float]:
    """Return ``metric(logits_or_pred, y) -> float`` (accuracy in [0, 1])."""
    if kind == "acc":

        def acc(pred: Tensor, y: Tensor) -> float:
            if pred.dim() == 2:
                pred = pred.argmax(-1)
            if y.numel() == 0:
                return float("nan")
            # micro accuracy is the fraction of correct predictions; computed directly, since torchmetrics'
            # multiclass_accuracy (same value) cost ~0.1 ms per call, twice per epoch
            return float((pred == y).sum()) / y.numel()

        return acc
    if kind == "ogb":
        from ogb.nodeproppred import Evaluator

        evaluator = Evaluator(ogb_name)

        def ogb_acc(pred: Tensor, y: Tensor) -> float:
            if pred.dim() == 2:
                pred = pred.argmax(-1)
            out = evaluator.eval({"y_true": y.view(-1, 1).cpu(), "y_pred": pred.view(-1, 1).cpu()})
            return float(out[evaluator.eval_metric])

        return ogb_acc
    raise ValueError(f"unknown metric kind {kind!r}; use 'acc' or 'ogb'")
