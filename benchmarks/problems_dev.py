"""One tuning round for graph classification (issue 34), declared before it ran, on a development seed.

In ``benchmarks/problems.py`` MUTAG GIN missed its reference (75.0 ± 14.1 vs 89.4 ± 5.6); its runs stopped at
60-100 epochs with the training accuracy still near 0.83: validation accuracy on a 17-graph holdout saturates
within ~20 epochs, ties keep the earliest epoch, and patience 50 ends training early.

Rule: on MUTAG GIN, model seed 100 (never a benchmark seed), the 10 folds, compare (a) today's selection (monitor
val/acc, patience 50) with (b) val/loss (mode min, patience 50). Criterion: the mean over folds of the validation
accuracy at each run's selected epoch (what selection reads; test folds are not read). (a) selects the epoch of
highest validation accuracy, so the criterion favours it: (b) becomes the graph-classification default only if it
reaches at least (a)'s value. Then the graph cells of ``problems.py`` are re-run with the default it picks.

    python benchmarks/problems_dev.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, JobCache, md_table, run_jobs, write_results  # noqa: E402
from problems import GRAPH_OVERRIDES, job  # noqa: E402

VARIANTS = {"a_val_acc": [], "b_val_loss": ["monitor.metric=val/loss", "monitor.mode=min"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_problems_dev"))
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    args = ap.parse_args()
    items = []
    for name, extra in VARIANTS.items():
        for fold in range(10):
            ov = [*GRAPH_OVERRIDES, "dataset=mutag", "backbone=gin", f"fold={fold}", "seed=100", *extra]
            items.append({"variant": name, "fold": fold, "overrides": ov, "work": args.work, "data_dir": args.data_dir})
            items[-1]["settings"] = {"overrides": ov}
    label = lambda it, res: f"{it['variant']} fold {it['fold']}"  # noqa: E731
    payloads = {p["key"]: p for p in run_jobs(job, items, jobs=args.jobs, threads=1, label=label)}
    cache = JobCache(args.work, Path(__file__).resolve().parent / "problems.py")
    val: dict[str, list[float]] = {v: [] for v in VARIANTS}
    epochs: dict[str, list[int]] = {v: [] for v in VARIANTS}
    for it in items:
        r = payloads[cache.key(it["settings"])]["result"]
        val[it["variant"]].append(r["val/acc"])
        epochs[it["variant"]].append(r["best_epoch"])
    means = {v: statistics.fmean(xs) for v, xs in val.items()}
    chosen = "b_val_loss" if means["b_val_loss"] >= means["a_val_acc"] else "a_val_acc"
    rows = [
        [v, f"{means[v]:.2f}", f"{statistics.fmean(epochs[v]):.0f}", "chosen" if v == chosen else ""] for v in VARIANTS
    ]
    md = (
        "MUTAG GIN, seed 100, 10 folds; validation accuracy (%) at the selected epoch, mean over folds (the rule is in"
        " the script's docstring).\n\n"
        + md_table(["variant", "val acc at the selected epoch", "mean selected epoch", ""], rows)
        + "\n"
    )
    write_results("problems_dev", {"summary": {"val_acc": means, "chosen": chosen}, "val": val, "epochs": epochs}, md)


if __name__ == "__main__":
    main()
