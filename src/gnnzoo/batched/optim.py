"""A vectorised optimizer for stacked parameters with per-model hyperparameters.

Each model ``i`` of a batch has its own optimizer type (``sgd``, ``adam``, ``adamw``), learning rate,
weight decay and momentum (SGD) / betas (Adam). The update of model ``i`` is exactly what
``torch.optim.<type>`` would do to that model alone (same formulas, same order of operations;
see tests/test_batched.py). Each run of consecutive models of one type is updated in place through a
slice of the stacked tensors (the batched trainer orders models by type, so a batch has at most three
runs); models marked inactive are left unchanged.
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
        raise NotImplementedError(
            f"optimizer {target} has no batched form; batched training supports "
            f"{', '.join('torch.optim.' + k.upper() if k == 'sgd' else k for k in KINDS)}"
        )
    return name


class BatchedOptimizer:
    def __init__(
        self,
        params: dict[str, torch.nn.Parameter],
        kinds: Sequence[str],
        lr: Sequence[float],
        weight_decay: Sequence[float],
        momentum: Sequence[float] | None = None,
        betas: Sequence[tuple[float, float]] | None = None,
        eps: Sequence[float] | None = None,
    ):
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
        self.segments = self._segments(list(kinds))
        self.step_count = 0
        self.state: dict[str, dict[str, Tensor]] = {name: {} for name in params}
        self.active = torch.ones(n, dtype=torch.bool)  # models whose training has stopped get no updates

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @staticmethod
    def _b(v: Tensor, like: Tensor) -> Tensor:
        return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    @staticmethod
    def _segments(kinds: list[str]) -> list[tuple[int, int, str]]:
        """Runs ``(start, end, kind)`` of consecutive models with one optimizer type."""
        runs, start = [], 0
        for i in range(1, len(kinds) + 1):
            if i == len(kinds) or kinds[i] != kinds[start]:
                runs.append((start, i, kinds[start]))
                start = i
        return runs

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        t = self.step_count
        frozen = None if bool(self.active.all()) else (~self.active).nonzero().view(-1)
        for name, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            saved = p.index_select(0, frozen) if frozen is not None else None
            for a, b, kind in self.segments:
                self._update(kind, name, a, b, p[a:b], g[a:b], t)
            if saved is not None:
                p.index_copy_(0, frozen, saved)

    def _update(self, kind: str, name: str, a: int, b: int, p: Tensor, g: Tensor, t: int) -> None:
        """torch.optim's update rule for models a..b-1 (one type), in place on views of the stacks."""
        st = self.state[name]
        B = lambda v: self._b(v[a:b], p)  # noqa: E731
        lr, wd = B(self.lr), B(self.wd)
        has_wd = bool((self.wd[a:b] != 0).any())
        if kind == "sgd":
            if has_wd:
                g.addcmul_(p, wd)  # g + wd * p
            if bool((self.momentum[a:b] != 0).any()):
                buf = st.get(f"momentum_buffer:{a}")
                if buf is None:  # torch starts the buffer at the first gradient
                    buf = st[f"momentum_buffer:{a}"] = g.clone()
                else:
                    buf.mul_(B(self.momentum)).add_(g)
                g = buf
            p.addcmul_(g, lr, value=-1)
            return
        if kind == "adamw":
            p.mul_(1 - lr * wd)
        elif has_wd:
            g.addcmul_(p, wd)
        m = st.setdefault(f"exp_avg:{a}", torch.zeros_like(p))
        v = st.setdefault(f"exp_avg_sq:{a}", torch.zeros_like(p))
        b1, b2 = self.beta1[a:b], self.beta2[a:b]
        S = lambda v: self._b(v, p)  # noqa: E731  (already sliced)
        m.lerp_(g, S(1 - b1))
        v.mul_(S(b2))
        if bool((b2 == b2[0]).all()):
            v.addcmul_(g, g, value=float(1 - b2[0]))
        else:
            v.addcmul_(g, g * S(1 - b2))
        denom = v.sqrt().div_(S((1 - b2**t).sqrt())).add_(B(self.eps))
        p.addcdiv_(m, denom.div_(S(self.lr[a:b] / (1 - b1**t))), value=-1)
