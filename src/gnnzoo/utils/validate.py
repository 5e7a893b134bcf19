"""Config validators declared once: each reads one key of a config node, checks it and returns it, or raises a
:class:`ConfigError` that names the full key, the bad value and what is expected. Every task checks its config
with these before any work (``check_*`` functions of the methods), so a message reads the same everywhere.

    p = cfg.pruning
    rounds = integer(p, "rounds", "pruning", lo=1)
    alpha = fraction(p, "alpha", "pruning")                   # [0, 1)
    k = integer(cfg.generator.collect, "k", "generator.collect", lo=2)
    sampler = choice(g.diffusion, "sampler", "generator.diffusion", ("ddpm", "ddim"))
"""

from __future__ import annotations

from typing import Any, Sequence

from gnnzoo.utils.errors import ConfigError

_MISSING = object()


def _get(node: Any, key: str) -> Any:
    return node.get(key, _MISSING) if node is not None else _MISSING


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def integer(
    node: Any, key: str, where: str, lo: int | None = None, hi: int | None = None, optional: bool = False
) -> int | None:
    """A whole number in ``[lo, hi]`` (``optional``: null or absent is allowed and returned as None)."""
    v = _get(node, key)
    if optional and (v is _MISSING or v is None):
        return None
    ok = not isinstance(v, bool) and isinstance(v, int) and (lo is None or v >= lo) and (hi is None or v <= hi)
    if not ok:
        bounds = " and ".join(
            b for b in (f">= {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else "") if b
        )
        raise ConfigError(
            f"{where}.{key}={_show(v)}: expected an integer{' ' + bounds if bounds else ''}"
            f"{' (or null)' if optional else ''}"
        )
    return v


def number(
    node: Any,
    key: str,
    where: str,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    optional: bool = False,
) -> float | None:
    """A real number in the interval ``lo..hi`` (open or closed at each end)."""
    v = _get(node, key)
    if optional and (v is _MISSING or v is None):
        return None
    ok = _is_number(v)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        left = "(-inf" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        right = "inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        raise ConfigError(
            f"{where}.{key}={_show(v)} is out of range: expected a number in {left}, {right}"
            f"{' (or null)' if optional else ''}"
        )
    return float(v)


def fraction(
    node: Any, key: str, where: str, lo_open: bool = False, hi_closed: bool = False, optional: bool = False
) -> float | None:
    """A fraction: ``[0, 1)`` by default; ``lo_open`` excludes 0, ``hi_closed`` includes 1."""
    v = _get(node, key)
    if optional and (v is _MISSING or v is None):
        return None
    ok = _is_number(v) and (v > 0 if lo_open else v >= 0) and (v <= 1 if hi_closed else v < 1)
    if not ok:
        interval = ("(0" if lo_open else "[0") + ", " + ("1]" if hi_closed else "1)")
        raise ConfigError(f"{where}.{key}={_show(v)} is out of range: expected a fraction in {interval}")
    return float(v)


def choice(node: Any, key: str, where: str, options: Sequence[Any]) -> Any:
    """One of ``options``."""
    v = _get(node, key)
    if v is _MISSING or v not in options:
        raise ConfigError(f"{where}.{key}={_show(v)}: expected one of {', '.join(map(str, options))}")
    return v


def _show(v: Any) -> str:
    return "<missing>" if v is _MISSING else repr(v)
