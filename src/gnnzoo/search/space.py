"""A search space in Hydra's override grammar, as the Optuna sweeper takes it.

    {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))", "backbone.dropout": "interval(0.0, 0.8)",
     "backbone.hidden_channels": "choice(16, 32, 64)", "optimizer": "adam,sgd"}

``choice(...)`` and plain comma lists are categorical (numeric ones are encoded by their position on a linear or,
with ``tag(log, ...)``, log scale); ``interval(a, b)`` is continuous (integer when both ends are ints), ``range``
a choice over its values. Parsed with Hydra's own override parser. Every point is encoded into ``[0, 1]^d``
for the surrogate and turned back into overrides (``key=value``) for the launcher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from gnnzoo.utils.errors import ConfigError


@dataclass
class Dimension:
    key: str
    kind: str  # choice | interval
    values: list = field(default_factory=list)  # choice
    low: float = 0.0  # interval
    high: float = 1.0
    log: bool = False
    integer: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind == "interval" or all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values
        )

    @property
    def width(self) -> int:
        """Columns in the encoding: one for numbers, one-hot for categories."""
        return 1 if self.numeric else len(self.values)

    def _scale(self, v: float, lo: float, hi: float) -> float:
        if hi == lo:
            return 0.5
        if self.log:
            return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (v - lo) / (hi - lo)

    def encode(self, v: Any) -> list[float]:
        if self.kind == "interval":
            return [self._scale(float(v), self.low, self.high)]
        if self.numeric:
            return [self._scale(float(v), float(min(self.values)), float(max(self.values)))]
        return [1.0 if v == c else 0.0 for c in self.values]

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        u = float(rng.random())
        x = (
            math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
            if self.log
            else self.low + u * (self.high - self.low)
        )
        return int(round(x)) if self.integer else float(f"{x:.6g}")


def _parse_one(key: str, text: str) -> Dimension:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    try:
        (o,) = OverridesParser.create().parse_overrides([f"{key}={text}"])
    except Exception as e:
        raise ConfigError(f"search space {key}={text!r} is not in Hydra's override grammar: {e}") from None
    v = o.value()
    tags = set(getattr(v, "tags", None) or ())
    log = "log" in tags
    if isinstance(v, IntervalSweep):
        lo, hi = v.start, v.end
        if lo is None or hi is None or not lo < hi:
            raise ConfigError(f"search space {key}: interval({lo}, {hi}) needs low < high")
        if log and lo <= 0:
            raise ConfigError(f"search space {key}: a log interval needs low > 0, got {lo}")
        return Dimension(
            key, "interval", low=float(lo), high=float(hi), log=log, integer=isinstance(lo, int) and isinstance(hi, int)
        )
    if isinstance(v, RangeSweep):
        vals = list(np.arange(v.start, v.stop, v.step).tolist())
        return Dimension(key, "choice", values=vals, log=log)
    if isinstance(v, ChoiceSweep):
        vals = list(v.list)
    elif o.is_sweep_override():
        raise ConfigError(f"search space {key}={text!r}: only choice, interval, range and comma lists are supported")
    else:
        vals = [v]  # a single value: a fixed dimension
    if not vals:
        raise ConfigError(f"search space {key}: no values")
    d = Dimension(key, "choice", values=vals, log=log)
    if log and not (d.numeric and min(vals) > 0):
        raise ConfigError(f"search space {key}: tag(log, ...) needs positive numbers, got {vals}")
    return d


class SearchSpace:
    def __init__(self, params: Mapping[str, Any]):
        if not params:
            raise ConfigError("the search space is empty: give hydra.sweeper.params (key: choice(...) | interval(...))")
        self.dims = [_parse_one(str(k), str(v)) for k, v in params.items()]

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dims]

    @property
    def width(self) -> int:
        return sum(d.width for d in self.dims)

    def encode(self, point: Mapping[str, Any]) -> list[float]:
        return [x for d in self.dims for x in d.encode(point[d.key])]

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {d.key: d.sample(rng) for d in self.dims}

    def grid_size(self) -> float:
        return math.prod(len(d.values) if d.kind == "choice" else math.inf for d in self.dims)

    def candidates(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        """The points the search chooses from: the whole grid when it is finite and has at most ``n`` points
        (in a seeded random order), else ``n`` distinct random points."""
        if self.grid_size() <= n:
            import itertools

            pts = [dict(zip(self.keys, combo)) for combo in itertools.product(*(d.values for d in self.dims))]
            return [pts[i] for i in rng.permutation(len(pts))]
        seen, out = set(), []
        for _ in range(50 * n):
            p = self.sample(rng)
            k = point_key(p)
            if k not in seen:
                seen.add(k)
                out.append(p)
            if len(out) == n:
                break
        return out


def point_key(point: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={point[k]!r}" for k in sorted(point))


def to_overrides(point: Mapping[str, Any]) -> list[str]:
    def fmt(v: Any) -> str:
        return "null" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))

    return [f"{k}={fmt(v)}" for k, v in point.items()]


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Command-line overrides -> (fixed overrides, sweep ones as a search-space dict), as the Optuna sweeper
    reads ``key=choice(...)`` / ``key=1,2`` on the command line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    fixed, space = [], {}
    for o in OverridesParser.create().parse_overrides(list(arguments)):
        if o.is_sweep_override():
            space[o.key_or_group] = o.input_line.split("=", 1)[1]
        else:
            fixed.append(o.input_line)
    return fixed, space
