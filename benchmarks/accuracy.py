"""Accuracy of the default backbones: GCN / SAGE / GAT on Cora and CiteSeer, 10 seeds each.

Every run is the default config (`python train.py dataset=D backbone=B seed=S`) with the logger off;
test accuracy is taken at the best-validation epoch. Published figures for comparison:
GCN 81.5 (Cora) / 70.3 (CiteSeer) from Kipf & Welling (2017); GAT 83.0 / 72.5 from Velickovic et al.
(2018), reached with their own learning rate (0.005) and early stopping; GraphSAGE was not evaluated
on these splits in its paper, so no figure is given.

    python benchmarks/accuracy.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import compose, md_table, mean_std, write_results  # noqa: E402
from gnnzoo.tasks.backbone import train  # noqa: E402

PUBLISHED = {("cora", "gcn"): 81.5, ("citeseer", "gcn"): 70.3, ("cora", "gat"): 83.0, ("citeseer", "gat"): 72.5}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="gnnzoo-acc-")
    rows, cells = [], {}
    for dataset in ("cora", "citeseer"):
        for backbone in ("gcn", "sage", "gat"):
            accs, vals, secs = [], [], []
            for seed in range(args.seeds):
                cfg = compose(
                    [
                        f"dataset={dataset}",
                        f"backbone={backbone}",
                        f"seed={seed}",
                        "logger=none",
                        "extras.print_config=false",
                        "trainer.enable_progress_bar=false",
                        f"paths.zoo_dir={tmp}/zoo",
                        f"paths.output_dir={tmp}/out",
                    ]
                )
                t0 = time.perf_counter()
                res = train(cfg)
                secs.append(time.perf_counter() - t0)
                accs.append(100 * res["test/acc"])
                vals.append(100 * res["val/acc"])
            m, s = mean_std(accs)
            vm, vs = mean_std(vals)
            pub = PUBLISHED.get((dataset, backbone))
            cells[f"{dataset}/{backbone}"] = {"test": accs, "val": vals, "seconds": secs, "published": pub}
            rows.append(
                [
                    dataset,
                    backbone,
                    f"{m:.2f} ± {s:.2f}",
                    f"{vm:.2f} ± {vs:.2f}",
                    "—" if pub is None else f"{pub:.1f}",
                    "—" if pub is None else f"{m - pub:+.2f}",
                    f"{mean_std(secs)[0]:.2f}",
                ]
            )
            print(rows[-1], flush=True)
    md = md_table(
        [
            "dataset",
            "backbone",
            f"test acc % ({args.seeds} seeds)",
            "val acc %",
            "published",
            "Δ vs published",
            "s / run",
        ],
        rows,
    )
    md += (
        "\n\nDefault configs (`conf/backbone/*.yaml`, Adam lr 0.01, wd 5e-4, 200 epochs, patience 100 on "
        "val acc), public Planetoid splits, test accuracy at the best-validation epoch.\n"
    )
    write_results("accuracy", {"seeds": args.seeds, "cells": cells}, md)


if __name__ == "__main__":
    main()
