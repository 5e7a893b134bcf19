"""Graph lottery tickets benchmark: one-shot vs UGS (IMP) vs FastGLT, weights and graph searched separately.

For every (dataset, backbone, seed) the dense run is trained once (gnnzoo defaults for the backbone) and
shared; then, on the same evaluator (retrained ticket, test accuracy at the best-val epoch), **every method is
tested at the same sparsity levels**: the UGS levels of rounds 2/4/.../14 for weights (rate 0.2: 36.0% ...
95.6%) and rounds 2/4/.../10 for the graph (rate 0.05: 9.8% ... 40.1%, undirected edges, real removal, GAT
included). UGS prunes round by round and is read at those rounds; one-shot and FastGLT run once per level.
Every ticket keeps at least one weight per output neuron (``pruning.min_per_neuron=1``, every method; each
tensor's kept fraction is recorded per level, so an emptied layer would show as 0).

A method's *max sparsity* is the last level before the first level whose mean test accuracy over seeds falls
more than 1 pt below the mean dense accuracy (0 if the first level does; "≥" when every level passed). Its
*search wall time* is the time to produce the ticket at that level, retraining included: UGS = mask phases of
rounds 1..k + round k's retraining; one-shot = dense run + retraining (the task's ``search_wall_s`` already
holds the dense run; it is not added again); FastGLT = pretrain + denoise + retraining.
UGS L1 strengths are the reference codes' per-dataset/backbone values; FastGLT uses gnnzoo's defaults
(conf/pruning/fastglt.yaml: E=30, T=400, delta 3, alpha 0.3) except its threshold (global | layer), which is
chosen per cell by a rule declared before looking: on the development seed 100 (not a benchmark seed), FastGLT
at 93.1% weight sparsity with each threshold; the higher *validation* accuracy of the retrained ticket wins (a
tie keeps global). Jobs run through the harness (benchmarks/_common.py): worker processes of one torch thread
each, cached under a hash of the script, the library (less the methods a pruning job never runs:
``NOT_IN_PRUNING``) and every setting of the job.

    python benchmarks/pruning.py [--seeds 3] [--datasets cora,citeseer] [--backbones gcn,gin,gat] [--jobs 2]
    python benchmarks/pruning.py --datasets cora --backbones gcn@512 --methods one_shot,fastglt \
        --w-levels 0.93 --g-levels 0.35 --out pruning_width512       # the headline targets at GCN width 512

``<backbone>@<width>`` sets ``backbone.hidden_channels`` (the reference codes train GCN with hidden 512;
gnnzoo's default is 16).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, JobCache, ci95, compose, md_table, paired, paired_rows, run_jobs, write_results  # noqa: E402

METHODS = ["one_shot", "imp_ugs", "fastglt"]
W_RATE, G_RATE, W_ROUNDS, G_ROUNDS = 0.2, 0.05, 14, 10
# the UGS level of round k, floored to 4 decimals (so k rounds reach it)
W_LEVEL = {k: math.floor(1e4 * (1 - (1 - W_RATE) ** k)) / 1e4 for k in range(1, W_ROUNDS + 1)}
G_LEVEL = {k: math.floor(1e4 * (1 - (1 - G_RATE) ** k)) / 1e4 for k in range(1, G_ROUNDS + 1)}
# the levels every method is tested at (UGS rounds)
LEVELS = {"weight": [2, 4, 6, 8, 10, 12, 14], "graph": [2, 4, 6, 8, 10]}
DEV_SEED, SELECT_ROUND = 100, 12  # FastGLT's threshold: chosen on this seed, at W_LEVEL[12] = 93.1%, by val acc
# UGS reference L1 strengths (s1 graph, s2 weight) per dataset/backbone (reference sheet, section 3)
UGS_L1 = {
    ("cora", "gcn"): (1e-2, 1e-2),
    ("citeseer", "gcn"): (1e-2, 1e-2),
    ("cora", "gin"): (1e-3, 1e-3),
    ("citeseer", "gin"): (1e-5, 1e-5),
    ("cora", "gat"): (1e-3, 1e-3),
    ("citeseer", "gat"): (1e-7, 1e-3),
}
MIN_PER_NEURON = 1


def _base(dataset: str, backbone: str, seed: int, zoo: Path, data_dir: str) -> list[str]:
    backbone, _, hidden = backbone.partition("@")  # "gcn@512": GCN with hidden_channels=512
    width = [f"backbone.hidden_channels={hidden}"] if hidden else []
    return [
        f"dataset={dataset}",
        f"backbone={backbone}",
        *width,
        f"seed={seed}",
        "logger=none",
        "threads=1",
        "trainer.enable_progress_bar=false",
        f"paths.zoo_dir={zoo}",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={zoo}/out",
        f"paths.cache_dir={zoo.parent}/cache",
        f"pruning.min_per_neuron={MIN_PER_NEURON}",
    ]


def _rows(zoo_dir: Path, run_ids: list[str], method: str, axis: str) -> list[dict]:
    from gnnzoo.zoo import Zoo

    zoo, rows = Zoo(zoo_dir), []
    for rid in run_ids:
        rec = zoo[rid].record
        info = rec["pruning"]
        density = info.get("layer_density") or {}
        rows.append(
            {
                "method": method,
                "axis": axis,
                "round": info.get("round"),
                "weight_sparsity": info["weight_sparsity"],
                "graph_sparsity": info["graph_sparsity"],
                "mac_saving": info["mac_saving"],
                "test_acc": rec["metrics"]["test/acc"],
                "val_acc": rec["metrics"]["val/acc"],
                "search_s": info["search_wall_s"],
                "retrain_s": rec["wall_time_s"],
                "epochs": len(rec["curves"]["epoch"]),
                "min_layer_density": min(density.values()) if density else None,
            }
        )
    return rows


def _search(base: list[str], zoo_dir: Path, method: str, axis: str, overrides: list[str]) -> list[dict]:
    from gnnzoo.pruning.task import run as run_prune

    res = run_prune(compose(base + [f"pruning={method}"] + overrides))
    return _rows(zoo_dir, res["tickets"], method, axis)


def _levels(settings: dict, axis: str) -> list[tuple[int | float, float]]:
    """(label, target) pairs of an axis: the UGS rounds' levels, or the explicit targets."""
    explicit = settings["explicit"][axis]
    return (
        [(v, v) for v in explicit]
        if explicit
        else [(k, (W_LEVEL if axis == "weight" else G_LEVEL)[k]) for k in LEVELS[axis]]
    )


