"""GNN-Diff benchmark: does generation beat the light search it starts from, and is the pipeline cheaper than
the grid it should replace?

Per cell (dataset/backbone) the grid of ``benchmarks/generate_grids.py`` (540 configs on cora/gcn, the stated 108
elsewhere; 200 epochs, seed 0, batched, two threads) is trained once. Per generation seed s = 0..S-1:

* **light search**: a random 10% of the grid's runs drawn with search seed s (``generator.search.query_fraction=
  0.1``, ``generator.search.seed=s``), so the intervals include the search's own variance; its wall = that
  share of the grid's wall; **light-search best** = its best run by validation (the run GNN-Diff starts from);
* **GNN-Diff**: ``generate.py`` on that light search (``generator.seed=s``), N samples, best by val, test reported;
  on --ablate cells also without the graph condition, on --all-layers cells also with ``collect.target=all``;
* **controls, same budget N, from the same run** (best by val): N perturbations of the best checkpoint, N draws of
  a per-parameter Gaussian fitted to the collected checkpoints, the uniform soup of the collected checkpoints; on
  --seeds-cells the light best config retrained with N new seeds (1000 (s + 1) + i);
* **random search at GNN-Diff's cost**: as many random grid configs as the pipeline's wall buys at the grid's mean
  cost per config (seeded by s), best by val;
* memorisation (nearest-collected-checkpoint distance ratio) and the share of samples whose validation accuracy
  equals the starting point's.

Generation jobs run one at a time with two torch threads, the grid's budget. ``--dev`` runs the declared
development experiment instead (seeds 100..102, validation only; see ``DEV_RULE``). Everything is cached in
--work (a rerun resumes).

    python benchmarks/generate.py [--cells ...] [--seeds 5] [--n 50] [--all-layers cora/gcn] [--dev]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, JobCache, paired, run_jobs, train_multirun  # noqa: E402
from generate_grids import CELLS, COMMON, SMOKE_EPOCHS, build_grid, grid_of, zoo_of  # noqa: E402

THREADS = 2
# --smoke: the whole benchmark in a few minutes (tiny grids, short stages); its results are not the benchmark's
SMOKE = [
    "generator.autoencoder.steps=30",
    "generator.diffusion.steps=30",
    "generator.diffusion.sample_steps=5",
    "generator.collect.k=6",
    "generator.collect.restarts=2",
    "generator.condition.steps=5",
    SMOKE_EPOCHS,
]
# the development experiment (declared before it was run): which sampler becomes the default
DEV_SEEDS = (100, 101, 102)
DEV_CELLS = ("cora/gcn", "cora/sage")
DEV_SAMPLERS = {
    "ddpm1000": ["generator.diffusion.sampler=ddpm", "generator.diffusion.sample_steps=null"],
    "ddim50": ["generator.diffusion.sampler=ddim", "generator.diffusion.sample_steps=50"],
    "ddim20": ["generator.diffusion.sampler=ddim", "generator.diffusion.sample_steps=20"],
}
DEV_STOPS = {"delta1": ["generator.stop.min_delta=0.01"], "delta5": ["generator.stop.min_delta=0.05"]}
DEV_ARMS = {f"{a}/{b}": [*ov, *sv] for b, sv in DEV_STOPS.items() for a, ov in DEV_SAMPLERS.items()}
DEV_RULE = (
    "(1) the default sampler is the cheapest of DDIM-20, DDIM-50, DDPM-1000 whose mean (over the dev cells and "
    "seeds 100-102) validation accuracy of the selected sample and mean validation accuracy of all samples are both "
    "within 0.3 pt of DDPM-1000's, at the declared stop rule (min_delta 0.01); (2) the stop threshold becomes 0.05 "
    "(cheaper: the autoencoder ran to ~2900 of its 3000 steps at 0.01 on the first dev run) if, with that sampler, "
    "both means are within 0.3 pt of 0.01's"
)
# all layers: at ~10^5 generated numbers the conv autoencoder costs ~2 s a step on this CPU (conv1d over long
# sequences is memory-bound whatever the width), so its cap is 300 steps (the stop rule may end it sooner)
VARIANTS = {
    "gnn_diff": [],
    "nocond": ["generator.condition.enabled=false"],
    "all": ["generator.collect.target=all", "generator.autoencoder.steps=300"],
}


def _compose_generate(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("generate", overrides=overrides)


def gen_job(args: tuple) -> dict:
    """One generate.py run, cached under its cell, seed, variant, extra overrides and n."""
    cell, seed, variant, extra, n, work, data_dir, smoke, threads = args
    settings = {
        "kind": "generate",
        "cell": cell,
        "seed": seed,
        "variant": variant,
        "extra": list(extra),
        "n": n,
        "smoke": smoke,
        "grid": grid_of(cell, smoke),
        "common": COMMON,
        "threads": threads,
        "stage_overrides": SMOKE if smoke else [],
    }
    fn = lambda: _generate(cell, seed, variant, list(extra), n, Path(work), data_dir, smoke, threads)  # noqa: E731
    return JobCache(work, __file__).run(settings, fn)["result"]


def _generate(
    cell: str, seed: int, variant: str, extra: list, n: int, work: Path, data_dir: str, smoke: bool, threads: int
):
    from gnnzoo.generate.task import run as run_generate
    from gnnzoo.zoo import Zoo

    ds, bb = cell.split("/")
    zoo = zoo_of(cell, work)
    tag = "_".join([ds, bb, str(seed), variant, *(x.split("=")[-1] for x in extra)])
    ov = [
        f"dataset={ds}",
        f"backbone={bb}",
        *COMMON,
        f"threads={threads}",
        f"paths.zoo_dir={zoo}",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={work / 'cache'}",
        f"paths.output_dir={work / 'out' / tag}",
        "generator.search.query={}",
        "generator.search.query_fraction=0.1",
        f"generator.search.seed={seed}",  # the light search drawn anew per generation seed
        f"generator.seed={seed}",
        f"generator.sample.n={n}",
        *VARIANTS[variant],
        *extra,
        *(SMOKE if smoke else []),
    ]
    t0 = time.perf_counter()
    res = run_generate(_compose_generate(ov))
    z = Zoo(zoo)
    st = res["stages"]
    walls = {k: float(z[st[k]].record["wall_time_s"]) for k in ("collect", "autoencoder", "diffusion", "sample")}
    info = {k: z[st[k]].record["generator"] for k in ("autoencoder", "diffusion")}
    return {
        "cell": cell,
        "seed": seed,
        "variant": variant,
        "extra": extra,
        "n": n,
        "metrics": {k: v for k, v in res.items() if k.startswith(("gen/", "test/", "val/"))},
        "stages": st,
        "walls": walls,
        "steps": {k: v.get("steps") for k, v in info.items()},
        "kwargs": {k: v.get("kwargs") for k, v in info.items()},
        "search_ids": st["search"],
        "best": st["best"],
        "job_s": time.perf_counter() - t0,
    }


def seeds_baseline(cell: str, best_ids: dict, n: int, work: Path, data_dir: str, smoke: bool = False) -> dict:
    """Control (a): per generation seed s, the light search's best config retrained with seeds 1000 (s + 1) + i,
    i < n; its best by val."""
    settings = {"kind": "seeds", "cell": cell, "best": best_ids, "n": n, "smoke": smoke, "common": COMMON}
    fn = lambda: _seeds(cell, best_ids, n, Path(work), data_dir, smoke)  # noqa: E731
    return JobCache(work, __file__).run(settings, fn)["result"]


def _seeds(cell: str, best_ids: dict, n: int, work: Path, data_dir: str, smoke: bool) -> dict:
    from gnnzoo.zoo import Zoo

    ds, bb = cell.split("/")
    picks, wall = {}, 0.0
    for s, best_id in sorted(best_ids.items()):
        rec = Zoo(zoo_of(cell, work))[best_id].record["config"]
        opt = rec["optimizer"]["_target_"].split(".")[-1].lower()
        ov = [
            f"dataset={ds}",
            f"backbone={bb}",
            f"optimizer={opt}",
            f"optimizer.lr={rec['optimizer']['lr']}",
            f"optimizer.weight_decay={rec['optimizer']['weight_decay']}",
            f"backbone.hidden_channels={rec['backbone']['hidden_channels']}",
            f"backbone.dropout={rec['backbone']['dropout']}",
            "seed=" + ",".join(str(1000 * (int(s) + 1) + i) for i in range(n)),
        ]
        zoo = work / f"seeds_{ds}_{bb}_{s}"
        wall += train_multirun(COMMON + ov + ([SMOKE_EPOCHS] if smoke else []), zoo, work, data_dir, zoo.name, 64)
        df = Zoo(zoo).df(kind="run", status="completed")
        best = df.sort_values(["best_val", "run_id"], ascending=[False, True]).iloc[0]
        picks[int(s)] = {"val": float(best.best_val), "test": float(best.test_at_best_val), "runs": int(len(df))}
    return {"cell": cell, "wall_s": wall, "picks": picks}


def best_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: (-r["val"], r["run_id"]))[0]


def cell_summary(cell: str, g: dict, jobs: list[dict], seeds_info: dict | None) -> dict:
    """The cell's figures: per-seed accuracies of every row, the paired differences, walls and memorisation."""
    by_id = {r["run_id"]: r for r in g["runs"]}
    per_run = g["wall_s"] / g["configs"]
    main = sorted([j for j in jobs if j["variant"] == "gnn_diff"], key=lambda j: j["seed"])
    seeds = [j["seed"] for j in main]
    light = [best_run([by_id[i] for i in j["search_ids"]]) for j in main]
    light_wall = [per_run * len(j["search_ids"]) for j in main]
    pipe = [lw + sum(j["walls"].values()) for lw, j in zip(light_wall, main)]
    m = lambda key: [j["metrics"][key] for j in main]  # noqa: E731
    rows = {
        "light_best": [r["test"] for r in light],
        "gnn_diff": m("test/acc"),
        "perturb": m("gen/baseline_perturb_test"),
        "gaussian": m("gen/baseline_gaussian_test"),
        "soup": m("gen/baseline_soup_test"),
    }
    rand = []
    for s, w in zip(seeds, pipe):
        k = min(len(g["runs"]), max(1, int(round(w / per_run))))
        rand.append(best_run(random.Random(7 + s).sample(g["runs"], k))["test"])
    rows["random_equal_cost"] = rand
    for variant in ("nocond", "all"):
        other = {j["seed"]: j for j in jobs if j["variant"] == variant}
        if other:
            rows[variant] = [other[s]["metrics"]["test/acc"] if s in other else float("nan") for s in seeds]
    if seeds_info:
        picks = {int(k): v for k, v in seeds_info["picks"].items()}
        rows["seeds"] = [picks[s]["test"] if s in picks else float("nan") for s in seeds]
    grid_best = best_run(g["runs"])["test"]
    gd = rows["gnn_diff"]
    diffs = {f"gnn_diff_minus_{k}": paired(gd, v) for k, v in rows.items() if k not in ("gnn_diff", "nocond", "all")}
    diffs["gnn_diff_minus_grid"] = paired(gd, [grid_best] * len(gd))
    if "nocond" in rows:
        diffs["condition_minus_nocondition"] = paired(gd, rows["nocond"])
    if "all" in rows:
        diffs["all_layers_minus_last_layer"] = paired(rows["all"], gd)
    stage = {
        k: statistics.fmean(j["walls"][k] for j in main) for k in ("collect", "autoencoder", "diffusion", "sample")
    }
    return {
        "seeds": seeds,
        "rows": rows,
        "grid_acc": grid_best,
        "grid_wall_s": g["wall_s"],
        "grid_configs": g["configs"],
        "light_best_acc": statistics.fmean(rows["light_best"]),
        "gnn_diff_acc": statistics.fmean(gd),
        "gnn_diff_minus_light_best": {k: diffs["gnn_diff_minus_light_best"][k] for k in ("mean", "ci95")},
        "pipeline_wall_s": statistics.fmean(pipe),
        "light_search_wall_s": statistics.fmean(light_wall),
        "stage_wall_s": stage,
        "steps": {k: statistics.fmean(j["steps"][k] or 0 for j in main) for k in ("autoencoder", "diffusion")},
        "wall_ratio": statistics.fmean(pipe) / g["wall_s"],
        "diffs": diffs,
        "share_val_equal_base": statistics.fmean(m("gen/share_val_equal_base")),
        "nn_ratio_median": statistics.median(m("gen/nn_ratio_median")),
        "nn_ratio_p10_min": min(m("gen/nn_ratio_p10")),
        "samples_val_mean": statistics.fmean(m("gen/val_mean")),
        "base_val": statistics.fmean(m("gen/search_best_val")),
        "random_configs": [min(len(g["runs"]), max(1, int(round(w / per_run)))) for w in pipe],
        "seeds_wall_s": seeds_info["wall_s"] if seeds_info else None,
        "kwargs": main[0]["kwargs"],
    }


