"""The GNN-Diff small-graph grid on Cora with GCN, batched: 540 configurations, 200 epochs, 1 seed.

optimizer {SGD, Adam} x lr {0.005, 0.01, 0.05, 0.1, 0.5, 1} x hidden {16, 32, 64} x dropout {0.1, 0.3,
0.5, 0.7, 0.9} x weight decay {5e-4, 5e-3, 5e-2}, run as users would:

    python train.py -m hydra/launcher=batched hydra.launcher.max_models=180 optimizer=sgd,adam ...

(one process; Hydra composes the 540 jobs, the launcher packs them into batches by hidden size),
every run into a fresh zoo. No early stopping (`monitor.patience=null`), SGD with momentum 0.9.

    python benchmarks/grid.py [--max-models 180] [--epochs 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, md_table, write_results  # noqa: E402

GRID = [
    "optimizer=sgd,adam",
    "optimizer.lr=0.005,0.01,0.05,0.1,0.5,1.0",
    "backbone.hidden_channels=16,32,64",
    "backbone.dropout=0.1,0.3,0.5,0.7,0.9",
    "optimizer.weight_decay=5e-4,5e-3,5e-2",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-models", type=int, default=180)
    ap.add_argument("--epochs", type=int, default=200)
    args = ap.parse_args()
    tmp, wall, stdout = run_grid(args)
    report(tmp, wall, stdout, "the whole `train.py -m` process, measured around the subprocess", args)


def run_grid(args) -> tuple[str, float, str]:
    tmp = tempfile.mkdtemp(prefix="gnnzoo-grid-")
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hydra/launcher=batched",
        f"hydra.launcher.max_models={args.max_models}",
        "dataset=cora",
        "backbone=gcn",
        *GRID,
        "logger=none",
        "monitor.patience=null",
        f"trainer.max_epochs={args.epochs}",
        "extras.print_config=false",
        f"paths.zoo_dir={tmp}/zoo",
        f"paths.log_dir={tmp}/logs",
        f"paths.cache_dir={tmp}/cache",
    ]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(p.stderr[-4000:])
    return tmp, wall, p.stdout


def report(tmp: str, wall: float, stdout: str, timing: str, args) -> None:
    from gnnzoo.zoo import Zoo

    df = Zoo(f"{tmp}/zoo").df()
    done = df[df.status == "completed"]
    summary = [ln for ln in stdout.splitlines() if ln.startswith("sweep summary")]
    best = done.sort_values(["best_val", "test/acc"], ascending=False).iloc[0]
    cols = [
        "cfg.optimizer._target_",
        "cfg.optimizer.lr",
        "cfg.backbone.hidden_channels",
        "cfg.backbone.dropout",
        "cfg.optimizer.weight_decay",
    ]
    best_cfg = {c.split(".", 1)[1]: (best[c].item() if hasattr(best[c], "item") else best[c]) for c in cols}
    top = done.sort_values("best_val", ascending=False).head(5)
    rows = [
        [
            r["cfg.optimizer._target_"].rsplit(".", 1)[-1],
            r["cfg.optimizer.lr"],
            r["cfg.backbone.hidden_channels"],
            r["cfg.backbone.dropout"],
            r["cfg.optimizer.weight_decay"],
            f"{100 * r['best_val']:.2f}",
            f"{100 * r['test/acc']:.2f}",
        ]
        for _, r in top.iterrows()
    ]
    md = md_table(
        ["runs in zoo", "completed", "failed", "wall s", "target ≤ 600 s"],
        [
            [
                len(df),
                len(done),
                int((df.status == "failed").sum()),
                f"{wall:.1f}",
                "met" if wall <= 600 and len(df) == 540 else "NOT met",
            ]
        ],
    )
    md += f"\n\n{summary[0] if summary else ''}\n\nTop 5 configurations by validation accuracy:\n\n"
    md += md_table(
        ["optimizer", "lr", "hidden", "dropout", "weight decay", "val acc %", "test acc % (at best val)"], rows
    )
    md += (
        f"\n\nBest by val: {best_cfg} → val {100 * best['best_val']:.2f}%, test {100 * best['test/acc']:.2f}%. "
        f"Test accuracy over all completed runs: median {100 * done['test/acc'].median():.2f}%, "
        f"max {100 * done['test/acc'].max():.2f}%.\n\nWall time: {timing}; it covers imports, Hydra "
        "composing the 540 jobs, data loading, training and 540 zoo writes.\n"
    )
    write_results(
        "grid",
        {
            "wall_s": wall,
            "runs": int(len(df)),
            "completed": int(len(done)),
            "failed": int((df.status == "failed").sum()),
            "best": {**best_cfg, "val": float(best["best_val"]), "test": float(best["test/acc"])},
            "max_models": args.max_models,
            "epochs": args.epochs,
            "timing": timing,
        },
        md,
    )


if __name__ == "__main__":
    main()
