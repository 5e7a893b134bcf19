"""The grids the GNN-Diff benchmark (``benchmarks/generate.py``) measures generation against, one per cell
(dataset/backbone), trained with ``train.py -m hydra/launcher=batched`` (200 epochs, no early stopping, seed 0,
two threads, one sweep at a time):

* cora/gcn: the 540-config GNN-Diff grid of ``benchmarks/grid.py``;
* every other cell: the stated 108-config grid with the same axes, {SGD, Adam} x lr {0.01, 0.05, 0.1} x hidden
  {16, 32, 64} x dropout {0.1, 0.5, 0.9} x weight decay {5e-4, 5e-3} (the 540 grid does not fit this machine's
  time for them).

A grid is a cached job keyed by this file, the library less the generator's code and configs (they cannot change
a training sweep) and its settings, so editing the generation benchmark does not retrain the grids.

    python benchmarks/generate_grids.py [--cells cora/gcn,citeseer/gcn]   # build (or reuse) them
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, JobCache, train_multirun  # noqa: E402
from grid import GRID as FULL_GRID  # noqa: E402

SMALL_GRID = [
    "optimizer=sgd,adam",
    "optimizer.lr=0.01,0.05,0.1",
    "backbone.hidden_channels=16,32,64",
    "backbone.dropout=0.1,0.5,0.9",
    "optimizer.weight_decay=5e-4,5e-3",
]
GRIDS = {"cora/gcn": FULL_GRID}
SMOKE_GRID = [
    "optimizer=sgd,adam",
    "optimizer.lr=0.01,0.05",
    "backbone.hidden_channels=16",
    "backbone.dropout=0.5",
    "optimizer.weight_decay=5e-4,5e-3",
]
SMOKE_EPOCHS = "trainer.max_epochs=20"
COMMON = [
    "logger=none",
    "monitor.patience=null",
    "trainer.max_epochs=200",
    "extras.print_config=false",
    "trainer.enable_progress_bar=false",
]
CELLS = [f"{d}/{b}" for d in ("cora", "citeseer", "pubmed") for b in ("gcn", "sage", "gat")]
# the generator's code and configs cannot change a training sweep
NOT_GRID_CODE = ("src/gnnzoo/generate", "conf/generator", "conf/generate.yaml")


def grid_of(cell: str, smoke: bool = False) -> list[str]:
    return SMOKE_GRID if smoke else GRIDS.get(cell, SMALL_GRID)


def zoo_of(cell: str, work: Path) -> Path:
    ds, bb = cell.split("/")
    return Path(work) / f"zoo_{ds}_{bb}"


def build_grid(cell: str, work: Path, data_dir: str, smoke: bool = False) -> dict:
    """The cell's trained grid: ``{"cell", "zoo", "configs", "wall_s", "grid", "runs": [{run_id, val, test}]}``."""
    grid = grid_of(cell, smoke)
    settings = {"kind": "grid", "cell": cell, "grid": grid, "common": COMMON, "smoke": smoke}
    cache = JobCache(work, __file__, exclude=NOT_GRID_CODE)
    return cache.run(settings, lambda: _build_grid(cell, grid, Path(work), data_dir, smoke))["result"]


def _build_grid(cell: str, grid: list[str], work: Path, data_dir: str, smoke: bool) -> dict:
    ds, bb = cell.split("/")
    zoo = zoo_of(cell, work)
    overrides = [*COMMON, f"dataset={ds}", f"backbone={bb}", "seed=0", *grid, *([SMOKE_EPOCHS] if smoke else [])]
    wall = train_multirun(overrides, zoo, work, data_dir, f"grid_{ds}_{bb}")
    from gnnzoo.zoo import Zoo

    df = Zoo(zoo).df(kind="run", status="completed")
    runs = [{"run_id": r.run_id, "val": float(r.best_val), "test": float(r.test_at_best_val)} for r in df.itertuples()]
    return {"cell": cell, "zoo": str(zoo), "configs": int(len(df)), "wall_s": wall, "grid": grid, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_generate"))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    a = ap.parse_args()
    t0 = time.perf_counter()
    for cell in a.cells.split(","):
        g = build_grid(cell, Path(a.work), a.data_dir, a.smoke)
        best = max(g["runs"], key=lambda r: (r["val"], r["run_id"]))
        print(
            f"[{time.perf_counter() - t0:6.0f}s] grid {cell}: {g['configs']} configs, {g['wall_s']:.0f}s, "
            f"best by val: test {100 * best['test']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
