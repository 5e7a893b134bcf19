"""GNN-Diff benchmark: generate.py against grid search, light search, random search at equal cost, and the
same-budget controls (seeds, perturbations, soup), with the memorisation ratio and every stage's wall time.

Per cell (dataset/backbone):

* **grid**: trained once with ``train.py -m hydra/launcher=batched`` as ``benchmarks/grid.py`` does (200 epochs,
  no early stopping, seed 0): the 540-config GNN-Diff grid for cora/gcn; for the other cells the stated smaller
  grid with the same axes, {SGD, Adam} x lr {0.01, 0.05, 0.1} x hidden {16, 32, 64} x dropout {0.1, 0.5, 0.9} x
  weight decay {5e-4, 5e-3} = 108 configs (the 540 grid does not fit this machine's time for them). Grid
  search = the config with the best validation accuracy (one seed per config, so selection is by that
  seed's val), its test accuracy;
* **light search**: a random 10% of the grid's runs (``generator.search.query_fraction=0.1``, search seed 42,
  as GNN-Diff's coarse search), the same for every generation seed; its wall time is that fraction of the
  grid's;
* **GNN-Diff**: ``generate.py`` on that light search with generation seeds 0..S-1 (``generator.seed``), N
  samples, best by val, test reported; also with ``generator.condition.enabled=false`` on --ablate cells;
* **controls, same budget N** (best by val, test reported): (a) the light search's best config retrained
  with N new seeds (1000 (s + 1) .. 1000 (s + 1) + N - 1 for generation seed s), (b) N Gaussian perturbations of the
  best checkpoint (σ per position = the collected checkpoints' spread) and (c) the uniform soup of the
  collected checkpoints (both from the generate run itself);
* **random search at equal cost**: as many random grid configs as GNN-Diff's total wall time buys at the
  grid's mean cost per config (seeded per generation seed), best by val;
* memorisation: ``gen/nn_ratio_median`` (distance to the nearest collected checkpoint / median
  nearest-neighbour distance among them), per run.

Generation jobs run in --jobs worker processes with one torch thread each; the grid and the seed runs train
with two threads, one at a time. Everything is cached in --work (a rerun resumes).

    python benchmarks/generate.py [--cells cora/gcn,citeseer/gcn,cora/sage] [--seeds 5] [--n 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, JobCache, ci95, md_table, mean_std, run_jobs, train_multirun, write_results  # noqa: E402
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
# --smoke: the whole benchmark in a few minutes (tiny grids, short stages); its results are not the benchmark's
SMOKE = [
    "generator.autoencoder.steps=30",
    "generator.diffusion.steps=30",
    "generator.diffusion.sampler=ddim",
    "generator.diffusion.sample_steps=5",
    "generator.collect.k=6",
    "generator.collect.restarts=2",
    "generator.condition.steps=5",
    "trainer.max_epochs=20",
]
COMMON = [
    "logger=none",
    "monitor.patience=null",
    "trainer.max_epochs=200",
    "extras.print_config=false",
    "trainer.enable_progress_bar=false",
]


def _train_multirun(
    overrides: list[str], zoo: Path, work: Path, data_dir: str, tag: str, max_models: int = 180
) -> float:
    return train_multirun(COMMON + overrides, zoo, work, data_dir, tag, max_models)


def build_grid(cell: str, work: Path, data_dir: str, smoke: bool = False) -> dict:
    grid = SMOKE_GRID if smoke else GRIDS.get(cell, SMALL_GRID)
    settings = {"kind": "grid", "cell": cell, "grid": grid, "common": COMMON, "smoke": smoke}
    return JobCache(work, __file__).run(settings, lambda: _build_grid(cell, grid, work, data_dir, smoke))["result"]


def _build_grid(cell: str, grid: list[str], work: Path, data_dir: str, smoke: bool) -> dict:
    ds, bb = cell.split("/")
    zoo = work / f"zoo_{ds}_{bb}"
    wall = _train_multirun(
        [f"dataset={ds}", f"backbone={bb}", "seed=0", *grid, *(SMOKE[-1:] if smoke else [])],
        zoo,
        work,
        data_dir,
        f"grid_{ds}_{bb}",
    )
    from gnnzoo.zoo import Zoo

    df = Zoo(zoo).df(kind="run", status="completed")
    info = {
        "cell": cell,
        "zoo": str(zoo),
        "configs": int(len(df)),
        "wall_s": wall,
        "grid": grid,
        "runs": [
            {"run_id": r.run_id, "val": float(r.best_val), "test": float(r.test_at_best_val)} for r in df.itertuples()
        ],
    }
    return info


def _compose_generate(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("generate", overrides=overrides)


def gen_job(args: tuple) -> dict:
    """One generate.py run, cached by the harness under its cell, seed, condition, n and every override."""
    cell, seed, cond, n, work, data_dir, smoke = args
    work = Path(work)
    grid = SMOKE_GRID if smoke else GRIDS.get(cell, SMALL_GRID)
    settings = {
        "kind": "generate",
        "cell": cell,
        "seed": seed,
        "cond": bool(cond),
        "n": n,
        "smoke": smoke,
        "grid": grid,
        "common": COMMON,
        "stage_overrides": SMOKE if smoke else [],
    }
    return JobCache(work, __file__).run(settings, lambda: _generate(cell, seed, cond, n, work, data_dir, smoke))[
        "result"
    ]


def _generate(cell: str, seed: int, cond: bool, n: int, work: Path, data_dir: str, smoke: bool) -> dict:
    from gnnzoo.generate.task import run as run_generate

    tag = f"{cell.replace('/', '_')}_{seed}_{'cond' if cond else 'nocond'}"
    from gnnzoo.zoo import Zoo

    ds, bb = cell.split("/")
    zoo = work / f"zoo_{ds}_{bb}"
    ov = [
        f"dataset={ds}",
        f"backbone={bb}",
        *COMMON,
        "threads=1",
        f"paths.zoo_dir={zoo}",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={work / 'cache'}",
        f"paths.output_dir={work / 'out' / tag}",
        "generator.search.query={}",
        "generator.search.query_fraction=0.1",
        f"generator.seed={seed}",
        f"generator.sample.n={n}",
        f"generator.condition.enabled={str(bool(cond)).lower()}",
        *(SMOKE if smoke else []),
    ]
    t0 = time.perf_counter()
    res = run_generate(_compose_generate(ov))
    z = Zoo(zoo)
    st = res["stages"]
    walls = {k: float(z[st[k]].record["wall_time_s"]) for k in ("collect", "autoencoder", "diffusion", "sample")}
    payload = {
        "cell": cell,
        "seed": seed,
        "cond": bool(cond),
        "n": n,
        "metrics": {k: v for k, v in res.items() if k.startswith(("gen/", "test/", "val/"))},
        "stages": st,
        "walls": walls,
        "search_ids": st["search"],
        "best": st["best"],
        "job_s": time.perf_counter() - t0,
    }
    return payload


def seeds_baseline(cell: str, best_id: str, seeds: int, n: int, work: Path, data_dir: str, smoke: bool = False) -> dict:
    """Control (a): the light search's best config with n new seeds per generation seed s (1000 (s + 1) + i),
    best by val."""
    settings = {"kind": "seeds", "cell": cell, "best": best_id, "seeds": seeds, "n": n, "smoke": smoke}
    return JobCache(work, __file__).run(settings, lambda: _seeds(cell, best_id, seeds, n, work, data_dir, smoke))[
        "result"
    ]


def _seeds(cell: str, best_id: str, seeds: int, n: int, work: Path, data_dir: str, smoke: bool) -> dict:
    from gnnzoo.zoo import Zoo

    ds, bb = cell.split("/")
    rec = Zoo(work / f"zoo_{ds}_{bb}")[best_id].record["config"]
    opt = rec["optimizer"]["_target_"].split(".")[-1].lower()
    ov = [
        f"dataset={ds}",
        f"backbone={bb}",
        f"optimizer={opt}",
        f"optimizer.lr={rec['optimizer']['lr']}",
        f"optimizer.weight_decay={rec['optimizer']['weight_decay']}",
        f"backbone.hidden_channels={rec['backbone']['hidden_channels']}",
        f"backbone.dropout={rec['backbone']['dropout']}",
    ]
    zoo = work / f"seeds_{ds}_{bb}"
    seed_list = ",".join(str(1000 * (s + 1) + i) for s in range(seeds) for i in range(n))
    # batches of 64: one batch of 180 CiteSeer models ran super-linearly slower (1069 s for 250 runs)
    wall = _train_multirun(
        ov + [f"seed={seed_list}", *(SMOKE[-1:] if smoke else [])],
        zoo,
        work,
        data_dir,
        f"seeds_{ds}_{bb}",
        max_models=64,
    )
    df = Zoo(zoo).df(kind="run", status="completed")
    picks = {}
    for s in range(seeds):
        sub = df[(df.seed >= 1000 * (s + 1)) & (df.seed < 1000 * (s + 1) + n)]
        best = sub.sort_values(["best_val", "run_id"], ascending=[False, True]).iloc[0]
        picks[s] = {"val": float(best.best_val), "test": float(best.test_at_best_val), "runs": int(len(sub))}
    return {"cell": cell, "best_config": ov, "wall_s": wall, "picks": picks}


def _best(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: (-r["val"], r["run_id"]))[0]


def report(
    cells: list[str],
    grids: dict,
    gens: list[dict],
    seeds_info: dict,
    seeds: int,
    n: int,
    wall: float,
    ablate: list[str],
    name: str = "generate",
) -> None:
    import random

    summary, rows, wrows, crows = {}, [], [], []
    for cell in cells:
        g = grids[cell]
        by_id = {r["run_id"]: r for r in g["runs"]}
        grid_best = _best(g["runs"])
        per_run = g["wall_s"] / g["configs"]
        js = sorted([j for j in gens if j["cell"] == cell and j["cond"]], key=lambda j: j["seed"])
        light = _best([by_id[i] for i in js[0]["search_ids"]])
        light_wall = per_run * len(js[0]["search_ids"])
        gd = [j["metrics"]["test/acc"] for j in js]
        pert = [j["metrics"]["gen/baseline_perturb_test"] for j in js]
        soup = [j["metrics"]["gen/baseline_soup_test"] for j in js]
        picks = {int(k): v for k, v in seeds_info[cell]["picks"].items()} if cell in seeds_info else {}
        seeds_acc = [picks[j["seed"]]["test"] for j in js if j["seed"] in picks]  # JSON keys are strings
        gd_walls = [light_wall + sum(j["walls"].values()) for j in js]
        rand = []
        for j, w in zip(js, gd_walls):
            k = min(len(g["runs"]), max(1, int(round(w / per_run))))
            rng = random.Random(7 + j["seed"])
            rand.append(_best(rng.sample(g["runs"], k))["test"])
        nn = [j["metrics"]["gen/nn_ratio_median"] for j in js]
        nn10 = [j["metrics"]["gen/nn_ratio_p10"] for j in js]
        gm, gs = mean_std(gd)
        summary[cell] = {
            "grid_acc": grid_best["test"],
            "gnn_diff_acc": gm,
            "gnn_diff_std": gs,
            "light_acc": light["test"],
            "random_acc": mean_std(rand)[0],
            "baseline_acc": {
                "seeds": mean_std(seeds_acc)[0] if seeds_acc else None,
                "perturb": mean_std(pert)[0],
                "soup": mean_std(soup)[0],
            },
            "gnn_diff_wall_s": statistics.fmean(gd_walls),
            "grid_wall_s": g["wall_s"],
            "wall_ratio": statistics.fmean(gd_walls) / g["wall_s"],
            "nn_ratio_median": statistics.median(nn),
            "seeds": len(js),
            "n": n,
        }
        summary[cell]["diff_ci95"] = {  # paired per generation seed; the grid is one number
            "gnn_diff_minus_grid": [
                mean_std([x - grid_best["test"] for x in gd])[0],
                ci95([x - grid_best["test"] for x in gd]),
            ],
            "gnn_diff_minus_perturb": [
                mean_std([a_ - b_ for a_, b_ in zip(gd, pert)])[0],
                ci95([a_ - b_ for a_, b_ in zip(gd, pert)]),
            ],
            "gnn_diff_minus_soup": [
                mean_std([a_ - b_ for a_, b_ in zip(gd, soup)])[0],
                ci95([a_ - b_ for a_, b_ in zip(gd, soup)]),
            ],
        }
        if seeds_acc:
            dd = [a_ - b_ for a_, b_ in zip(gd, seeds_acc)]
            summary[cell]["diff_ci95"]["gnn_diff_minus_seeds"] = [mean_std(dd)[0], ci95(dd)]
        nc = sorted([j for j in gens if j["cell"] == cell and not j["cond"]], key=lambda j: j["seed"])
        if nc:
            summary[cell]["gnn_diff_nocond_acc"] = mean_std([j["metrics"]["test/acc"] for j in nc])[0]
            by_seed = {j["seed"]: j["metrics"]["test/acc"] for j in nc}
            dd = [j["metrics"]["test/acc"] - by_seed[j["seed"]] for j in js if j["seed"] in by_seed]
            summary[cell]["diff_ci95"]["condition_minus_nocondition"] = [mean_std(dd)[0], ci95(dd)]

        def f(xs):
            m, s = mean_std(xs)
            return f"{100 * m:.2f} ± {100 * s:.2f}"

        rows += [
            [cell, "grid search", f"{100 * grid_best['test']:.2f}", g["configs"], f"{g['wall_s']:.0f}"],
            [cell, "light search (10%)", f"{100 * light['test']:.2f}", len(js[0]["search_ids"]), f"{light_wall:.0f}"],
            [cell, "random search, GNN-Diff's cost", f(rand), "", ""],
            [cell, f"**GNN-Diff** (best of {n} by val)", f(gd), len(js), f"{statistics.fmean(gd_walls):.0f}"],
        ]
        if nc:
            ncw = [light_wall + sum(j["walls"].values()) for j in nc]
            rows.append(
                [
                    cell,
                    "GNN-Diff without graph condition",
                    f([j["metrics"]["test/acc"] for j in nc]),
                    len(nc),
                    f"{statistics.fmean(ncw):.0f}",
                ]
            )
        rows += [
            [
                cell,
                f"(a) best light config, {n} seeds",
                f(seeds_acc) if seeds_acc else "not run (time)",
                len(seeds_acc),
                f"{seeds_info[cell]['wall_s']:.0f} (all seeds)" if cell in seeds_info else "",
            ],
            [cell, f"(b) {n} perturbations of the best checkpoint", f(pert), len(js), ""],
            [cell, "(c) uniform soup of the collected checkpoints", f(soup), len(js), ""],
        ]
        st = {k: statistics.fmean(j["walls"][k] for j in js) for k in ("collect", "autoencoder", "diffusion", "sample")}
        wrows.append(
            [
                cell,
                f"{g['wall_s']:.0f}",
                f"{light_wall:.0f}",
                *(f"{st[k]:.0f}" for k in st),
                f"{statistics.fmean(gd_walls):.0f}",
                f"{statistics.fmean(gd_walls) / g['wall_s']:.2f}×",
            ]
        )
        crows.append(
            [
                cell,
                f"{statistics.median(nn):.3f}",
                f"{min(nn10):.3f}",
                f"{100 * statistics.fmean(j['metrics']['gen/val_mean'] for j in js):.2f}",
                f"{100 * statistics.fmean(j['metrics']['gen/collected_val_max'] for j in js):.2f}",
            ]
        )
    lines = [
        md_table(
            ["cell", "method", "test acc % (mean ± std over generation seeds)", "configs / seeds", "wall s"], rows
        ),
        "",
        "Wall time per stage (mean over generation seeds; light search = its share of the grid's wall):",
        "",
        md_table(
            [
                "cell",
                "grid s",
                "light search s",
                "collect s",
                "autoencoder s",
                "diffusion s",
                "sample s",
                "GNN-Diff total s",
                "GNN-Diff / grid",
            ],
            wrows,
        ),
        "",
        "Memorisation (distance of a sample to its nearest collected checkpoint / median nearest-neighbour "
        "distance among the collected checkpoints; ≈ 0: copies):",
        "",
        md_table(
            [
                "cell",
                "nn ratio median (median over seeds)",
                "10th percentile (min over seeds)",
                "mean val acc of samples %",
                "best collected val acc %",
            ],
            crows,
        ),
        "",
    ]
    verdict = []
    for cell, s in summary.items():
        beat = s["gnn_diff_acc"] >= s["grid_acc"]
        fast = s["wall_ratio"] <= 0.2
        best_base = max(
            ((k, v) for k, v in s["baseline_acc"].items() if v is not None and v == v), key=lambda kv: kv[1]
        )
        verdict.append(
            f"- {cell}: GNN-Diff {100 * s['gnn_diff_acc']:.2f} vs grid {100 * s['grid_acc']:.2f} "
            f"(**{'≥ grid' if beat else 'below grid'}**) at {s['wall_ratio']:.2f}× the grid's wall "
            f"(**{'≤ 0.2×' if fast else '> 0.2×'}**); best control: {best_base[0]} {100 * best_base[1]:.2f}"
            f"{' (matches or beats GNN-Diff)' if best_base[1] >= s['gnn_diff_acc'] else ''}; "
            f"nn ratio median {s['nn_ratio_median']:.2f}."
        )
    drows = [
        [
            cell,
            k.replace("_minus_", " − ").replace("_", " "),
            f"{100 * m:+.2f} ± {100 * h:.2f}",
            "yes" if h == h and m - h <= 0 <= m + h else ("n/a" if h != h else "no"),
        ]
        for cell, s_ in summary.items()
        for k, (m, h) in s_["diff_ci95"].items()
    ]
    lines += [
        "Differences in test accuracy (pt), paired per generation seed, ± the 95% t-interval:",
        "",
        md_table(["cell", "difference", "mean ± 95% CI", "interval holds 0"], drows),
        "",
    ]
    compute = (
        sum(g["wall_s"] for g in grids.values())
        + sum(j["job_s"] for j in gens)
        + sum(v["wall_s"] for v in seeds_info.values())
    )
    lines += [
        "Target: GNN-Diff ≥ grid-search accuracy at ≤ 0.2× the grid's wall time.",
        "",
        *verdict,
        "",
        f"Compute: {compute:.0f} s of grids, generation jobs (2 workers) and seed runs; {seeds} generation seeds, "
        f"N = {n} candidates for every best-by-val "
        "method; settings in the docstring of benchmarks/generate.py and conf/generator/none.yaml.",
    ]
    write_results(
        name,
        {
            "summary": summary,
            "grids": grids,
            "jobs": gens,
            "seeds_baseline": seeds_info,
            "this_invocation_s": wall,
            "ablate": ablate,
        },
        "\n".join(lines),
        command=f"python benchmarks/generate.py --cells {','.join(cells)} --seeds {seeds} "
        f"--n {n} --ablate {','.join(ablate)}"
        + (f" --seeds-cells {','.join(seeds_info)}" if set(seeds_info) != set(cells) else "")
        + (f" --out {name}" if name not in ("generate", "generate_smoke") else ""),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="cora/gcn,citeseer/gcn,cora/sage")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n", type=int, default=50, help="candidates per best-by-val method (GNN-Diff's samples too)")
    ap.add_argument("--ablate", default="cora/gcn", help="cells also run without the graph condition")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seeds-cells", default=None, help="cells that get control (a) (default: every cell)")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_generate"))
    ap.add_argument("--smoke", action="store_true", help="tiny grids and stages, results to generate_smoke.*")
    ap.add_argument("--out", default="generate", help="results name (benchmarks/results/<out>.{json,md})")
    ap.add_argument(
        "--merge-into",
        default=None,
        help="also add this run's cells to the summary of benchmarks/results/<name>.json (each tagged "
        "with the file that holds its tables)",
    )
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    cells = a.cells.split(",")
    ablate = [c for c in a.ablate.split(",") if c in cells]
    t0 = time.perf_counter()
    grids = {}
    for cell in cells:
        grids[cell] = build_grid(cell, work, a.data_dir, a.smoke)
        print(
            f"[{time.perf_counter() - t0:6.0f}s] grid {cell}: {grids[cell]['configs']} configs, "
            f"{grids[cell]['wall_s']:.0f}s",
            flush=True,
        )
    todo = [(c, s, True, a.n, str(work), a.data_dir, a.smoke) for c in cells for s in range(a.seeds)]
    todo += [(c, s, False, a.n, str(work), a.data_dir, a.smoke) for c in ablate for s in range(a.seeds)]
    gens = run_jobs(
        gen_job,
        todo,
        a.jobs,
        1,
        lambda item, res: (
            f"{res['cell']} seed {res['seed']} cond={res['cond']}: "
            f"test {100 * res['metrics']['test/acc']:.2f}, nn {res['metrics']['gen/nn_ratio_median']:.2f} "
            f"({res['job_s']:.0f}s)"
        ),
    )
    gens.sort(key=lambda r: (cells.index(r["cell"]) if r["cell"] in cells else 0, not r["cond"], r["seed"]))
    seeds_info = {}
    for cell in a.seeds_cells.split(",") if a.seeds_cells else cells:
        best = next(j["best"] for j in gens if j["cell"] == cell)
        seeds_info[cell] = seeds_baseline(cell, best, a.seeds, a.n, work, a.data_dir, a.smoke)
        print(
            f"[{time.perf_counter() - t0:6.0f}s] seeds baseline {cell}: {seeds_info[cell]['wall_s']:.0f}s", flush=True
        )
    name = "generate_smoke" if a.smoke else a.out
    report(cells, grids, gens, seeds_info, a.seeds, a.n, time.perf_counter() - t0, ablate, name)
    if a.merge_into and a.merge_into != name:
        merge_summary(name, a.merge_into)


def merge_summary(src: str, dst: str) -> None:
    """Copy the summary cells of results/<src>.json into results/<dst>.json (tagged ``"from": "<src>.json"``)."""
    from _common import RESULTS

    new = json.loads((RESULTS / f"{src}.json").read_text())
    path = RESULTS / f"{dst}.json"
    old = json.loads(path.read_text())
    for cell, s in new["summary"].items():
        old["summary"][cell] = {**s, "from": f"{src}.json", "date": new["date"]}
    path.write_text(json.dumps(old, indent=1) + "\n")
    print(f"summary cells {sorted(new['summary'])} merged into {path}")


if __name__ == "__main__":
    main()
