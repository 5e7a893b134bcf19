"""Soups benchmark: best ingredient vs uniform, greedy, GIS, LS and PLS.

Part `main`: Cora and CiteSeer x GCN, SAGE, GAT; 16 ingredients sharing one init (init_seed = soup
seed) per soup; 5 soup seeds. Part `scaling`: GraphSAGE on synthetic SBM graphs of 100k and 1M
nodes, LS vs PLS.

Ingredients are trained once per (dataset, backbone, seed) into a zoo (batched where possible) and
reused by every method. Each method then runs `gnnzoo.soups.task.run` in its own child process
(forkserver with preloaded imports): its wall time covers the strategy only, and its memory is the
child's peak RSS while the strategy runs (sampled), absolute and above the level at its start.
Test accuracy only; methods that fit do so on the validation nodes.

    python benchmarks/soups.py [--part main|scaling|all] [--seeds 5] [--ingredients 16] [--out NAME]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import compose, md_table, mean_std, write_results  # noqa: E402

METHODS = ["uniform", "greedy", "gis", "learned", "partition_learned"]
TUNED_KEYS = ("optimizer", "lr", "beta_lr", "epochs", "init", "keep", "t0")  # soup.params a soups_tune pick may set
LABEL = {"uniform": "uniform", "greedy": "greedy", "gis": "GIS", "learned": "LS", "partition_learned": "PLS"}


def _child(overrides: list[str], q) -> None:
    import resource

    from _common import compose as _compose
    from gnnzoo.soups.task import run as run_soup

    try:
        res = run_soup(_compose(overrides))
        res["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        q.put(res)
    except BaseException as e:  # report, never hang the parent
        q.put({"error": f"{type(e).__name__}: {e}"})


def run_method(ctx, overrides: list[str]) -> dict:
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(overrides, q))
    p.start()
    res = q.get()
    p.join()
    if "error" in res:
        raise RuntimeError(f"{overrides}: {res['error']}")
    return res


def train_ingredients(overrides: list[str], k: int) -> float:
    from gnnzoo.soups.ingredients import train_ingredients as _train

    t0 = time.perf_counter()
    _train(compose(overrides + ["soup=uniform", f"soup.ingredients={k}"]), k)
    return time.perf_counter() - t0


def paired_ci(diff: list[float]) -> tuple[float, float]:
    """The 95% t-interval (low, high) of the mean of paired differences (the harness's ``paired``; NaN with fewer
    than two)."""
    from _common import paired

    d = paired(list(diff), [0.0] * len(diff))
    return d["mean"] - d["ci95"], d["mean"] + d["ci95"]


def defaults(strategy: str):
    """``soup.params`` of a strategy as composed from conf/soup (so a table never describes settings it did not use)."""
    return compose([f"soup={strategy}"]).soup.params


def settings() -> str:
    """The soup defaults, for the main table's footer."""
    out = [f"GIS G={defaults('gis').granularity}"]
    for m, name in (("learned", "LS"), ("partition_learned", "PLS")):
        p = defaults(m)
        extra = f", keep {p.keep}" if "keep" in p else f", {p.partition} K={p.num_parts} R={p.num_parts_per_step}"
        beta = "= lr" if p.beta_lr is None else f"{p.beta_lr:g}"
        out.append(
            f"{name} {p.epochs} epochs, {p.optimizer} lr {p.lr:g} (beta lr {beta}), weight decay "
            f"{p.weight_decay:g}, init {p.init}, T0 {p.t0}, dropout {'on' if p.train_mode else 'off'}{extra}"
        )
    return "; ".join(out)


