"""Declared, seeded splits of a zoo's trajectories (never of runs or checkpoints; see ``gnnzoo.zoo.checkpoints``).

* ``random``: trajectories shuffled by a seed and cut into train / val / test by fractions;
* ``dataset:<name>`` (leave one dataset out): every trajectory of ``<name>`` is test; the rest is cut into train /
  val by the val fraction (seeded);
* ``backbone:<name>`` (leave one backbone out): the same over backbones.

A split is a dict ``{"train": [...], "val": [...], "test": [...]}`` of sorted trajectory keys.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

from gnnzoo.utils.errors import ConfigError

SPLIT_KINDS = ("random", "dataset", "backbone")


def _shuffled(keys: Sequence[str], seed: int) -> list[str]:
    keys = sorted(set(keys))
    random.Random(int(seed)).shuffle(keys)
    return keys


def random_split(
    trajectories: Sequence[str], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list[str]]:
    """Trajectories cut into train / val / test by ``fractions`` (each split gets at least one)."""
    order = _shuffled(trajectories, seed)
    if len(order) < 3:
        raise ConfigError(f"{len(order)} trajectory(ies) cannot be split into train/val/test (need >= 3)")
    n_val = max(1, round(fractions[1] * len(order)))
    n_test = max(1, round(fractions[2] * len(order)))
    n_train = len(order) - n_val - n_test
    if n_train < 1:
        raise ConfigError(f"{len(order)} trajectories leave none for training with fractions {tuple(fractions)}")
    return {
        "train": sorted(order[:n_train]),
        "val": sorted(order[n_train : n_train + n_val]),
        "test": sorted(order[n_train + n_val :]),
    }


def leave_one_out(
    group_of: Mapping[str, str], held: str, val_fraction: float = 0.15, seed: int = 0, what: str = "group"
) -> dict[str, list[str]]:
    """``group_of``: trajectory -> its dataset (or backbone). Test: the trajectories of ``held``; the others are cut
    into train / val (``val_fraction``, at least one each)."""
    groups = sorted(set(group_of.values()))
    if held not in groups:
        raise ConfigError(f"cannot hold out {what} {held!r}: the zoo query has {', '.join(groups) or 'none'}")
    test = sorted(t for t, g in group_of.items() if g == held)
    rest = _shuffled([t for t, g in group_of.items() if g != held], seed)
    if len(rest) < 2:
        raise ConfigError(
            f"holding out {what} {held!r} leaves {len(rest)} trajectory(ies) for train and val (need >= 2)"
        )
    n_val = max(1, round(val_fraction * len(rest)))
    return {"train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": test}


def make_split(
    kind: str,
    dataset_of: Mapping[str, str],
    backbone_of: Mapping[str, str],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    held: str | None = None,
) -> dict[str, list[str]]:
    """One declared split over the trajectories keyed in ``dataset_of`` / ``backbone_of``."""
    if kind == "random":
        return random_split(list(dataset_of), fractions, seed)
    if kind in ("dataset", "backbone"):
        if not held:
            raise ConfigError(f"a leave-one-{kind}-out split needs the {kind} to hold out (split.held=<name>)")
        return leave_one_out(dataset_of if kind == "dataset" else backbone_of, held, fractions[1], seed, kind)
    raise ConfigError(f"unknown split {kind!r}; choose one of {', '.join(SPLIT_KINDS)}")


def declared_splits(
    dataset_of: Mapping[str, str], backbone_of: Mapping[str, str], seed: int = 0, fractions=(0.7, 0.15, 0.15)
) -> dict:
    """Every declared split of a set of trajectories: random, and each leave-one-dataset/backbone-out that leaves
    something to train on (the form of an export's ``splits.json``)."""
    out: dict = {"unit": "trajectory", "seed": int(seed), "fractions": list(fractions), "splits": {}}
    if len(dataset_of) >= 3:
        out["splits"]["random"] = random_split(list(dataset_of), fractions, seed)
    for kind, of in (("dataset", dataset_of), ("backbone", backbone_of)):
        groups = sorted(set(of.values()))
        if len(groups) < 2:
            continue
        for g in groups:
            try:
                out["splits"][f"{kind}:{g}"] = leave_one_out(of, g, fractions[1], seed, kind)
            except ConfigError:
                continue
    return out
