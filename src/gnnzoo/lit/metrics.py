"""Node-classification metrics: torchmetrics accuracy, or ogb's Evaluator for OGB datasets."""
from __future__ import annotations

from typing import Callable

from torch import Tensor
from torchmetrics.functional.classification import multiclass_accuracy


def make_metric(kind: str, num_classes: int, ogb_name: str | None = None) -> Callable[[Tensor, Tensor], float]:
    """Return ``metric(logits_or_pred, y) -> float`` (accuracy in [0, 1])."""
    if kind == "acc":
        def acc(pred: Tensor, y: Tensor) -> float:
            if pred.dim() == 2:
                pred = pred.argmax(-1)
            if y.numel() == 0:
                return float("nan")
            return float(multiclass_accuracy(pred, y, num_classes, average="micro", validate_args=False))
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

