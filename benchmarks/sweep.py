"""Sweep throughput: 24 small jobs with the basic launcher (sequential, one process) vs joblib
(`hydra/launcher=local`, n_jobs=2), plus where a job's overhead goes.

Jobs: GCN on a 2000-node synthetic graph, 50 epochs, W&B offline (the default logger), each job
its own zoo entry. The two sweeps alternate (`--repeats` each), each into a fresh zoo.

    python benchmarks/sweep.py [--repeats 2] [--jobs 24]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, compose, md_table, mean_std, write_results  # noqa: E402

JOB = [
    "dataset=synthetic",
    "trainer.max_epochs=50",
    "monitor.patience=null",
    "trainer.enable_progress_bar=false",
    "extras.print_config=false",
]


def run_sweep(n_jobs: int, jobs: int, launcher: list[str]) -> tuple[float, float, str]:
    tmp = tempfile.mkdtemp(prefix="gnnzoo-sweep-")
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        f"seed=range(0,{jobs})",
        *JOB,
        *launcher,
        f"paths.zoo_dir={tmp}/zoo",
        f"paths.log_dir={tmp}/logs",
        f"paths.cache_dir={tmp}/cache",
    ]
    env = dict(os.environ, WANDB_SILENT="true")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    from gnnzoo.zoo import Zoo

    df = Zoo(f"{tmp}/zoo").df(status="completed")
    assert len(df) == jobs, f"expected {jobs} entries, got {len(df)}"
    summary = [ln for ln in p.stdout.splitlines() if ln.startswith("sweep summary")]
    return wall, float(df.wall_time_s.sum()), summary[0] if summary else ""


def timed(code: str, repeats: int = 3) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, env=dict(os.environ, WANDB_SILENT="true")
        )
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=24)
    args = ap.parse_args()
    sides = {"basic launcher (sequential)": [], "joblib, n_jobs=2": ["hydra/launcher=local", "hydra.launcher.n_jobs=2"]}
    walls = {k: [] for k in sides}
    train_s = {k: [] for k in sides}
    summaries = {}
    for _ in range(args.repeats):
        for name, launcher in sides.items():
            w, t, s = run_sweep(2, args.jobs, launcher)
            walls[name].append(w)
            train_s[name].append(t)
            summaries[name] = s
            print(name, f"{w:.1f}s", s, flush=True)

    # per-job overhead pieces, each in a fresh process
    start = timed("pass")
    imports = timed("import gnnzoo.tasks.backbone, pytorch_lightning, torch_geometric, hydra") - start
    wandb_code = (
        "import wandb, tempfile; d=tempfile.mkdtemp(); import time; t=time.perf_counter(); "
        "wandb.init(mode='offline', dir=d, project='bench'); wandb.finish(); "
        "print(time.perf_counter()-t)"
    )
    ws = []
    for _ in range(3):
        out = (
            subprocess.run(
                [sys.executable, "-c", wandb_code],
                check=True,
                capture_output=True,
                text=True,
                env=dict(os.environ, WANDB_SILENT="true"),
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        ws.append(float(out))
    wandb_s = sorted(ws)[1]

    # profile of one job in-process, W&B offline logger on
    tmp = tempfile.mkdtemp(prefix="gnnzoo-sweep-prof-")
    from gnnzoo.tasks.backbone import train

    cfg = compose(JOB + [f"paths.zoo_dir={tmp}/zoo", f"paths.output_dir={tmp}/out", "zoo.skip_completed=false"])
    train(cfg)
    pr = cProfile.Profile()
    pr.enable()
    t0 = time.perf_counter()
    train(cfg)
    job_in_process = time.perf_counter() - t0
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumtime").print_stats(30)
    prof = [ln.strip() for ln in s.getvalue().splitlines() if ln.strip() and ln.strip()[0].isdigit()][:25]

    b, j = "basic launcher (sequential)", "joblib, n_jobs=2"
    bm, bs = mean_std(walls[b])
    jm, js = mean_std(walls[j])
    speedups = [x / y for x, y in zip(walls[b], walls[j])]
    sm, ss = mean_std(speedups)
    rows = []
    for name in sides:
        m, sd = mean_std(walls[name])
        tm, _ = mean_std(train_s[name])
        per_job_overhead = (m - tm / (2 if name == j else 1)) / args.jobs
        rows.append(
            [
                name,
                f"{m:.1f} ± {sd:.1f}",
                f"{m / args.jobs:.2f}",
                f"{tm / args.jobs:.2f}",
                f"{per_job_overhead:.2f}",
                summaries[name],
            ]
        )
    md = md_table(
        [
            "launcher",
            f"sweep wall s ({args.jobs} jobs)",
            "s / job",
            "train() s / job (record)",
            "overhead s / job",
            "summary line",
        ],
        rows,
    )
    md += (
        f"\n\n**joblib speedup: {sm:.2f}× ± {ss:.2f}** ({args.repeats} alternating repeats; 2 cores, so 2× is "
        "the ceiling). joblib workers get 1 torch thread each (cores / n_jobs).\n\n"
        "Overhead is wall time minus the jobs' own `train()` time (from the zoo records; halved for 2 "
        "parallel workers), spread over the jobs.\n\n"
    )
    md += md_table(
        ["per-job cost, measured apart", "seconds"],
        [
            ["python process start (`python -c pass`)", f"{start:.2f}"],
            ["imports (gnnzoo, Lightning, PyG, Hydra)", f"{imports:.2f}"],
            ["W&B offline init + finish", f"{wandb_s:.2f}"],
            ["one job in-process (train(), W&B offline)", f"{job_in_process:.2f}"],
        ],
    )
    md += (
        "\n\nProcess start and imports are paid once per sweep with the basic launcher and once per worker "
        "with joblib (loky reuses its workers); W&B init is paid by every job.\n\n"
        "## Top of the profile of one in-process job (cumulative)\n\n```\n" + "\n".join(prof) + "\n```\n"
    )
    write_results(
        "sweep",
        {
            "jobs": args.jobs,
            "repeats": args.repeats,
            "walls": walls,
            "train_s": train_s,
            "speedup_mean": sm,
            "speedup_std": ss,
            "process_start_s": start,
            "imports_s": imports,
            "wandb_offline_init_finish_s": wandb_s,
            "job_in_process_s": job_in_process,
            "profile": prof,
        },
        md,
    )


if __name__ == "__main__":
    main()
