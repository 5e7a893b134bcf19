"""The tables the FMS benchmark replays (``benchmarks/fms.py``): per cell (dataset/backbone) one batched
``train.py -m`` sweep of the 108-config grid below, 200 epochs, no early stopping, seed 0, per-epoch val/test curves
and a snapshot every 10 epochs, with the ``stat`` weight features of every snapshot.

A table is cached under its settings, this module and the library *less the search code* (``gnnzoo/search`` and
the FMS sweeper plugin cannot change a trained run), so work on the search does not retrain the tables.
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import JobCache, train_multirun

# code that cannot change a table: the search loop, surrogate and features, and the FMS sweeper
NOT_IN_TABLE = ("src/gnnzoo/search", "src/hydra_plugins/gnnzoo/fms.py")

SPACE = {
    "optimizer.lr": "tag(log, choice(0.001, 0.005, 0.02, 0.1))",
    "optimizer.weight_decay": "choice(0, 0.0005, 0.005)",
    "backbone.dropout": "choice(0.2, 0.5, 0.8)",
    "backbone.hidden_channels": "choice(16, 32, 64)",
}
GRID = [
    "optimizer=adam",
    "optimizer.lr=0.001,0.005,0.02,0.1",
    "optimizer.weight_decay=0,0.0005,0.005",
    "backbone.dropout=0.2,0.5,0.8",
    "backbone.hidden_channels=16,32,64",
]
COMMON = [
    "logger=none",
    "monitor.patience=null",
    "extras.print_config=false",
    "trainer.enable_progress_bar=false",
    "zoo.snapshot_every=10",
    "seed=0",
]
SMOKE_GRID = [
    "optimizer=adam",
    "optimizer.lr=0.005,0.02",
    "optimizer.weight_decay=0,0.0005,0.005",
    "backbone.dropout=0.5",
    "backbone.hidden_channels=16",
]
SMOKE_SPACE = {
    **SPACE,
    "optimizer.lr": "tag(log, choice(0.005, 0.02))",
    "backbone.dropout": "choice(0.5)",
    "backbone.hidden_channels": "choice(16)",
}
SNAP = 10  # epochs between snapshots (and the searches' b0 and Δ)


def table_key(point: dict) -> tuple:
    return tuple(float(f"{float(point[k]):.6g}") for k in SPACE)


# ------------------------------------------------------------------------------------------------ the table
def table_settings(cell: str, epochs: int, smoke: bool) -> dict:
    return {
        "kind": "table",
        "cell": cell,
        "epochs": epochs,
        "common": COMMON,
        "grid": SMOKE_GRID if smoke else GRID,
        "space": SMOKE_SPACE if smoke else SPACE,
        "features": "stat",
    }


def build_table(cell: str, work: Path, data_dir: str, epochs: int, smoke: bool, stored: bool = False) -> dict:
    """The cell's table (trained now if it is not cached). ``stored``: a table cached under exactly these settings
    by *another* version of the library is used as it is (``table["code"]`` names that version; the report lists
    it), for library changes that cannot change a trained table (e.g. job bookkeeping)."""
    settings = table_settings(cell, epochs, smoke)
    cache = JobCache(work, __file__, NOT_IN_TABLE)
    payload = (cache.get(settings) or cache.stored(settings)) if stored else None
    if payload is None:
        payload = cache.run(settings, lambda: _train_table(settings, work, data_dir))
    return {**payload["result"], "code": payload["code"]}


def _train_table(st: dict, work: Path, data_dir: str) -> dict:
    from omegaconf import OmegaConf

    from gnnzoo.search.features import stat_features
    from gnnzoo.zoo import Zoo

    cell, epochs, space = st["cell"], st["epochs"], st["space"]
    ds, bb = cell.split("/")
    zoo = work / f"zoo_{ds}_{bb}"
    wall = train_multirun(
        [*st["common"], f"trainer.max_epochs={epochs}", f"dataset={ds}", f"backbone={bb}", *st["grid"]],
        zoo,
        work,
        data_dir,
        f"table_{ds}_{bb}",
    )
    t0 = time.perf_counter()
    feat = stat_features()
    z = Zoo(zoo)
    runs = {}
    for r in z.df(kind="run", status="completed").itertuples():
        e = z.get(r.run_id)
        rec = e.record
        cfg = OmegaConf.create(rec["config"])
        point = {k: OmegaConf.select(cfg, k) for k in space}
        feats = {str(s["epoch"]): feat(e.snapshot(s["epoch"]), bb) for s in rec["snapshots"]}
        runs[repr(table_key(point))] = {
            "run_id": r.run_id,
            "point": point,
            "val": rec["curves"]["val/acc"],
            "test": rec["curves"]["test/acc"],
            "feats": feats,
        }
    return {
        "cell": cell,
        "zoo": str(zoo),
        "configs": len(runs),
        "epochs": epochs,
        "train_wall_s": wall,
        "feature_wall_s": time.perf_counter() - t0,
        "runs": runs,
    }


def oracle(table: dict) -> float:
    return max(max(r["test"]) for r in table["runs"].values())


class Replay:
    """A trial's observation at ``e`` epochs from the table: val curve to ``e``, best val so far, the test
    accuracy at that epoch, the features of the snapshot at ``e`` (the last one at or before it)."""

    def __init__(self, table: dict):
        self.runs = table["runs"]

    def at(self, point: dict, e: int) -> tuple[list, float, float, list | None, str]:
        r = self.runs[repr(table_key(point))]
        val = r["val"][:e]
        i = max(range(len(val)), key=lambda j: (val[j], -j))  # the first epoch of the best val
        snaps = [int(s) for s in r["feats"] if int(s) <= e]
        w = r["feats"][str(max(snaps))] if snaps else None
        return val, float(val[i]), float(r["test"][i]), w, r["run_id"]
