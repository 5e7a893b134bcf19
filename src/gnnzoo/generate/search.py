"""Steps 1-2 of GNN-Diff: the light search (a seeded random fraction of a grid, trained batched where it can be,
or the completed runs of a zoo query) and the pick of its best configuration by validation accuracy."""

from __future__ import annotations

import copy
import itertools
import logging
import time

import torch
from omegaconf import DictConfig, OmegaConf

from gnnzoo.batched.trainer import group_configs, train_batched
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.config import backbone_config
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.logging import console
from gnnzoo.zoo.store import Zoo, ZooEntry

log = logging.getLogger("gnnzoo")


def grid_points(grid: dict, fraction: float, seed: int) -> list[dict]:
    """A seeded random ``fraction`` of the grid's points (at least one), in grid order."""
    keys = sorted(grid)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*(list(grid[k]) for k in keys))]
    n = max(1, int(round(fraction * len(points))))
    pick = torch.randperm(len(points), generator=torch.Generator().manual_seed(int(seed)))[:n].sort().values
    return [points[i] for i in pick.tolist()]


def search_configs(cfg: DictConfig) -> list[DictConfig]:
    s = cfg.generator.search
    out = []
    base = backbone_config(cfg)
    for point in grid_points(OmegaConf.to_container(s.grid, resolve=True), float(s.fraction), int(s.seed)):
        c = copy.deepcopy(base)
        for k, v in point.items():
            OmegaConf.update(c, k, v, merge=False)
        c.zoo.enabled = True
        out.append(c)
    return out


def light_search(cfg: DictConfig, zoo: Zoo) -> tuple[list[ZooEntry], float]:
    """The search's completed runs (trained now, or reused from the zoo) and the wall time it took."""
    t0 = time.perf_counter()
    q = cfg.generator.search.get("query")
    if q is not None:
        filters = {
            "dataset": cfg.dataset.name,
            "backbone": cfg.backbone.name,
            **OmegaConf.to_container(q, resolve=True),
            "kind": "run",
            "status": "completed",
        }
        df = zoo.df(**filters) if len(zoo) else None
        if df is None or df.empty:
            raise ConfigError(f"generator.search.query {filters} selects no completed run in {zoo.root}")
        ids = sorted(df.run_id)
        fr = float(cfg.generator.search.get("query_fraction") or 1.0)
        if fr < 1.0:  # a seeded random subset of the query (e.g. 10% of a grid that is already in the zoo)
            n = max(1, int(round(fr * len(ids))))
            pick = torch.randperm(len(ids), generator=torch.Generator().manual_seed(int(cfg.generator.search.seed)))
            ids = [ids[i] for i in sorted(pick[:n].tolist())]
        return [zoo[r] for r in ids], time.perf_counter() - t0
    cfgs = search_configs(cfg)
    console.print(
        f"[bold]light search[/]: {len(cfgs)} configurations of the grid "
        f"({float(cfg.generator.search.fraction):.0%}, seed {int(cfg.generator.search.seed)})"
    )
    results: list[dict] = []
    progress = bool(cfg.trainer.get("enable_progress_bar", True))
    for group in group_configs(cfgs, 64):
        sub = [cfgs[i] for i in group]
        try:
            results += train_batched(sub, progress=progress)
        except NotImplementedError as e:
            log.info("light search runs one by one (%s)", e)
            for c in sub:
                try:
                    results.append({**train(c), "status": "completed"})
                except Exception as err:  # a failed run is recorded by train(); the search goes on
                    results.append({"status": "failed", "error": str(err)})
    done = [zoo[r["run_id"]] for r in results if r.get("status") == "completed" and r.get("run_id")]
    if not done:
        errs = [r.get("error") for r in results if r.get("error")]
        raise ConfigError(
            f"the light search produced no completed run ({len(results)} tried"
            + (f"; first error: {errs[0]}" if errs else "")
            + ")"
        )
    return done, time.perf_counter() - t0


def pick_best(entries: list[ZooEntry]) -> ZooEntry:
    """The run with the best validation score (ties: the smaller run id); never looks at test metrics."""
    ok = [e for e in entries if e.record.get("best_val") is not None and e.record["best_val"] == e.record["best_val"]]
    if not ok:
        raise ConfigError("no run of the light search has a validation score")
    return sorted(ok, key=lambda e: (-float(e.record["best_val"]), e.run_id))[0]