def _items(cells, seeds, n, work, data_dir, smoke, ablate, all_layers, all_seeds):
    todo = [(c, s, "gnn_diff", (), n, str(work), data_dir, smoke, THREADS) for c in cells for s in seeds]
    todo += [(c, s, "nocond", (), n, str(work), data_dir, smoke, THREADS) for c in ablate for s in seeds]
    todo += [(c, s, "all", (), n, str(work), data_dir, smoke, THREADS) for c in all_layers for s in all_seeds]
    return todo


def _label(item, res):
    m = res["metrics"]
    return (
        f"{res['cell']} seed {res['seed']} {res['variant']}: test {100 * m['test/acc']:.2f} (light best "
        f"{100 * m['gen/search_best_test']:.2f}), steps {res['steps']}, {res['job_s']:.0f}s"
    )


def main() -> None:
    from generate_report import dev_report, report

    ap = argparse.ArgumentParser()
    # PubMed's three 108-config grids did not fit the session that produced the results: pass them to add them
    ap.add_argument("--cells", default=",".join(c for c in CELLS if not c.startswith("pubmed")))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n", type=int, default=50, help="candidates per best-by-val method (GNN-Diff's samples too)")
    ap.add_argument("--ablate", default="cora/gcn", help="cells also run without the graph condition")
    ap.add_argument("--all-layers", default="cora/gcn", help="cells also run on all layers")
    ap.add_argument("--all-layers-seeds", type=int, default=2, help="generation seeds of the all-layers rows")
    ap.add_argument("--seeds-cells", default="cora/gcn", help="cells that get the seeds control")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_generate"))
    ap.add_argument("--smoke", action="store_true", help="tiny grids and stages, results to generate_smoke.*")
    ap.add_argument("--dev", action="store_true", help="the declared development experiment (generate_dev.*)")
    ap.add_argument("--out", default="generate")
    ap.add_argument("--dev-threads", type=int, default=THREADS, help="torch threads of the dev experiment's jobs")
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    a = ap.parse_args()
    work, t0 = Path(a.work), time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    cells = list(DEV_CELLS) if a.dev else a.cells.split(",")
    grids = {c: build_grid(c, work, a.data_dir, a.smoke) for c in cells}
    if a.dev:
        todo = [
            (c, s, "gnn_diff", tuple(ov), a.n, str(work), a.data_dir, a.smoke, a.dev_threads)
            for c in cells
            for s in DEV_SEEDS
            for ov in DEV_ARMS.values()
        ]
        jobs = run_jobs(gen_job, todo, 1, a.dev_threads, _label)
        dev_report(cells, jobs, DEV_ARMS, DEV_RULE, a.n, time.perf_counter() - t0)
        return
    pick = lambda xs: [c for c in xs.split(",") if c in cells] if xs else []  # noqa: E731
    ablate, all_layers, seeds_cells = pick(a.ablate), pick(a.all_layers), pick(a.seeds_cells)
    jobs = run_jobs(
        gen_job,
        _items(cells, range(a.seeds), a.n, work, a.data_dir, a.smoke, ablate, all_layers, range(a.all_layers_seeds)),
        1,
        THREADS,
        _label,
    )
    summary = {}
    for cell in cells:
        cj = [j for j in jobs if j["cell"] == cell]
        seeds_info = None
        if cell in seeds_cells:
            best_ids = {j["seed"]: j["best"] for j in cj if j["variant"] == "gnn_diff"}
            seeds_info = seeds_baseline(cell, best_ids, a.n, work, a.data_dir, a.smoke)
        summary[cell] = cell_summary(cell, grids[cell], cj, seeds_info)
    name = "generate_smoke" if a.smoke else a.out
    command = (
        f"python benchmarks/generate.py --cells {','.join(cells)} --seeds {a.seeds} --n {a.n} --ablate "
        f"{','.join(ablate)} --all-layers {','.join(all_layers)} --all-layers-seeds {a.all_layers_seeds} "
        f"--seeds-cells {','.join(seeds_cells)}"
    )
    report(name, summary, grids, jobs, a.n, time.perf_counter() - t0, command)


if __name__ == "__main__":
    main()
