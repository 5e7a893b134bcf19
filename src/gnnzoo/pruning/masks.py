"""Weight masks of a lottery ticket: which tensors count, magnitude pruning, masks that stay exact.

A mask is a bool tensor of a parameter's shape (True = kept). :class:`MaskEnforcer` keeps masked entries at
exactly zero while training: it zeroes them once, masks their gradients (so Adam/AdamW moments and SGD
momentum of a masked entry stay 0, and weight decay of a zero is 0) and re-applies the masks after every
optimizer step as a guard.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

Masks = dict[str, Tensor]


@dataclass(frozen=True)
class Scope:
    """Which parameters are prunable: linear maps' weights, optionally those of the first and last layer,
    biases, and attention vectors (GAT ``att_src`` / ``att_dst``)."""

    first_layer: bool = True
    last_layer: bool = True
    bias: bool = False
    attention: bool = False

    def names(self, model: nn.Module) -> list[str]:
        """Prunable parameter names of ``model`` (``layers.<i>.…`` of a gnnzoo backbone), in state-dict order."""
        n_layers = len(getattr(model, "layers", [])) or 1
        out = []
        for name, p in model.named_parameters():
            parts = name.split(".")
            layer = int(parts[1]) if len(parts) > 1 and parts[0] == "layers" and parts[1].isdigit() else None
            if layer is None:
                continue  # norms and anything outside the message-passing layers
            if (layer == 0 and not self.first_layer) or (layer == n_layers - 1 and not self.last_layer):
                continue
            leaf = parts[-1]
            if leaf == "weight" and p.dim() == 2:
                out.append(name)
            elif leaf == "bias" and self.bias:
                out.append(name)
            elif leaf in ("att_src", "att_dst") and self.attention:
                out.append(name)
        return out


def magnitude_masks(state: Mapping[str, Tensor], names: Iterable[str], sparsity: float,
                    threshold: str = "global") -> Masks:
    """Keep the largest-magnitude entries of ``names`` so that exactly ``round(sparsity * n)`` are pruned:
    over all tensors together (``global``, one threshold) or in each tensor (``layer``). Ties are broken by
    position (``topk``), so the reached sparsity is the target to within one entry per scope."""
    names = list(names)
    if not names:
        raise ValueError("no prunable tensors (check pruning.scope)")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"weight sparsity must be in [0, 1), got {sparsity}")
    if threshold not in ("global", "layer"):
        raise ValueError(f"pruning.threshold must be global or layer, got {threshold!r}")
    groups = [names] if threshold == "global" else [[n] for n in names]
    masks: Masks = {}
    for group in groups:
        flat = torch.cat([state[n].detach().abs().reshape(-1).float() for n in group])
        keep = flat.numel() - int(round(float(sparsity) * flat.numel()))
        kept = torch.zeros(flat.numel(), dtype=torch.bool)
        kept[torch.topk(flat, keep, sorted=False).indices] = True
        offset = 0
        for n in group:
            k = state[n].numel()
            masks[n] = kept[offset:offset + k].view(state[n].shape).clone()
            offset += k
    return masks


def sparsity(masks: Masks) -> dict[str, float | int]:
    """Pruned fraction of the masked entries, with its denominator."""
    total = sum(m.numel() for m in masks.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    return {"sparsity": pruned / total if total else 0.0, "pruned": pruned, "total": total}


class MaskEnforcer(pl.Callback):
    """Keeps ``masks`` exact on ``pl_module.backbone`` for the whole fit (see the module docstring)."""

    def __init__(self, masks: Masks):
        self.masks = masks
        self._hooks: list = []

    def attach(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        missing = sorted(set(self.masks) - set(params))
        if missing:
            raise KeyError(f"masks name parameters the backbone does not have: {missing}")
        with torch.no_grad():
            for name, mask in self.masks.items():
                p = params[name]
                m = mask.to(p.device)
                p.mul_(m)
                self._hooks.append(p.register_hook(lambda g, m=m: g * m))

    def apply(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, mask in self.masks.items():
                params[name].mul_(mask.to(params[name].device))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._hooks:
            self.attach(pl_module.backbone)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.apply(pl_module.backbone)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
