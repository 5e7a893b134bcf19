"""A vectorised optimizer for stacked parameters with per-model hyperparameters.

Each model ``i`` of a batch has its own optimizer type (``sgd``, ``adam``, ``adamw``), learning rate,
weight decay and momentum (SGD) / betas (Adam). The update of model ``i`` is exactly what
``torch.optim.<type>`` would do to that model alone (same formulas, same order of operations;
see tests/test_batched.py). Mixed types in one batch compute each update rule once for all models
and select per model.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

KINDS = ("sgd", "adam", "adamw")


def optimizer_kind(target: str) -> str:
    """Map an optimizer ``_target_`` (``torch.optim.Adam``) to a batched kind."""
    name = target.rsplit(".", 1)[-1].lower()
    if name not in KINDS:
        raise NotImplementedError(f"optimizer {target} has no batched form; batched training supports "
                                  f"{', '.join('torch.optim.' + k.upper() if k == 'sgd' else k for k in KINDS)}")
    return name


class BatchedOptimizer:
    def __init__(self, params: dict[str, torch.nn.Parameter], kinds: Sequence[str], lr: Sequence[float],
                 weight_decay: Sequence[float], momentum: Sequence[float] | None = None,
                 betas: Sequence[tuple[float, float]] | None = None, eps: Sequence[float] | None = None):
        n = len(kinds)
        for k in kinds:
            if k not in KINDS:
                raise ValueError(f"unknown optimizer kind {k!r}")
        self.params = params
        f = lambda v, d: torch.tensor(list(v) if v is not None else [d] * n, dtype=torch.float64)  # noqa: E731
        self.lr = f(lr, 0.0)
        self.wd = f(weight_decay, 0.0)
        self.momentum = f(momentum, 0.0)
        b = list(betas) if betas is not None else [(0.9, 0.999)] * n
        self.beta1 = torch.tensor([x[0] for x in b], dtype=torch.float64)
        self.beta2 = torch.tensor([x[1] for x in b], dtype=torch.float64)
        self.eps = f(eps, 1e-8)
        self.is_sgd = torch.tensor([k == "sgd" for k in kinds])
        self.is_adamw = torch.tensor([k == "adamw" for k in kinds])
        self.any_sgd, self.any_adam = bool(self.is_sgd.any()), bool((~self.is_sgd).any())
        self.step_count = 0
        self.state: dict[str, dict[str, Tensor]] = {name: {} for name in params}
        self.active = torch.ones(n, dtype=torch.bool)  # models whose training has stopped get no updates

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @staticmethod
    def _b(v: Tensor, like: Tensor) -> Tensor:
        return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        t = self.step_count
        for name, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            st = self.state[name]
            B = lambda v: self._b(v, p)  # noqa: E731
            lr, wd = B(self.lr), B(self.wd)
            new = torch.empty_like(p)
            if self.any_sgd:
                gs = g + wd * p
                buf = st.get("momentum_buffer")
                buf = gs.clone() if buf is None else buf * B(self.momentum) + gs
                st["momentum_buffer"] = buf
                new_sgd = p - lr * buf
                new = new_sgd
            if self.any_adam:
                adamw = B(self.is_adamw.double()) > 0
                p_dec = torch.where(adamw, p * (1 - lr * wd), p)
                ga = torch.where(adamw, g, g + wd * p)
                m = st.setdefault("exp_avg", torch.zeros_like(p))
                v = st.setdefault("exp_avg_sq", torch.zeros_like(p))
                b1, b2 = B(self.beta1), B(self.beta2)
                m.lerp_(ga, 1 - b1)
                v.mul_(b2).addcmul_(ga, ga * (1 - b2))
                bc1 = 1 - self.beta1 ** t
                bc2_sqrt = (1 - self.beta2 ** t).sqrt()
                denom = v.sqrt() / B(bc2_sqrt) + B(self.eps)
                new_adam = p_dec - B(self.lr / bc1) * m / denom
                new = new_adam if not self.any_sgd else torch.where(B(self.is_sgd.double()) > 0, new_sgd, new_adam)
            if not bool(self.active.all()):
                new = torch.where(B(self.active.double()) > 0, new, p)
            p.copy_(new)