def part_main(ctx, seeds: int, k: int, tmp: str, tuned: dict | None = None) -> tuple[dict, str]:
    cells, rows = {}, []
    for dataset in ("cora", "citeseer"):
        for backbone in ("gcn", "sage", "gat"):
            acc = {m: [] for m in ["best ingredient", *METHODS]}
            secs = {m: [] for m in METHODS}
            mem = {m: [] for m in METHODS}
            ing_s = []
            for seed in range(seeds):
                base = [
                    f"dataset={dataset}",
                    f"backbone={backbone}",
                    f"seed={seed}",
                    f"soup.seed_offset={100 * seed}",
                    "logger=none",
                    "extras.print_config=false",
                    "trainer.enable_progress_bar=false",
                    f"paths.zoo_dir={tmp}/zoo",
                    f"paths.output_dir={tmp}/out",
                ]
                ing_s.append(train_ingredients(base, k))
                for m in METHODS:
                    extra = []
                    if m == "learned" and tuned:
                        t = tuned[f"{dataset}/{backbone}"]
                        extra = [f"soup.params.{k}={'null' if t[k] is None else t[k]}" for k in TUNED_KEYS if k in t]
                    res = run_method(ctx, base + [f"soup={m}", f"soup.ingredients={k}"] + extra)
                    acc[m].append(100 * res["soup/test_acc"])
                    secs[m].append(res["soup/time_s"])
                    mem[m].append(res["soup/mem_delta_mb"])
                acc["best ingredient"].append(100 * res["ingredients/best_test_acc"])
            cell = {"test_acc": acc, "time_s": secs, "mem_delta_mb": mem, "ingredient_train_s": ing_s}
            cells[f"{dataset}/{backbone}"] = cell
            gis_t, ls_t = mean_std(secs["gis"])[0], mean_std(secs["learned"])[0]
            diff = [a - b for a, b in zip(acc["learned"], acc["gis"])]  # paired: same ingredients, same seed
            row = [dataset, backbone] + [f"{mean_std(acc[m])[0]:.2f} ± {mean_std(acc[m])[1]:.2f}" for m in acc]
            lo, hi = paired_ci(diff)
            row += [
                f"{mean_std(diff)[0]:+.2f} ± {mean_std(diff)[1]:.2f} ({sum(d >= 0 for d in diff)}/{len(diff)})",
                f"[{lo:+.2f}, {hi:+.2f}]",
            ]
            row += [
                f"{gis_t:.2f}",
                f"{ls_t:.2f}",
                f"{mean_std(secs['partition_learned'])[0]:.2f}",
                f"{ls_t / gis_t:.2f}",
            ]
            rows.append(row)
            print(row, flush=True)
    md = md_table(
        [
            "dataset",
            "backbone",
            "best ingredient",
            "uniform",
            "greedy",
            "GIS",
            "LS",
            "PLS",
            "LS − GIS paired",
            "95% CI",
            "GIS s",
            "LS s",
            "PLS s",
            "LS/GIS time",
        ],
        rows,
    )
    all_diff = [a - b for c in cells.values() for a, b in zip(c["test_acc"]["learned"], c["test_acc"]["gis"])]
    ok_acc = [mean_std(c["test_acc"]["learned"])[0] >= mean_std(c["test_acc"]["gis"])[0] for c in cells.values()]
    ok_time = [mean_std(c["time_s"]["learned"])[0] <= 0.5 * mean_std(c["time_s"]["gis"])[0] for c in cells.values()]
    md += (
        f"\n\nTest accuracy %, mean ± std over {seeds} soups of {k} ingredients each. Target LS ≥ GIS accuracy: "
        f"**{sum(ok_acc)}/{len(ok_acc)} cells**; LS time ≤ 0.5× GIS: **{sum(ok_time)}/{len(ok_time)} cells**. "
        "LS − GIS paired: mean ± std of the per-seed differences (same ingredients), and in how many seeds LS ≥ GIS; "
        f"95% CI: Student-t interval of the mean paired difference (an interval that holds 0 means the cell "
        f"cannot tell LS from GIS at this many seeds). Over all cells LS − GIS = {mean_std(all_diff)[0]:+.2f} pt "
        "[{:+.2f}, {:+.2f}], LS ≥ GIS in {}/{} soups.\n\n".format(
            *paired_ci(all_diff), sum(d >= 0 for d in all_diff), len(all_diff)
        )
    )
    mrows = [[key] + [f"{mean_std(c['mem_delta_mb'][m])[0]:.1f}" for m in METHODS] for key, c in cells.items()]
    md += "Peak RSS above the child's starting level while the method runs (MB):\n\n"
    md += md_table(["cell"] + [LABEL[m] for m in METHODS], mrows)
    lost = [
        f"{key}: {LABEL[m]}"
        for key, c in cells.items()
        for m in METHODS
        if mean_std(c["test_acc"][m])[0] < mean_std(c["test_acc"]["best ingredient"])[0]
    ]
    md += "\n\nSoups below the best ingredient (by val) on mean test accuracy: " + (", ".join(lost) or "none") + ".\n"
    if tuned:
        md += (
            "\nLS per cell from `benchmarks/results/soups_tune.md` (chosen on held-out soup seeds with "
            "soup.holdout, never on these seeds or on test nodes): "
            + ", ".join(f"{c} " + " ".join(f"{k} {t[k]}" for k in TUNED_KEYS if k in t) for c, t in tuned.items())
            + ".\n"
        )
    md += (
        "\nSettings"
        + (" (LS: the per-cell picks above, not these defaults)" if tuned else "")
        + f": conf/soup/*.yaml defaults ({settings()}). Published reference (Enhanced Soups abstract): "
        "LS up to +1.2 pt and 2.1× faster than GIS; PLS 24.5× faster and −76% memory on ogbn-products/GraphSAGE.\n"
    )
    return cells, md


