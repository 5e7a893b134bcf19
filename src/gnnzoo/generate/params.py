"""The parameters a generator learns: which tensors (the last layer, all, or named ones), flattened to one
vector per checkpoint and back, with an optional per-position normalisation."""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import Tensor, nn

from gnnzoo.utils.errors import ConfigError


def target_names(model: nn.Module, target: str | Sequence[str]) -> list[str]:
    """Names of the generated parameters: ``"last"`` (every parameter of the last ``layers.<i>`` block, as
    GNN-Diff generates; a link predictor's or graph classifier's backbone block ``gnn.layers.<i>``), ``"all"``
    (every parameter), or an explicit list (each must exist)."""
    names = [n for n, _ in model.named_parameters()]
    if target == "all":
        return names
    if target == "last":
        root = "gnn." if hasattr(model, "gnn") else ""
        idx = [int(m.group(1)) for n in names if (m := re.match(re.escape(root) + r"layers\.(\d+)\.", n))]
        if not idx:
            raise ConfigError(
                f"generator.collect.target=last: {type(model).__name__} has no layers.<i> parameters; "
                "name the tensors instead"
            )
        prefix = f"{root}layers.{max(idx)}."
        return [n for n in names if n.startswith(prefix)]
    wanted = [target] if isinstance(target, str) else list(target)
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ConfigError(
            f"generator.collect.target: {missing} are not parameters of {type(model).__name__} (it has {names})"
        )
    return wanted


class ParamCodec:
    """Flattens the tensors ``names`` of a state dict into one vector (in that order) and back."""

    def __init__(self, names: Sequence[str], shapes: Sequence[Sequence[int]]):
        self.names, self.shapes = list(names), [tuple(s) for s in shapes]
        self.sizes = [int(torch.Size(s).numel()) for s in self.shapes]
        self.dim = sum(self.sizes)

    @classmethod
    def from_state(cls, state: dict[str, Tensor], names: Sequence[str]) -> "ParamCodec":
        return cls(names, [state[n].shape for n in names])

    def flatten(self, state: dict[str, Tensor]) -> Tensor:
        return torch.cat([state[n].detach().reshape(-1).float() for n in self.names])

    def unflatten(self, vec: Tensor) -> dict[str, Tensor]:
        if vec.numel() != self.dim:
            raise ValueError(f"a parameter vector of {vec.numel()} values for {self.dim} target parameters")
        return {n: p.reshape(s) for n, p, s in zip(self.names, vec.split(self.sizes), self.shapes)}

    def full_state(self, base: dict[str, Tensor], vec: Tensor) -> dict[str, Tensor]:
        """``base`` with the target tensors replaced by ``vec`` (dtypes kept)."""
        out = dict(base)
        for n, t in self.unflatten(vec).items():
            out[n] = t.to(base[n].dtype)
        return out


class Normalizer(nn.Module):
    """Per-position z-scoring over the collected checkpoints (``per_position=True``), else one global mean and
    std; the std is floored so positions that never move stay finite."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: Tensor, per_position: bool = True) -> "Normalizer":
        if per_position:
            mean, std = x.mean(0), x.std(0, unbiased=False)
        else:
            mean, std = x.mean().expand(x.size(1)), x.std(unbiased=False).expand(x.size(1))
        floor = 1e-3 * float(x.std(unbiased=False)) + 1e-8
        self.mean.copy_(mean)
        self.std.copy_(std.clamp(min=floor))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, z: Tensor) -> Tensor:
        return z * self.std + self.mean
