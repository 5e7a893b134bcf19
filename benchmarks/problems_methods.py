"""The methods on link prediction (Cora GCN, GAE's protocol as in ``benchmarks/problems.py``), each beside the
baselines its own benchmark uses; test AUC in percent, seeds 0..S-1, paired differences with 95% t-intervals.

* Soups: K = 8 ingredients sharing one initialisation (init_seed = s, seeds 8s..8s+7), soups fitted and selected
  on the validation edges: learned (LS, the default settings) vs uniform, greedy, the best ingredient by
  validation AUC and the ingredients' mean.
* Pruning: the dense run, one-shot and FastGLT tickets at 80% weight and 20% message-passing-edge sparsity (the
  defaults of each method otherwise), retrained from the initialisation.
* GNN-Diff (``generate.py problem=link``): per seed s the light search is drawn anew (``generator.search.seed=s``,
  10% of the grid), so the intervals hold the search's variance; the pick (by validation AUC) vs the light
  search's best run (where GNN-Diff starts), the best of as many perturbations of it, and the uniform soup of the
  collected checkpoints.

Every figure is read on test edges only after selection on validation edges. Jobs run through the harness
(``--jobs`` processes, one torch thread each), each cached under a hash of this script, the library and its
settings.

    python benchmarks/problems_methods.py [--seeds 5] [--jobs 2] [--parts soups,pruning,generate]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    JobCache,
    ci95,
    compose,
    md_table,
    mean_std,
    paired,
    paired_rows,
    run_jobs,
    write_results,
)

CELL = ["problem=link", "dataset=cora", "backbone=gcn", "trainer.max_epochs=200", "backbone.hidden_channels=32"]
CELL += ["monitor.patience=null"]
K = 8
SPARSITY = ["pruning.weight_sparsity=0.8", "pruning.graph_sparsity=0.2"]
PARTS = ("soups", "pruning", "generate")
# --smoke: the pipeline in minutes (tiny budgets; numbers mean nothing)
SMOKE = [
    "trainer.max_epochs=10",
    "generator.collect.k=8",
    "generator.collect.restarts=2",
    "generator.autoencoder.steps=40",
    "generator.diffusion.steps=40",
    "generator.diffusion.sampler=ddim",
    "generator.diffusion.sample_steps=5",
    "generator.sample.n=6",
    "generator.condition.steps=5",
    "generator.search.fraction=0.03",
]


def _cfg(item: dict, extra: list[str], config_name: str = "train"):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    work = Path(item["work"]) / f"{item['part']}_{item['seed']}"
    smoke = [o for o in SMOKE if config_name != "train" or not o.startswith("generator.")] if item["smoke"] else []
    ov = [
        *CELL,
        *smoke,
        *extra,
        "logger=none",
        "extras.print_config=false",
        "trainer.enable_progress_bar=false",
        f"paths.zoo_dir={work}/zoo",
        f"paths.output_dir={work}/out",
        f"paths.data_dir={item['data_dir']}",
        f"paths.cache_dir={item['work']}/cache",
    ]
    if config_name == "train":
        return compose(ov)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hcompose(config_name, overrides=ov)


def soups_job(item: dict) -> dict:
    from gnnzoo.soups.task import run as soup_run

    s = item["seed"]
    base = [f"seed={s}", f"init_seed={s}", f"soup.ingredients={K}", f"soup.seed_offset={K * s}"]
    out = {}
    for strategy in ("uniform", "greedy", "learned"):
        t0 = time.perf_counter()
        res = soup_run(_cfg(item, [*base, f"soup={strategy}"]))
        out[strategy] = 100 * res["soup/test_auc"]
        out[f"{strategy}_wall_s"] = time.perf_counter() - t0
    out["best_ingredient"] = 100 * res["ingredients/best_test_auc"]
    out["mean_ingredient"] = 100 * res["ingredients/mean_test_auc"]
    return out


def pruning_job(item: dict) -> dict:
    from gnnzoo.pruning.task import run as run_prune

    s = item["seed"]
    out = {}
    for method in ("one_shot", "fastglt"):
        res = run_prune(_cfg(item, [f"seed={s}", f"pruning={method}", *SPARSITY]))
        out[method] = 100 * res["test/auc"]
        out[f"{method}_weight_sparsity"] = res["prune/weight_sparsity"]
        out[f"{method}_graph_sparsity"] = res["prune/graph_sparsity"]
        out["dense"] = 100 * _dense_auc(item, res["dense_run_id"])
    return out


def _dense_auc(item: dict, rid: str) -> float:
    from gnnzoo.zoo.store import Zoo

    work = Path(item["work"]) / f"{item['part']}_{item['seed']}"
    return float(Zoo(work / "zoo")[rid].record["metrics"]["test/auc"])


def generate_job(item: dict) -> dict:
    from gnnzoo.generate.task import run as generate_run

    s = item["seed"]
    t0 = time.perf_counter()
    res = generate_run(_cfg(item, [f"seed={s}", f"generator.search.seed={s}"], "generate"))
    return {
        "gnn_diff": 100 * res["test/auc"],
        "light_best": 100 * res["gen/search_best_test"],
        "perturb": 100 * res["gen/baseline_perturb_test"],
        "soup": 100 * res["gen/baseline_soup_test"],
        "nn_ratio_median": res["gen/nn_ratio_median"],
        "pipeline_wall_s": time.perf_counter() - t0,
    }


JOBS = {"soups": soups_job, "pruning": pruning_job, "generate": generate_job}


def job(item: dict) -> dict:
    return JobCache(item["work"], __file__).run(item["settings"], lambda: JOBS[item["part"]](item))


COMPARE = {
    "soups": ("learned", ["best_ingredient", "uniform", "greedy"], ["mean_ingredient"]),
    "pruning": ("fastglt", ["one_shot", "dense"], []),
    "generate": ("gnn_diff", ["light_best", "perturb", "soup"], []),
}


def tables(results: dict[str, list[dict]]) -> tuple[str, dict]:
    md, summary = [], {}
    for part, rs in results.items():
        method, baselines, extra = COMPARE[part]
        rows = []
        for side in [method, *baselines, *extra]:
            xs = [r[side] for r in rs]
            m, sd = mean_std(xs)
            rows.append([side, f"{m:.2f} ± {ci95(xs):.2f}", f"{sd:.2f}", len(xs)])
            summary[f"{part}/{side}"] = {"mean": m, "std": sd, "n": len(xs)}
        diffs = [((f"{method} − {b}",), paired([r[method] for r in rs], [r[b] for r in rs])) for b in baselines]
        for (label,), d in diffs:
            summary[f"{part}/{label}"] = d
        md += [
            f"## {part}\n",
            md_table(["side", "test AUC % (mean ± 95% CI)", "std", "seeds"], rows),
            "",
            md_table(["paired difference", "mean ± 95% CI (pt)", "interval holds 0"], paired_rows(diffs)),
            "",
        ]
    return "\n".join(md), summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_problem_methods"))
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--smoke", action="store_true", help="1 seed, tiny budgets: checks the pipeline in minutes")
    ap.add_argument("--name", default=None, help="results name (default problems_methods, or ..._smoke)")
    args = ap.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if args.smoke:
        args.seeds, args.work = 1, args.work + "_smoke"
    name = args.name or ("problems_methods_smoke" if args.smoke else "problems_methods")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"--parts: unknown {unknown}; choose from {', '.join(PARTS)}")
    items = [
        {
            "part": p,
            "seed": s,
            "smoke": args.smoke,
            "work": args.work,
            "data_dir": args.data_dir,
            "settings": {"part": p, "seed": s, "smoke": args.smoke, "cell": CELL, "k": K, "sparsity": SPARSITY},
        }
        for p in parts
        for s in range(args.seeds)
    ]
    items.sort(key=lambda it: it["part"] != "generate")  # the longest jobs first
    label = lambda it, res: f"{it['part']} seed {it['seed']}"  # noqa: E731
    payloads = run_jobs(job, items, jobs=args.jobs, threads=1, label=label)
    by_key = {p["key"]: p for p in payloads}
    cache = JobCache(args.work, __file__)
    results: dict[str, list[dict]] = {p: [] for p in parts}
    jobs = []
    for it in sorted(items, key=lambda it: (it["part"], it["seed"])):
        p = by_key[cache.key(it["settings"])]
        results[it["part"]].append(p["result"])
        jobs.append({"part": it["part"], "seed": it["seed"], "job_key": p["key"], "code": p["code"], **p["result"]})
    md, summary = tables(results)
    head = (
        "Link prediction, Cora GCN (GAE's protocol: 85/5/10 edges, 32 -> 16, inner product, 200 epochs); test AUC in"
        " percent; selection on validation edges only.\n\n"
    )
    cmd = "python benchmarks/" + " ".join(Path(a).name if a.endswith(".py") else a for a in sys.argv)
    write_results(name, {"summary": summary, "jobs": jobs}, head + md, cmd)


if __name__ == "__main__":
    main()