def part_scaling(ctx, k: int, tmp: str) -> tuple[dict, str]:
    out, rows = {}, []
    for n in (100_000, 1_000_000):
        base = [
            "dataset=synthetic",
            f"dataset.loader.num_nodes={n}",
            "dataset.loader.avg_degree=10",
            "backbone=sage",
            "data=neighbor",
            "data.batch_size=256",
            "trainer.max_epochs=20",
            "trainer.check_val_every_n_epoch=5",
            "logger=none",
            "extras.print_config=false",
            "trainer.enable_progress_bar=false",
            f"paths.zoo_dir={tmp}/zoo",
            f"paths.output_dir={tmp}/out",
        ]
        t_ing = train_ingredients(base, k)
        res = {
            m: run_method(ctx, base + [f"soup={m}", f"soup.ingredients={k}", "soup.params.epochs=10"])
            for m in ("learned", "partition_learned")
        }
        ls, pls = res["learned"], res["partition_learned"]
        r_mem = pls["soup/mem_delta_mb"] / max(ls["soup/mem_delta_mb"], 1e-9)
        d_acc = 100 * (pls["soup/test_acc"] - ls["soup/test_acc"])
        out[n] = {
            "ingredient_train_s": t_ing,
            "learned": ls,
            "partition_learned": pls,
            "mem_ratio": r_mem,
            "acc_diff_pt": d_acc,
        }
        rows.append(
            [
                f"{n:,}",
                f"{100 * ls['soup/test_acc']:.2f}",
                f"{100 * pls['soup/test_acc']:.2f}",
                f"{d_acc:+.2f}",
                f"{ls['soup/time_s']:.1f}",
                f"{pls['soup/time_s']:.1f}",
                f"{ls['soup/time_s'] / pls['soup/time_s']:.1f}×",
                f"{ls['soup/mem_delta_mb']:.0f}",
                f"{pls['soup/mem_delta_mb']:.0f}",
                f"{r_mem:.2f}",
                f"{ls['soup/peak_mem_mb']:.0f} / {pls['soup/peak_mem_mb']:.0f}",
            ]
        )
        print(rows[-1], flush=True)
    md = md_table(
        [
            "nodes",
            "LS test %",
            "PLS test %",
            "PLS − LS pt",
            "LS s",
            "PLS s",
            "speedup",
            "LS mem MB",
            "PLS mem MB",
            "PLS/LS mem",
            "peak RSS MB LS / PLS",
        ],
        rows,
    )
    ok = [v["mem_ratio"] <= 0.35 and abs(v["acc_diff_pt"]) <= 0.5 for v in out.values()]
    md += (
        f"\n\nGraphSAGE (2 layers, hidden 64), {k} ingredients trained with neighbour sampling, 10 soup epochs "
        "each (LS: full graph per step; PLS: 8 of 32 METIS parts per step); otherwise conf/soup defaults ("
        + ", ".join(
            f"{n} {p.optimizer} lr {p.lr:g}"
            for n, p in (("LS", defaults("learned")), ("PLS", defaults("partition_learned")))
        )
        + "). Memory: peak RSS above the child's "
        f"level at the start of the method. Target PLS mem ≤ 0.35× LS within 0.5 pt: **{sum(ok)}/{len(ok)}**.\n"
    )
    return out, md