def job_settings(
    dataset: str, backbone: str, seed: int, methods: list[str], explicit: dict, fastglt_threshold: str | None
) -> dict:
    s1, s2 = UGS_L1[(dataset, backbone.partition("@")[0])]
    return {
        "kind": "cell_seed",
        "dataset": dataset,
        "backbone": backbone,
        "seed": seed,
        "methods": methods,
        "explicit": explicit,
        "levels": LEVELS,
        "w_level": W_LEVEL,
        "g_level": G_LEVEL,
        "ugs": {
            "rate_weight": W_RATE,
            "rate_graph": G_RATE,
            "rounds_weight": W_ROUNDS,
            "rounds_graph": G_ROUNDS,
            "l1_weight": s2,
            "l1_graph": s1,
        },
        "fastglt_threshold": fastglt_threshold,
        "min_per_neuron": MIN_PER_NEURON,
    }


def _run_cell_seed(st: dict, work: Path, data_dir: str) -> dict:
    from gnnzoo.zoo import Zoo

    ds, bb, seed = st["dataset"], st["backbone"], st["seed"]
    zoo_dir = work / f"zoo_{ds}_{bb}_{seed}"
    base = _base(ds, bb, seed, zoo_dir, data_dir)
    ugs = st["ugs"]
    l1 = [f"pruning.l1_weight={ugs['l1_weight']}", f"pruning.l1_graph={ugs['l1_graph']}"]
    rows: list[dict] = []
    if "imp_ugs" in st["methods"]:  # one search per axis, one ticket per round
        rows += _search(
            base,
            zoo_dir,
            "imp_ugs",
            "weight",
            [
                f"pruning.weight_sparsity={W_LEVEL[W_ROUNDS]}",
                "pruning.graph_sparsity=0",
                f"pruning.rounds={W_ROUNDS}",
                *l1,
            ],
        )
        rows += _search(
            base,
            zoo_dir,
            "imp_ugs",
            "graph",
            [
                "pruning.weight_sparsity=0",
                f"pruning.graph_sparsity={G_LEVEL[G_ROUNDS]}",
                f"pruning.rounds={G_ROUNDS}",
                *l1,
            ],
        )
    for method in ("one_shot", "fastglt"):
        if method not in st["methods"]:
            continue
        extra = [f"pruning.threshold={st['fastglt_threshold']}"] if method == "fastglt" else []
        for axis, other in (("weight", "graph"), ("graph", "weight")):
            for label, level in _levels(st, axis):
                rows += _search(
                    base,
                    zoo_dir,
                    method,
                    axis,
                    [f"pruning.{axis}_sparsity={level}", f"pruning.{other}_sparsity=0", *extra],
                )
                rows[-1]["round"] = label
    dense = Zoo(zoo_dir).df(kind="run")
    return {
        "dataset": ds,
        "backbone": bb,
        "seed": seed,
        "dense_acc": float(dense["test/acc"].iloc[0]),
        "dense_wall_s": float(dense["wall_time_s"].iloc[0]),
        "rows": rows,
    }


