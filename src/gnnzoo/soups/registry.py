"""Every soup strategy by its ``soup.strategy`` name."""

from __future__ import annotations

from typing import Callable

from gnnzoo.soups.learned import learned, partition_learned
from gnnzoo.soups.strategies import SoupResult, gis, greedy, uniform

STRATEGIES: dict[str, Callable[..., SoupResult]] = {
    "uniform": uniform,
    "greedy": greedy,
    "gis": gis,
    "learned": learned,
    "partition_learned": partition_learned,
}
