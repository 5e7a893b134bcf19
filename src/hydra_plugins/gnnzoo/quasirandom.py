"""Hydra sweeper ``hydra/sweeper=quasirandom``: ``n`` configurations drawn from a scrambled Sobol sequence
(seeded) over declared ranges, crossed with the grid of ``params`` and the command line's sweeps.

    python train.py -m experiment=zoo_v1                                  # the GNN Zoo v1 recipe
    python train.py -m hydra/sweeper=quasirandom hydra.sweeper.n=32 dataset=cora,citeseer \
        'hydra.sweeper.space={optimizer.lr: {low: 0.001, high: 0.1, log: true}}'

``space`` maps a config key (or a config group, e.g. ``optimizer``) to ``{low, high}`` (uniform; ``log: true``
for log-uniform; ``int: true`` rounds) or ``{choices: [...]}``; a dict on the command line merges into it.
``n_where`` gives some cells fewer draws (``{backbone: {gat: 16}}``: a cell whose overrides include
``backbone=gat`` trains the first 16 of the sequence). Draw ``k`` of the sequence also sets ``seed=k``
(``seed_per_draw``), so every configuration has its own seed and the same draw is the same configuration in
every grid cell (paired across datasets and backbones). The draws depend on ``n``, ``seed`` and ``space`` only:
the same command draws the same jobs, so a relaunch skips every completed run (resumable).
The sweeper writes ``RECIPE.json`` (command, sampler settings, draws) into ``paths.zoo_dir`` for the zoo's
datasheet.
"""

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.types import Override
from omegaconf import OmegaConf

from hydra_plugins.gnnzoo.sweeper import GnnzooSweeper


@dataclass
class QuasiRandomSweeperConf:
    _target_: str = "hydra_plugins.gnnzoo.quasirandom.QuasiRandomSweeper"
    n: int = 16  # configurations per grid cell
    # fewer in some cells: {backbone: {gat: 16}} (a cell with backbone=gat trains the first 16 draws)
    n_where: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0  # of the scrambled Sobol sequence
    seed_per_draw: bool = True  # draw k trains with seed=k
    space: Dict[str, Any] = field(default_factory=dict)
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="quasirandom", node=QuasiRandomSweeperConf, provider="gnnzoo")


def _fmt(v: Any) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


def draw(space: Dict[str, Any], n: int, seed: int) -> List[Dict[str, Any]]:
    """``n`` points of a scrambled Sobol sequence (scipy's ``qmc.Sobol``, seeded) mapped onto ``space``."""
    from scipy.stats import qmc

    keys = sorted(space)
    for k in keys:
        spec = space[k]
        if "choices" in spec:
            if not list(spec["choices"]):
                raise ValueError(f"hydra.sweeper.space.{k}: empty choices")
        elif not ("low" in spec and "high" in spec) or not float(spec["low"]) < float(spec["high"]):
            raise ValueError(f"hydra.sweeper.space.{k}={spec}: give choices, or low < high")
        elif spec.get("log") and float(spec["low"]) <= 0:
            raise ValueError(f"hydra.sweeper.space.{k}: a log range needs low > 0, got {spec['low']}")
    if int(n) < 1:
        raise ValueError(f"hydra.sweeper.n must be >= 1, got {n}")
    m = max(1, math.ceil(math.log2(max(int(n), 2))))
    u = qmc.Sobol(d=max(len(keys), 1), scramble=True, seed=int(seed)).random_base2(m)[: int(n)]
    out = []
    for row in u:
        point: Dict[str, Any] = {}
        for j, k in enumerate(keys):
            spec = space[k]
            if "choices" in spec:
                ch = list(spec["choices"])
                point[k] = ch[min(int(row[j] * len(ch)), len(ch) - 1)]
            else:
                lo, hi = float(spec["low"]), float(spec["high"])
                v = (
                    math.exp(math.log(lo) + row[j] * (math.log(hi) - math.log(lo)))
                    if spec.get("log")
                    else lo + row[j] * (hi - lo)
                )
                point[k] = int(round(v)) if spec.get("int") else float(f"{v:.4g}")
        out.append(point)
    return out


class QuasiRandomSweeper(GnnzooSweeper):
    def __init__(
        self,
        n: int = 16,
        n_where: Optional[Dict[str, Any]] = None,
        seed: int = 0,
        seed_per_draw: bool = True,
        space: Optional[Dict[str, Any]] = None,
        max_batch_size: Optional[int] = None,
        params: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.n, self.seed, self.seed_per_draw = int(n), int(seed), bool(seed_per_draw)
        self.space = OmegaConf.to_container(space, resolve=True) if OmegaConf.is_config(space) else dict(space or {})
        n_where = OmegaConf.to_container(n_where, resolve=True) if OmegaConf.is_config(n_where) else (n_where or {})
        self.n_where = {f"{key}={value}": int(n) for key, values in n_where.items() for value, n in values.items()}
        self.points = draw(self.space, self.n, self.seed)  # fails at launch on a bad space, before any job

    def split_arguments(self, overrides: List[Override], max_batch_size: Optional[int]) -> List[List[List[str]]]:
        cells = BasicSweeper.split_arguments(overrides, None)[0]
        swept = {o.get_key_element() for o in overrides}
        clash = sorted(swept & (set(self.space) | ({"seed"} if self.seed_per_draw else set())))
        if clash:
            raise ValueError(f"{', '.join(clash)} is both drawn by the quasirandom sweeper and set on the command line")
        jobs = []
        for cell in cells:
            n = min([self.n] + [v for k, v in self.n_where.items() if k in cell])
            for k, point in enumerate(self.points[:n]):
                drawn = [f"{key}={_fmt(v)}" for key, v in sorted(point.items(), key=lambda kv: "." in kv[0])]
                jobs.append(list(cell) + drawn + ([f"seed={k}"] if self.seed_per_draw else []))
        self._write_recipe(len(cells), len(jobs))
        if max_batch_size is None:
            return [jobs]
        return [jobs[i : i + max_batch_size] for i in range(0, len(jobs), max_batch_size)]

    def _write_recipe(self, cells: int, jobs: int) -> None:
        zoo_dir = OmegaConf.select(self.config, "paths.zoo_dir") if self.config is not None else None
        if not zoo_dir:
            return
        recipe = {
            "command": "python train.py " + " ".join(sys.argv[1:]),
            "sampler": "scrambled Sobol (scipy.stats.qmc)",
            "n": self.n,
            "n_where": self.n_where,
            "seed": self.seed,
            "seed_per_draw": self.seed_per_draw,
            "space": self.space,
            "grid": dict(self.params or {}),
            "cells": cells,
            "jobs": jobs,
        }
        Path(zoo_dir).mkdir(parents=True, exist_ok=True)
        (Path(zoo_dir) / "RECIPE.json").write_text(json.dumps(recipe, indent=1, default=str))