def select_settings(dataset: str, backbone: str) -> dict:
    return {
        "kind": "fastglt_threshold",
        "dataset": dataset,
        "backbone": backbone,
        "seed": DEV_SEED,
        "level": W_LEVEL[SELECT_ROUND],
        "candidates": ["global", "layer"],
        "min_per_neuron": MIN_PER_NEURON,
    }


def _select_threshold(st: dict, work: Path, data_dir: str) -> dict:
    ds, bb = st["dataset"], st["backbone"]
    zoo_dir = work / f"zoo_select_{ds}_{bb}"
    base = _base(ds, bb, st["seed"], zoo_dir, data_dir)
    val = {}
    for threshold in st["candidates"]:
        [row] = _search(
            base,
            zoo_dir,
            "fastglt",
            "weight",
            [f"pruning.weight_sparsity={st['level']}", "pruning.graph_sparsity=0", f"pruning.threshold={threshold}"],
        )
        val[threshold] = row["val_acc"]
    best = max(st["candidates"], key=lambda t: (val[t], t == "global"))  # a tie keeps global
    return {"dataset": ds, "backbone": bb, "val_acc": val, "chosen": best}


# library code a pruning job never runs (tasks are reached through cfg.task._target_): work on it does not
# invalidate the cached jobs. Composing a config imports the FMS sweeper plugin (Hydra's plugin discovery) and the
# search settings it takes its defaults from, and nothing else of these; tests/test_harness.py checks a job loads
# nothing more
NOT_IN_PRUNING = (
    "src/gnnzoo/search",
    "src/gnnzoo/generate",
    "src/gnnzoo/weightspace",
    "src/gnnzoo/soups",
    "src/hydra_plugins/gnnzoo/fms.py",
)


def job(args: tuple) -> dict:
    """One cached job (a cell's FastGLT threshold selection, or all searches of one cell and seed)."""
    settings, work, data_dir = args
    runner = _select_threshold if settings["kind"] == "fastglt_threshold" else _run_cell_seed
    payload = JobCache(work, __file__, NOT_IN_PRUNING).run(settings, lambda: runner(settings, Path(work), data_dir))
    return {
        **payload["result"],
        "job_wall_s": payload["job_wall_s"],
        "settings": payload["settings"],
        "job_key": payload["key"],
    }


