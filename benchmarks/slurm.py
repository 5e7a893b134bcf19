"""The 540-config Cora GCN grid on this machine's one-node SLURM cluster against the local batched launcher.

    python benchmarks/slurm.py [--epochs 200] [--max-models 180] [--skip-per-run]

Legs, each a whole ``train.py -m`` process into a fresh zoo (the grid of ``benchmarks/grid.py``: optimizer x lr x
hidden x dropout x weight decay, no early stopping), timed around the subprocess:

1. ``hydra/launcher=batched`` (the local batched launcher; one process, torch's default 2 threads);
2. ``hydra/launcher=slurm_batched`` with ``cpus_per_task=2`` (same threads as 1; one array task at a time);
3. ``hydra/launcher=slurm_batched`` with ``cpus_per_task=1`` (two array tasks at once, one thread each);
4. a 54-run subset (sgd/adam x lr 0.01/0.1/1 x hidden 16/32/64 x dropout 0.1/0.5/0.9) as one SLURM job per run
   (``hydra/launcher=slurm``, ``cpus_per_task=1``: two at once), and the same subset as batched groups on SLURM.

Per-run overhead of leg 4: wall x 2 slots / 54 runs minus the mean training time of a run (its record's
``wall_time_s``): what each job spends outside training (scheduling, Python start-up, imports, data loading).
The legs run one after another on the same machine (never concurrently). The cluster is the one
``scripts/slurm_local.sh`` starts (the script starts it when ``SLURM_CONF`` names no running cluster, and stops
what it started). The zoos of legs 1-3 must hold the same run ids (checked).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, code_digest, md_table, write_results  # noqa: E402
from grid import GRID  # noqa: E402

SUBSET = [
    "optimizer=sgd,adam",
    "optimizer.lr=0.01,0.1,1.0",
    "backbone.hidden_channels=16,32,64",
    "backbone.dropout=0.1,0.5,0.9",
]
SLURM_SMALL = ["hydra.launcher.mem_gb=4", "hydra.launcher.poll_s=2", "hydra.launcher.timeout_min=120"]


def cluster() -> tuple[dict, bool]:
    """The environment of a running cluster (``SLURM_CONF``), starting one when needed; whether we started it."""
    env = dict(os.environ)
    if env.get("SLURM_CONF") and subprocess.run(["sinfo"], env=env, capture_output=True).returncode == 0:
        return env, False
    state = tempfile.mkdtemp(prefix="gnnzoo-bench-slurm-")
    env.update(SLURM_LOCAL_DIR=state, SLURM_LOCAL_PORT=env.get("SLURM_LOCAL_PORT", "6837"))
    p = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "start"], env=env, text=True)
    if p.returncode != 0:
        raise SystemExit("the local SLURM cluster did not start (scripts/slurm_local.sh start)")
    env["SLURM_CONF"] = f"{state}/slurm.conf"
    return env, True


def leg(name: str, launcher: list[str], grid: list[str], args, env: dict, work: Path) -> dict:
    d = work / name
    d.mkdir(parents=True)
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        *launcher,
        "dataset=cora",
        "backbone=gcn",
        *grid,
        "logger=none",
        "monitor.patience=null",
        f"trainer.max_epochs={args.epochs}",
        "trainer.enable_progress_bar=false",
        "extras.print_config=false",
        f"paths.zoo_dir={d}/zoo",
        f"paths.log_dir={d}/logs",
        f"paths.cache_dir={work}/cache",
        f"hydra.sweep.dir={d}/sweep",
    ]
    print(f"[{name}] {' '.join(launcher)} ...", flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"[{name}] failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    records = [json.loads(f.read_text()) for f in (d / "zoo").glob("*/record.json")]
    summary = next((ln for ln in p.stdout.splitlines() if ln.startswith("sweep summary")), "")
    out = {
        "wall_s": wall,
        "runs": len(records),
        "completed": sum(r["status"] == "completed" for r in records),
        "run_ids": sorted(r["run_id"] for r in records),
        "train_s_mean": sum(r.get("wall_time_s") or 0 for r in records) / max(1, len(records)),
        "summary": summary,
    }
    print(f"[{name}] {wall:.1f} s, {out['completed']}/{out['runs']} completed; {summary}", flush=True)
    (work / f"{name}.json").write_text(json.dumps(out))  # kept: a report can be rebuilt from the legs
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--max-models", type=int, default=180)
    ap.add_argument("--skip-per-run", action="store_true", help="legs 1-3 only")
    ap.add_argument("--report-from", help="a finished run's work folder: rebuild the report from its legs' JSON")
    args = ap.parse_args()
    if args.report_from:
        names = ["local_batched", "slurm_batched_cpus2", "slurm_batched_cpus1", "slurm_per_run_54", "slurm_batched_54"]
        found = {n: Path(args.report_from) / f"{n}.json" for n in names}
        report({n: json.loads(f.read_text()) for n, f in found.items() if f.is_file()}, args)
        return
    env, started = cluster()
    work = Path(tempfile.mkdtemp(prefix="gnnzoo-bench-slurm-work-"))
    mm = f"hydra.launcher.max_models={args.max_models}"
    legs: dict[str, dict] = {}
    try:
        # warm the processed-data cache once, so that no leg pays for preprocessing Cora
        leg("warmup", ["hydra/launcher=batched", mm], ["seed=0"], argparse.Namespace(epochs=1), env, work)
        legs["local_batched"] = leg("local_batched", ["hydra/launcher=batched", mm], GRID, args, env, work)
        for cpus in (2, 1):
            legs[f"slurm_batched_cpus{cpus}"] = leg(
                f"slurm_batched_cpus{cpus}",
                ["hydra/launcher=slurm_batched", mm, f"hydra.launcher.cpus_per_task={cpus}", *SLURM_SMALL],
                GRID,
                args,
                env,
                work,
            )
        if not args.skip_per_run:
            small = ["hydra.launcher.cpus_per_task=1", *SLURM_SMALL]
            per_run = ["hydra/launcher=slurm", *small]
            legs["slurm_per_run_54"] = leg("slurm_per_run_54", per_run, SUBSET, args, env, work)
            legs["slurm_batched_54"] = leg(
                "slurm_batched_54", ["hydra/launcher=slurm_batched", mm, *small], SUBSET, args, env, work
            )
    finally:
        if started:
            subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "stop"], env=env)
    report(legs, args)


def report(legs: dict, args) -> None:
    local = legs["local_batched"]
    same_ids = all(legs[k]["run_ids"] == local["run_ids"] for k in legs if k.startswith("slurm_batched_cpus"))
    rows = []
    for name, lg in legs.items():
        ratio = lg["wall_s"] / local["wall_s"] if lg["runs"] == local["runs"] else float("nan")
        rows.append(
            [
                name,
                lg["runs"],
                lg["completed"],
                f"{lg['wall_s']:.1f}",
                f"{lg['wall_s'] / max(1, lg['runs']):.2f}",
                "" if ratio != ratio else f"{ratio:.2f}",
            ]
        )
    summary = {
        "local_batched_s": round(local["wall_s"], 1),
        "slurm_batched_s": round(legs["slurm_batched_cpus2"]["wall_s"], 1),
        "slurm_batched_1cpu_s": round(legs["slurm_batched_cpus1"]["wall_s"], 1),
        "slurm_per_run_s": round(legs["slurm_per_run_54"]["wall_s"], 1) if "slurm_per_run_54" in legs else None,
        "slurm_per_run_runs": legs["slurm_per_run_54"]["runs"] if "slurm_per_run_54" in legs else None,
        "runs": local["runs"],
        "ratio_slurm_batched_to_local": round(legs["slurm_batched_cpus2"]["wall_s"] / local["wall_s"], 3),
        "target_ratio": 1.5,
        "same_run_ids": same_ids,
    }
    md = md_table(["leg", "runs", "completed", "wall s", "s per run", "wall / local batched"], rows)
    met = summary["ratio_slurm_batched_to_local"] <= 1.5
    md += (
        f"\n\nTarget: batched groups on SLURM within 1.5× of the local batched launcher for the same grid and "
        f"threads: {summary['ratio_slurm_batched_to_local']:.2f}× ({'met' if met else 'NOT met'}). The zoos of the "
        f"local and SLURM batched legs hold {'the same' if same_ids else 'DIFFERENT'} {local['runs']} run ids.\n"
    )
    if "slurm_per_run_54" in legs:
        pr = legs["slurm_per_run_54"]
        overhead = pr["wall_s"] * 2 / pr["runs"] - pr["train_s_mean"]
        summary["per_run_overhead_s"] = round(overhead, 2)
        summary["per_run_train_s_mean"] = round(pr["train_s_mean"], 2)
        bt = legs["slurm_batched_54"]
        md += (
            f"\nOne SLURM job per run (54 runs, 2 at a time, 1 CPU each): {pr['wall_s']:.1f} s, of which a run "
            f"trains {pr['train_s_mean']:.1f} s on average (its record's wall_time_s): {overhead:.1f} s per run go "
            f"to scheduling, start-up, imports and data loading. The same 54 runs as batched groups on SLURM: "
            f"{bt['wall_s']:.1f} s ({pr['wall_s'] / bt['wall_s']:.1f}× less).\n"
        )
    md += (
        f"\nEach leg is one `train.py -m` process into a fresh zoo, timed around the subprocess (composition, "
        f"submission, queueing, training, zoo writes), {args.epochs} epochs, no early stopping, max_models "
        f"{args.max_models}; the legs ran one after another on this machine's one-node cluster "
        f"(`scripts/slurm_local.sh`).\n"
    )
    write_results(
        "slurm",
        {
            "summary": summary,
            "legs": {k: {kk: vv for kk, vv in v.items() if kk != "run_ids"} for k, v in legs.items()},
            "epochs": args.epochs,
            "max_models": args.max_models,
            "code": code_digest(__file__),
        },
        md,
    )


if __name__ == "__main__":
    main()