def copy_ingredients(src: str, tmp: str) -> int:
    import json
    import shutil

    n = 0
    for rec in Path(src, "zoo").glob("*/record.json"):
        if json.loads(rec.read_text()).get("kind") != "soup":
            shutil.copytree(rec.parent, Path(tmp, "zoo", rec.parent.name))
            n += 1
    print(f"reusing {n} ingredient entries from {src}", flush=True)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=["main", "scaling", "all"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ingredients", type=int, default=16)
    ap.add_argument(
        "--ingredients-from",
        default=None,
        metavar="DIR",
        help="temp folder of an earlier run of this script: its ingredient entries (same configs, same "
        "run ids) are copied into the new zoo and not retrained; soups are always recomputed",
    )
    ap.add_argument(
        "--tuned",
        action="store_true",
        help="LS settings per cell from benchmarks/results/soups_tune.json (benchmarks/soups_tune.py); "
        "results go to soups_tuned.{md,json}",
    )
    ap.add_argument(
        "--out",
        default=None,
        metavar="NAME",
        help="results name for part main (default soups, or soups_tuned with --tuned; with --seeds other "
        "than 5, soups_<N>seeds so the issue's 5-seed table is not overwritten)",
    )
    args = ap.parse_args()
    out_name = args.out or ("soups_tuned" if args.tuned else "soups" if args.seeds == 5 else f"soups_{args.seeds}seeds")
    tuned = None
    if args.tuned:
        import json

        from _common import RESULTS
        from soups_tune import FIXED

        tune = json.loads((RESULTS / "soups_tune.json").read_text())
        # each pick with the settings its grid held fixed (older result files do not list them)
        fixed = tune.get("fixed", FIXED[tune.get("protocol", "holdout")])
        tuned = {c: {**fixed, **t} for c, t in tune["cells"].items()}
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torch_geometric", "gnnzoo.soups.task", "gnnzoo.tasks.backbone", "_common"])
    tmp = tempfile.mkdtemp(prefix="gnnzoo-soups-")
    reused = copy_ingredients(args.ingredients_from, tmp) if args.ingredients_from else 0
    if args.part in ("main", "all"):
        cells, md = part_main(ctx, args.seeds, args.ingredients, tmp, tuned)
        if reused:
            md += (
                f"\nIngredients: {reused} zoo entries reused from an earlier run of this script (same configs and run "
                "ids; `--ingredients-from`); every soup was recomputed in this run.\n"
            )
        write_results(
            out_name,
            {"seeds": args.seeds, "ingredients": args.ingredients, "cells": cells, "ingredients_reused": reused},
            md,
            command="python " + " ".join(["benchmarks/soups.py"] + sys.argv[1:]),
        )
    if args.part in ("scaling", "all"):
        out, md = part_scaling(ctx, args.ingredients, tmp)
        if reused:
            md += (
                f"\nIngredients: {reused} zoo entries reused from an earlier run of this script (same configs and run "
                "ids; `--ingredients-from`); every soup was recomputed in this run.\n"
            )
        write_results(
            "soups_scaling",
            {
                "ingredients": args.ingredients,
                "results": {str(k): v for k, v in out.items()},
                "ingredients_reused": reused,
            },
            md,
            command="python " + " ".join(["benchmarks/soups.py"] + sys.argv[1:]),
        )


if __name__ == "__main__":
    main()