def aggregate(jobs: list[dict], explicit: bool = False) -> tuple[dict, dict, str]:
    by_cell: dict = {}
    for j in jobs:
        for r in j["rows"]:
            r["seed"] = j["seed"]
        by_cell.setdefault((j["dataset"], j["backbone"]), []).append(j)
    summary, curves, md = {}, {}, []
    head = [
        "dataset/backbone",
        "dense acc",
        "method",
        "max weight sparsity",
        "acc there",
        "search s (weight)",
        "MAC saving",
        "max graph sparsity",
        "acc there",
        "search s (graph)",
    ]
    table = []
    for (ds, bb), js in sorted(by_cell.items()):
        key = f"{ds}/{bb}"
        dense = [j["dense_acc"] for j in js]
        dense_by_seed = {j["seed"]: j["dense_acc"] for j in js}
        dmean = statistics.fmean(dense)
        cell = {
            "dense_acc": dmean,
            "dense_acc_std": statistics.stdev(dense) if len(dense) > 1 else 0.0,
            "seeds": len(js),
            "max_weight_sparsity": {},
            "max_graph_sparsity": {},
            "search_wall_s": {},
            "search_wall_s_graph": {},
            "mac_saving": {},
            "acc_at_max_weight": {},
            "acc_at_max_graph": {},
        }
        curves[key] = {"dense": dmean}
        for m in [m for m in METHODS if any(r["method"] == m for j in js for r in j["rows"])]:
            row = [key, f"{100 * dmean:.2f} ± {100 * ci95(dense):.2f}", m]
            for axis in ("weight", "graph"):
                pts: dict = {}
                for j in js:
                    for r in j["rows"]:
                        if r["method"] == m and r["axis"] == axis:
                            pts.setdefault(r["round"], []).append(r)
                levels = []
                for k, rs in sorted(pts.items(), key=lambda kv: statistics.fmean(r[f"{axis}_sparsity"] for r in kv[1])):
                    if not explicit and k not in LEVELS[axis]:
                        continue  # UGS's intermediate rounds: every method is compared at the same levels
                    rs = sorted(rs, key=lambda r: r["seed"])
                    acc = [r["test_acc"] for r in rs]
                    sp = statistics.fmean(r[f"{axis}_sparsity"] for r in rs)
                    # UGS: rounds 1..k; one-shot: the dense run (inside its search_wall_s) + retraining;
                    # FastGLT: pretrain + denoise + retraining
                    wall = statistics.fmean(r["search_s"] + r["retrain_s"] for r in rs)
                    dens = [r["min_layer_density"] for r in rs if r.get("min_layer_density") is not None]
                    levels.append(
                        {
                            "round": k,
                            "sparsity": sp,
                            "acc": statistics.fmean(acc),
                            "acc_ci95": ci95(acc),
                            "n": len(acc),
                            "wall_s": wall,
                            "seeds": [r["seed"] for r in rs],
                            "accs": acc,
                            "vs_dense": paired(acc, [dense_by_seed[r["seed"]] for r in rs]),
                            "min_layer_density": min(dens) if dens else None,
                            "mac_saving": statistics.fmean(r["mac_saving"] for r in rs),
                        }
                    )
                curves[key][f"{m}/{axis}"] = levels
                # the last level before the first one that falls more than 1 pt below dense
                best = None
                for lv in levels:
                    if lv["acc"] < dmean - 0.01:
                        break
                    best = lv
                sk = "max_weight_sparsity" if axis == "weight" else "max_graph_sparsity"
                cell[sk][m] = best["sparsity"] if best else 0.0
                # the highest level tested kept accuracy: the true maximum may be higher (censored)
                censored = bool(best) and best is levels[-1]
                cell.setdefault(f"censored_{axis}", {})[m] = censored
                cell[f"acc_at_max_{axis}"][m] = best["acc"] if best else None
                cell["search_wall_s" if axis == "weight" else "search_wall_s_graph"][m] = (
                    best["wall_s"] if best else None
                )
                if axis == "weight":
                    cell["mac_saving"][m] = best["mac_saving"] if best else 0.0
                row += [
                    (("≥ " if censored else "") + f"{100 * best['sparsity']:.1f}%") if best else "none",
                    f"{100 * best['acc']:.2f} ± {100 * best['acc_ci95']:.2f}" if best else "-",
                    f"{best['wall_s']:.1f}" if best else "-",
                ]
                if axis == "weight":
                    row.append(f"{100 * best['mac_saving']:.1f}%" if best else "-")
            table.append(row)
        summary[key] = cell
    md.append(
        "## Max sparsity within 1 pt of dense (the last level before the first that falls more than 1 pt "
        "below the mean dense accuracy; mean over seeds; ± is the 95% interval over seeds)\n"
    )
    md.append(md_table(head, table))
    md.append("\n## Every level (test accuracy mean ± 95% interval, seconds to produce that ticket)\n")
    for key, c in curves.items():
        rows = []
        for m in METHODS:
            for axis in ("weight", "graph"):
                for lv in c.get(f"{m}/{axis}", []):
                    d = lv["vs_dense"]
                    dens = lv["min_layer_density"]
                    rows.append(
                        [
                            m,
                            axis,
                            lv["round"],
                            f"{100 * lv['sparsity']:.1f}%",
                            f"{100 * lv['acc']:.2f} ± {100 * lv['acc_ci95']:.2f}",
                            f"{100 * d['mean']:+.2f} ± {100 * d['ci95']:.2f}",
                            "yes" if d["holds_zero"] else "no",
                            "-" if dens is None else f"{100 * dens:.2f}%",
                            f"{lv['wall_s']:.1f}",
                        ]
                    )
        md.append(f"\n### {key} (dense {100 * c['dense']:.2f})\n")
        md.append(
            md_table(
                [
                    "method",
                    "axis",
                    "UGS round",
                    "sparsity",
                    "test acc",
                    "− dense (paired, 95% CI)",
                    "holds 0",
                    "least kept fraction of a tensor",
                    "wall s",
                ],
                rows,
            )
        )
        comparisons = []
        for m in ("imp_ugs", "fastglt"):
            for axis in ("weight", "graph"):
                base = {lv["round"]: lv for lv in c.get(f"one_shot/{axis}", [])}
                for lv in c.get(f"{m}/{axis}", []):
                    if lv["round"] in base and lv["seeds"] == base[lv["round"]]["seeds"]:
                        d = paired([100 * a for a in lv["accs"]], [100 * a for a in base[lv["round"]]["accs"]])
                        comparisons.append(([f"{m} − one_shot", axis, f"{100 * lv['sparsity']:.1f}%"], d))
        if comparisons:
            md.append("\nPaired by seed against the cheap baseline (one-shot at the same level), test acc points:\n")
            md.append(
                md_table(["difference", "axis", "level", "mean ± 95% CI", "interval holds 0"], paired_rows(comparisons))
            )
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
                ax.errorbar(
                    [100 * x["sparsity"] for x in lv],
                    [100 * x["acc"] for x in lv],
                    yerr=[100 * (x["acc_ci95"] if x["acc_ci95"] == x["acc_ci95"] else 0) for x in lv],
                    marker="o",
                    ms=3,
                    capsize=2,
                    color=f"C{c}",
                    label=m,
                )
            ax.axhline(100 * curves[key]["dense"], color="k", ls="--", lw=1, label="dense")
            ax.axhline(100 * curves[key]["dense"] - 1, color="k", ls=":", lw=1, label="dense - 1 pt")
            ax.set_title(f"{key}: {axis} sparsity", fontsize=9)
            ax.set_xlabel(f"{axis} sparsity (%)")
            ax.set_ylabel("test accuracy (%)")
    axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(
    jobs: list[dict], selections: list[dict], out: str, wall: float, workers: int, seeds: int, explicit: bool
) -> None:
    summary, curves, md = aggregate(jobs, explicit)
    target_rows = []
    for key, c in summary.items():  # the target: FastGLT reaches UGS's sparsity in <= 0.1x its time
        for axis, sk, wk in (
            ("weight", "max_weight_sparsity", "search_wall_s"),
            ("graph", "max_graph_sparsity", "search_wall_s_graph"),
        ):
            u_sp, f_sp = c[sk].get("imp_ugs"), c[sk].get("fastglt")
            if u_sp is None or f_sp is None:
                continue
            # time of FastGLT's ticket at the lowest level reaching UGS's max (within its run of passing levels),
            # over UGS's time to its max
            f_lv = [lv for lv in curves[key][f"fastglt/{axis}"] if u_sp - 1e-9 <= lv["sparsity"] <= f_sp + 1e-9]
            u_wall = c[wk].get("imp_ugs")
            f_wall = min(lv["wall_s"] for lv in f_lv) if f_lv else None
            ratio = f_wall / u_wall if (f_wall and u_wall) else None
            c.setdefault("fastglt_vs_ugs", {})[axis] = {"fastglt_reaches_ugs": f_sp >= u_sp, "wall_ratio": ratio}
            target_rows.append(
                [
                    key,
                    axis,
                    f"{100 * u_sp:.1f}%",
                    f"{100 * f_sp:.1f}%",
                    "yes" if f_sp >= u_sp else "no",
                    f"{ratio:.2f}" if ratio else "-",
                    "n/a (UGS kept no level)"
                    if not u_sp
                    else "met"
                    if (f_sp >= u_sp and ratio is not None and ratio <= 0.1)
                    else "missed",
                ]
            )
    sel_rows = [
        [
            f"{s_['dataset']}/{s_['backbone']}",
            f"{100 * s_['val_acc']['global']:.2f}",
            f"{100 * s_['val_acc']['layer']:.2f}",
            s_["chosen"],
        ]
        for s_ in sorted(selections, key=lambda x: (x["dataset"], x["backbone"]))
    ]
    for s_ in selections:
        key = f"{s_['dataset']}/{s_['backbone']}"
        if key in summary:
            summary[key]["fastglt_threshold"] = s_["chosen"]
    md += (
        "\n\n## Target: FastGLT reaches UGS's max sparsity in <= 0.1x UGS's time\n\n"
        "Wall ratio: FastGLT's time for its cheapest ticket at (or above) UGS's max sparsity that stays within "
        "1 pt, over UGS's time to reach its max (rounds 1..k plus round k's retraining).\n\n"
        + md_table(["cell", "axis", "UGS max", "FastGLT max", "FastGLT >= UGS", "wall ratio", "target"], target_rows)
    )
    if sel_rows:
        md += (
            f"\n\n## FastGLT's threshold, chosen on validation (development seed {DEV_SEED}, "
            f"{100 * W_LEVEL[SELECT_ROUND]:.1f}% weight sparsity)\n\n"
            + md_table(["cell", "val acc, global", "val acc, layer", "chosen"], sel_rows)
        )
    plot(curves, RESULTS / f"{out}.png")
    notes = (
        f"\n\nPlot: `benchmarks/results/{out}.png`. Seeds {list(range(seeds))} (seed {DEV_SEED} was the "
        f"development seed); the jobs' wall times add up to {sum(j['job_wall_s'] for j in jobs):.0f} s (worker "
        f"processes of one thread each, {workers} in parallel; this invocation took {wall:.0f} s, cached "
        "jobs included at their cached cost 0).\n"
    )
    write_results(
        out,
        {
            "summary": summary,
            "curves": curves,
            "jobs": jobs,
            "selections": selections,
            "config": {
                "w_levels": W_LEVEL,
                "g_levels": G_LEVEL,
                "levels": LEVELS,
                "min_per_neuron": MIN_PER_NEURON,
                "dev_seed": DEV_SEED,
                "ugs_l1": {f"{k[0]}/{k[1]}": v for k, v in UGS_L1.items()},
            },
        },
        md + notes,
        command="python benchmarks/pruning.py " + " ".join(sys.argv[1:]),
    )


