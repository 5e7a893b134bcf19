"""Graph lottery tickets benchmark: one-shot vs UGS (IMP) vs FastGLT, weights and graph searched separately.

For every (dataset, backbone, seed) the dense run is trained once (gnnzoo defaults for the backbone) and
shared; then, on the same evaluator (retrained ticket, test accuracy at the best-val epoch):

* weight sparsity: UGS rounds with rate 0.2 up to 1 - 0.8^14 = 95.6%; one-shot and FastGLT at the UGS
  levels of rounds 3/6/9/12/14 (one-shot) and 6/9/12/14 (FastGLT: one run per target);
* graph sparsity (undirected edges, real removal, GAT included): UGS rounds with rate 0.05 up to
  1 - 0.95^10 = 40.1%; one-shot at rounds 2/4/6/8/10, FastGLT at rounds 4/6/8/10.

A method's *max sparsity* is the largest level whose mean test accuracy over seeds is within 1 pt of the
mean dense accuracy (0 if none). Its *search wall time* is the time to produce the ticket at that level,
retraining included: UGS = mask phases of rounds 1..k + round k's retraining; one-shot = dense run +
retraining; FastGLT = pretrain + denoise + retraining (the dense run is not part of UGS/FastGLT).
UGS L1 strengths are the reference codes' per-dataset/backbone values; FastGLT uses gnnzoo's defaults
(conf/pruning/fastglt.yaml: E=30, T=400, delta 3, alpha 0.3, one global threshold: the one setting chosen
on the development seed 100, which is not a benchmark seed). Jobs run in parallel worker processes (one
torch thread each); every job's results are cached in --work, so a rerun resumes.

    python benchmarks/pruning.py [--seeds 3] [--datasets cora,citeseer] [--backbones gcn,gin,gat] [--jobs 2]
    python benchmarks/pruning.py --datasets cora --backbones gcn@512 --methods one_shot,fastglt \
        --w-levels 0.93 --g-levels 0.35 --out pruning_width512       # the headline targets at GCN width 512

``<backbone>@<width>`` sets ``backbone.hidden_channels`` (the reference codes train GCN with hidden 512;
gnnzoo's default is 16).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, compose, md_table, write_results  # noqa: E402

METHODS = ["one_shot", "imp_ugs", "fastglt"]
W_RATE, G_RATE, W_ROUNDS, G_ROUNDS = 0.2, 0.05, 14, 10
# the UGS level of round k, floored to 4 decimals (so k rounds reach it)
W_LEVEL = {k: math.floor(1e4 * (1 - (1 - W_RATE) ** k)) / 1e4 for k in range(1, W_ROUNDS + 1)}
G_LEVEL = {k: math.floor(1e4 * (1 - (1 - G_RATE) ** k)) / 1e4 for k in range(1, G_ROUNDS + 1)}
LEVELS = {("one_shot", "weight"): [3, 6, 9, 12, 14], ("fastglt", "weight"): [6, 9, 12, 14],
          ("one_shot", "graph"): [2, 4, 6, 8, 10], ("fastglt", "graph"): [4, 6, 8, 10]}
# UGS reference L1 strengths (s1 graph, s2 weight) per dataset/backbone (reference sheet, section 3)
UGS_L1 = {("cora", "gcn"): (1e-2, 1e-2), ("citeseer", "gcn"): (1e-2, 1e-2), ("cora", "gin"): (1e-3, 1e-3),
          ("citeseer", "gin"): (1e-5, 1e-5), ("cora", "gat"): (1e-3, 1e-3), ("citeseer", "gat"): (1e-7, 1e-3)}


def _base(dataset: str, backbone: str, seed: int, zoo: Path, data_dir: str) -> list[str]:
    backbone, _, hidden = backbone.partition("@")  # "gcn@512": GCN with hidden_channels=512
    width = [f"backbone.hidden_channels={hidden}"] if hidden else []
    return [f"dataset={dataset}", f"backbone={backbone}", *width, f"seed={seed}", "logger=none", "threads=1",
            "trainer.enable_progress_bar=false", f"paths.zoo_dir={zoo}", f"paths.data_dir={data_dir}",
            f"paths.output_dir={zoo}/out", f"paths.cache_dir={zoo.parent}/cache"]


def _rows(zoo_dir: Path, results: list[dict], method: str, axis: str) -> list[dict]:
    from gnnzoo.zoo import Zoo

    zoo, rows = Zoo(zoo_dir), []
    for r in results:
        rec = zoo[r["run_id"]].record
        info = rec["pruning"]
        rows.append({"method": method, "axis": axis, "round": info.get("round"),
                     "weight_sparsity": info["weight_sparsity"], "graph_sparsity": info["graph_sparsity"],
                     "mac_saving": info["mac_saving"], "test_acc": rec["metrics"]["test/acc"],
                     "search_s": info["search_wall_s"], "retrain_s": rec["wall_time_s"],
                     "epochs": len(rec["curves"]["epoch"])})
    return rows


def job(args: tuple) -> dict:
    """All searches of one (dataset, backbone, seed); cached as JSON in the work folder."""
    dataset, backbone, seed, work, data_dir, methods, explicit = args
    out = Path(work) / f"{dataset}_{backbone}_{seed}.json"
    if out.is_file():
        return json.loads(out.read_text())
    import torch

    torch.set_num_threads(1)
    from gnnzoo.pruning.task import run as run_prune
    from gnnzoo.zoo import Zoo

    zoo_dir = Path(work) / f"zoo_{dataset}_{backbone}_{seed}"
    base = _base(dataset, backbone, seed, zoo_dir, data_dir)
    s1, s2 = UGS_L1[(dataset, backbone.partition("@")[0])]
    rows: list[dict] = []
    t_job = time.perf_counter()

    def search(overrides: list[str], method: str, axis: str) -> None:
        res = run_prune(compose(base + [f"pruning={method}"] + overrides))
        tickets = res["tickets"]
        rows.extend(_rows(zoo_dir, [{"run_id": t} for t in tickets], method, axis))

    # UGS: one search per axis, one ticket per round
    if "imp_ugs" in methods:
        search([f"pruning.weight_sparsity={W_LEVEL[W_ROUNDS]}", "pruning.graph_sparsity=0", f"pruning.rounds={W_ROUNDS}",
                f"pruning.l1_weight={s2}", f"pruning.l1_graph={s1}"], "imp_ugs", "weight")
        search(["pruning.weight_sparsity=0", f"pruning.graph_sparsity={G_LEVEL[G_ROUNDS]}", f"pruning.rounds={G_ROUNDS}",
                f"pruning.l1_weight={s2}", f"pruning.l1_graph={s1}"], "imp_ugs", "graph")
    for method in ("one_shot", "fastglt"):
        if method not in methods:
            continue
        # the UGS levels of these rounds, or explicit targets (then the level itself labels the row)
        w_levels = explicit["weight"] or [(k, W_LEVEL[k]) for k in LEVELS[(method, "weight")]]
        g_levels = explicit["graph"] or [(k, G_LEVEL[k]) for k in LEVELS[(method, "graph")]]
        for k, lv in w_levels:
            search([f"pruning.weight_sparsity={lv}", "pruning.graph_sparsity=0"], method, "weight")
            rows[-1]["round"] = k
        for k, lv in g_levels:
            search(["pruning.weight_sparsity=0", f"pruning.graph_sparsity={lv}"], method, "graph")
            rows[-1]["round"] = k
    dense = Zoo(zoo_dir).df(kind="run")
    payload = {"dataset": dataset, "backbone": backbone, "seed": seed, "dense_acc": float(dense["test/acc"].iloc[0]),
               "dense_wall_s": float(dense["wall_time_s"].iloc[0]), "rows": rows,
               "job_wall_s": time.perf_counter() - t_job}
    out.write_text(json.dumps(payload, indent=1))
    return payload


def _ci95(xs: list[float]) -> float:
    if len(xs) < 2:
        return float("nan")
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(len(xs), 2.0)
    return t * statistics.stdev(xs) / len(xs) ** 0.5


def aggregate(jobs: list[dict]) -> tuple[dict, dict, str]:
    by_cell: dict = {}
    for j in jobs:
        by_cell.setdefault((j["dataset"], j["backbone"]), []).append(j)
    summary, curves, md = {}, {}, []
    head = ["dataset/backbone", "dense acc", "method", "max weight sparsity", "acc there", "search s (weight)",
            "MAC saving", "max graph sparsity", "acc there", "search s (graph)"]
    table = []
    for (ds, bb), js in sorted(by_cell.items()):
        key = f"{ds}/{bb}"
        dense = [j["dense_acc"] for j in js]
        dmean = statistics.fmean(dense)
        cell = {"dense_acc": dmean, "dense_acc_std": statistics.stdev(dense) if len(dense) > 1 else 0.0,
                "seeds": len(js), "max_weight_sparsity": {}, "max_graph_sparsity": {}, "search_wall_s": {},
                "search_wall_s_graph": {}, "mac_saving": {}, "acc_at_max_weight": {}, "acc_at_max_graph": {}}
        curves[key] = {"dense": dmean}
        for m in [m for m in METHODS if any(r["method"] == m for j in js for r in j["rows"])]:
            row = [key, f"{100 * dmean:.2f} ± {100 * _ci95(dense):.2f}", m]
            for axis in ("weight", "graph"):
                pts: dict = {}
                for j in js:
                    for r in j["rows"]:
                        if r["method"] == m and r["axis"] == axis:
                            pts.setdefault(r["round"], []).append(r)
                levels = []
                for k, rs in sorted(pts.items()):
                    acc = [r["test_acc"] for r in rs]
                    sp = statistics.fmean(r[f"{axis}_sparsity"] for r in rs)
                    # UGS: rounds 1..k; the others: their own search; retraining always counted
                    wall = statistics.fmean(r["search_s"] + r["retrain_s"] for r in rs)
                    if m == "one_shot":
                        wall += statistics.fmean(j["dense_wall_s"] for j in js)
                    levels.append({"round": k, "sparsity": sp, "acc": statistics.fmean(acc), "acc_ci95": _ci95(acc),
                                   "n": len(acc), "wall_s": wall,
                                   "mac_saving": statistics.fmean(r["mac_saving"] for r in rs)})
                curves[key][f"{m}/{axis}"] = levels
                ok = [lv for lv in levels if lv["acc"] >= dmean - 0.01]
                best = max(ok, key=lambda lv: lv["sparsity"]) if ok else None
                sk = "max_weight_sparsity" if axis == "weight" else "max_graph_sparsity"
                cell[sk][m] = best["sparsity"] if best else 0.0
                # the highest level tested kept accuracy: the true maximum may be higher (censored)
                censored = bool(best) and best["sparsity"] >= max(lv["sparsity"] for lv in levels) - 1e-9
                cell.setdefault(f"censored_{axis}", {})[m] = censored
                cell[f"acc_at_max_{axis}"][m] = best["acc"] if best else None
                cell["search_wall_s" if axis == "weight" else "search_wall_s_graph"][m] = best["wall_s"] if best else None
                if axis == "weight":
                    cell["mac_saving"][m] = best["mac_saving"] if best else 0.0
                row += [(("≥ " if censored else "") + f"{100 * best['sparsity']:.1f}%") if best else "none",
                        f"{100 * best['acc']:.2f} ± {100 * best['acc_ci95']:.2f}" if best else "-",
                        f"{best['wall_s']:.1f}" if best else "-"]
                if axis == "weight":
                    row.append(f"{100 * best['mac_saving']:.1f}%" if best else "-")
            table.append(row)
        summary[key] = cell
    md.append("## Max sparsity within 1 pt of dense (mean over seeds; ± is the 95% interval over seeds)\n")
    md.append(md_table(head, table))
    md.append("\n## Every level (test accuracy mean ± 95% interval, seconds to produce that ticket)\n")
    for key, c in curves.items():
        rows = []
        for m in METHODS:
            for axis in ("weight", "graph"):
                for lv in c.get(f"{m}/{axis}", []):
                    rows.append([m, axis, lv["round"], f"{100 * lv['sparsity']:.1f}%",
                                 f"{100 * lv['acc']:.2f} ± {100 * lv['acc_ci95']:.2f}",
                                 f"{100 * (lv['acc'] - c['dense']):+.2f}", f"{lv['wall_s']:.1f}"])
        md.append(f"\n### {key} (dense {100 * c['dense']:.2f})\n")
        md.append(md_table(["method", "axis", "UGS round", "sparsity", "test acc", "vs dense", "wall s"], rows))
    return summary, curves, "\n".join(md)


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(curves)
    fig, axes = plt.subplots(len(keys), 2, figsize=(9, 2.8 * len(keys)), squeeze=False)
    for i, key in enumerate(keys):
        for a, axis in enumerate(("weight", "graph")):
            ax = axes[i][a]
            for c, m in enumerate(METHODS):
                lv = curves[key].get(f"{m}/{axis}", [])
                ax.errorbar([100 * x["sparsity"] for x in lv], [100 * x["acc"] for x in lv],
                            yerr=[100 * (x["acc_ci95"] if x["acc_ci95"] == x["acc_ci95"] else 0) for x in lv],
                            marker="o", ms=3, capsize=2, color=f"C{c}", label=m)
            ax.axhline(100 * curves[key]["dense"], color="k", ls="--", lw=1, label="dense")
            ax.axhline(100 * curves[key]["dense"] - 1, color="k", ls=":", lw=1, label="dense - 1 pt")
            ax.set_title(f"{key}: {axis} sparsity", fontsize=9)
            ax.set_xlabel(f"{axis} sparsity (%)")
            ax.set_ylabel("test accuracy (%)")
    axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(jobs: list[dict], out: str, wall: float, workers: int, seeds: int) -> None:
    summary, curves, md = aggregate(jobs)
    target_rows = []
    for key, c in summary.items():  # the target: FastGLT reaches UGS's sparsity in <= 0.1x its time
        for axis, sk, wk in (("weight", "max_weight_sparsity", "search_wall_s"),
                             ("graph", "max_graph_sparsity", "search_wall_s_graph")):
            u_sp, f_sp = c[sk].get("imp_ugs"), c[sk].get("fastglt")
            if u_sp is None or f_sp is None:
                continue
            # time of FastGLT's ticket at the lowest level reaching UGS's max, over UGS's time to its max
            f_lv = [lv for lv in curves[key][f"fastglt/{axis}"] if lv["sparsity"] >= u_sp - 1e-9
                    and lv["acc"] >= c["dense_acc"] - 0.01]
            u_wall = c[wk].get("imp_ugs")
            f_wall = min(lv["wall_s"] for lv in f_lv) if f_lv else None
            ratio = f_wall / u_wall if (f_wall and u_wall) else None
            c.setdefault("fastglt_vs_ugs", {})[axis] = {"fastglt_reaches_ugs": f_sp >= u_sp,
                                                        "wall_ratio": ratio}
            target_rows.append([key, axis, f"{100 * u_sp:.1f}%", f"{100 * f_sp:.1f}%",
                                "yes" if f_sp >= u_sp else "no", f"{ratio:.2f}" if ratio else "-",
                                "n/a (UGS kept no level)" if not u_sp else
                                "met" if (f_sp >= u_sp and ratio is not None and ratio <= 0.1) else "missed"])
    md += ("\n\n## Target: FastGLT reaches UGS's max sparsity in <= 0.1x UGS's time\n\n"
           "Wall ratio: FastGLT's time for its cheapest ticket at (or above) UGS's max sparsity that stays within "
           "1 pt, over UGS's time to reach its max (rounds 1..k plus round k's retraining).\n\n"
           + md_table(["cell", "axis", "UGS max", "FastGLT max", "FastGLT >= UGS", "wall ratio", "target"],
                      target_rows))
    plot(curves, RESULTS / f"{out}.png")
    notes = (f"\n\nPlot: `benchmarks/results/{out}.png`. Seeds {list(range(seeds))} (seed 100 was the development seed); "
             f"the jobs' wall times add up to {sum(j['job_wall_s'] for j in jobs):.0f} s (worker processes of one "
             f"thread each, {workers} in parallel; this report took {wall:.0f} s).\n")
    write_results(out, {"summary": summary, "curves": curves, "jobs": jobs,
                          "config": {"w_levels": W_LEVEL, "g_levels": G_LEVEL, "levels": {f"{k[0]}/{k[1]}": v for k, v in LEVELS.items()},
                                     "ugs_l1": {f"{k[0]}/{k[1]}": v for k, v in UGS_L1.items()}}},
                  md + notes, command="python benchmarks/pruning.py " + " ".join(sys.argv[1:]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", default="cora,citeseer")
    ap.add_argument("--backbones", default="gcn,gin,gat")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_pruning"))
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--out", default="pruning")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--w-levels", default="", help="explicit weight targets for one_shot/fastglt, e.g. 0.93")
    ap.add_argument("--g-levels", default="", help="explicit graph targets for one_shot/fastglt, e.g. 0.35")
    a = ap.parse_args()
    Path(a.work).mkdir(parents=True, exist_ok=True)
    explicit = {axis: [(float(v), float(v)) for v in lv.split(",") if v]
                for axis, lv in (("weight", a.w_levels), ("graph", a.g_levels))}
    methods = a.methods.split(",")
    todo = [(ds, bb, s, a.work, a.data_dir, methods, explicit) for ds in a.datasets.split(",")
            for bb in a.backbones.split(",") for s in range(a.seeds)]
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(a.jobs) as pool:
        jobs = []
        for res in pool.imap_unordered(job, todo):
            jobs.append(res)
            print(f"[{time.perf_counter() - t0:7.0f}s] done {res['dataset']}/{res['backbone']} seed {res['seed']} "
                  f"({res['job_wall_s']:.0f}s)", flush=True)
    report(jobs, a.out, time.perf_counter() - t0, a.jobs, a.seeds)


if __name__ == "__main__":
    main()
