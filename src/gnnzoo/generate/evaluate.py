"""Step 6's evaluation: many parameter sets scored in one batched pass, the pick by validation accuracy, and the
memorisation ratio of generated sets."""

from __future__ import annotations

import torch

from gnnzoo.utils.errors import ConfigError


class SetEvaluator:
    """Accuracy of many parameter sets on one graph: the sets stacked into one batched backbone (one forward for
    all of them), or one by one where the backbone cannot be batched. Link predictors: the AUC of the validation
    and test pairs, one set at a time (``metric`` says which)."""

    def __init__(self, template: torch.nn.Module, graph):
        self.template = template.eval()
        d = graph.data
        self.d = d
        self.link = hasattr(template, "score")
        self.metric = "auc" if self.link else "acc"
        if self.link:
            return
        self.masks = {k: getattr(d, f"{k}_mask") for k in ("train", "val", "test")}
        if d.y.dim() != 1:
            raise ConfigError(f"generate.py selects by accuracy; {graph.name} has multi-label targets")

    @torch.no_grad()
    def _link_aucs(self, states: list[dict]) -> dict[str, torch.Tensor]:
        from torch.func import functional_call
        from torchmetrics.functional.classification import binary_auroc

        out: dict[str, list[float]] = {"val": [], "test": []}
        for st in states:
            for split in out:
                pairs = self.d[f"{split}_edges"]
                logits = functional_call(self.template, st, (self.d.x, self.d.edge_index), {"pairs": pairs})
                out[split].append(float(binary_auroc(logits, self.d[f"{split}_labels"].long())))
        return {k: torch.tensor(v) for k, v in out.items()}

    @torch.no_grad()
    def logits(self, states: list[dict], chunk: int = 50) -> torch.Tensor:
        from gnnzoo.batched.graph import GraphOps
        from gnnzoo.batched.models import BatchedBackbone

        out = []
        try:
            ops = GraphOps(self.d.edge_index, self.d.num_nodes)
            for s in range(0, len(states), chunk):
                part = states[s : s + chunk]
                bb = BatchedBackbone(self.template, part, [0.0] * len(part)).eval()
                out.append(bb(self.d.x, ops))
        except NotImplementedError:
            from torch.func import functional_call

            out = [torch.stack([functional_call(self.template, st, (self.d.x, self.d.edge_index)) for st in states])]
        return torch.cat(out)

    def accuracies(self, states: list[dict], y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"val": [N], "test": [N]}``: accuracy (AUC for link predictors; ``y``: node labels to score with,
        default the graph's)."""
        if self.link:
            return self._link_aucs(states)
        y = self.d.y if y is None else y
        pred = self.logits(states).argmax(-1)
        return {k: (pred[:, m] == y[m]).float().mean(1) for k, m in self.masks.items() if k != "train"}


def select(val: torch.Tensor, test: torch.Tensor) -> tuple[int, float, float]:
    """The index with the best validation accuracy (first on ties), its val and its test accuracy."""
    i = int(torch.argmax(val))  # torch.argmax returns the first maximal index
    return i, float(val[i]), float(test[i])


def nn_ratios(generated: torch.Tensor, collected: torch.Tensor) -> torch.Tensor:
    """Per generated set: distance to the nearest collected checkpoint / median nearest-neighbour distance among
    the collected checkpoints (≈ 0: a copy; ≈ 1: as far as two collected checkpoints are from each other)."""
    d_gc = torch.cdist(generated.double(), collected.double()).min(1).values
    d_cc = torch.cdist(collected.double(), collected.double())
    d_cc.fill_diagonal_(float("inf"))
    scale = d_cc.min(1).values.median().clamp(min=1e-12)
    return (d_gc / scale).float()