def _label(item, res) -> str:
    st = item[0]
    what = "threshold selection" if st["kind"] == "fastglt_threshold" else f"seed {st['seed']}"
    return f"{st['dataset']}/{st['backbone']} {what} ({res['job_wall_s']:.0f}s)"


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
    ap.add_argument(
        "--fastglt-threshold",
        default="select",
        choices=["select", "global", "layer"],
        help="select: chosen per cell on the development seed's validation accuracy",
    )
    a = ap.parse_args()
    Path(a.work).mkdir(parents=True, exist_ok=True)
    explicit = {
        axis: [float(v) for v in lv.split(",") if v] for axis, lv in (("weight", a.w_levels), ("graph", a.g_levels))
    }
    methods = a.methods.split(",")
    cells = [(ds, bb) for ds in a.datasets.split(",") for bb in a.backbones.split(",")]
    t0 = time.perf_counter()
    selections, threshold = [], {c: a.fastglt_threshold for c in cells}
    if "fastglt" in methods and a.fastglt_threshold == "select":
        selections = run_jobs(job, [(select_settings(*c), a.work, a.data_dir) for c in cells], a.jobs, 1, _label)
        threshold = {(s_["dataset"], s_["backbone"]): s_["chosen"] for s_ in selections}
    todo = [
        (
            job_settings(ds, bb, s, methods, explicit, threshold[(ds, bb)] if "fastglt" in methods else None),
            a.work,
            a.data_dir,
        )
        for ds, bb in cells
        for s in range(a.seeds)
    ]
    jobs = run_jobs(job, todo, a.jobs, 1, _label)
    report(
        jobs,
        selections,
        a.out,
        time.perf_counter() - t0,
        a.jobs,
        a.seeds,
        bool(explicit["weight"] or explicit["graph"]),
    )


if __name__ == "__main__":
    main()
