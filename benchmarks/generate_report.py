"""The tables of ``benchmarks/generate.py``: the benchmark's (``report``) and the development experiment's
(``dev_report``)."""

from __future__ import annotations

import statistics

from _common import md_table, mean_std, paired_rows, write_results

LABELS = {
    "light_best": "light-search best (GNN-Diff's starting point)",
    "gnn_diff": "**GNN-Diff** (best of {n} samples by val)",
    "all": "GNN-Diff, all layers generated",
    "nocond": "GNN-Diff without the graph condition",
    "seeds": "light best config, {n} new seeds",
    "perturb": "{n} perturbations of the starting checkpoint",
    "gaussian": "{n} draws of a per-parameter Gaussian of the collected checkpoints",
    "soup": "uniform soup of the collected checkpoints",
    "random_equal_cost": "random search at the pipeline's cost",
}
TARGET_RATIO = {"cora/gcn": 0.2}  # the 540-config grid; 0.5 for the 108-config grids


def _pm(xs: list[float]) -> str:
    m, s = mean_std(xs)
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def _legacy(s: dict, n: int) -> dict:
    """The summary keys generate.json had before (kept for readers of the old file)."""
    r = s["rows"]
    return {
        "gnn_diff_std": mean_std(r["gnn_diff"])[1],
        "light_acc": s["light_best_acc"],
        "random_acc": mean_std(r["random_equal_cost"])[0],
        "baseline_acc": {k: mean_std(r[k])[0] for k in ("seeds", "perturb", "soup", "gaussian") if k in r},
        "gnn_diff_wall_s": s["pipeline_wall_s"],
        "seeds": len(s["seeds"]),
        "n": n,
        "diff_ci95": {k: [d["mean"], d["ci95"]] for k, d in s["diffs"].items()},
        **({"gnn_diff_nocond_acc": mean_std(r["nocond"])[0]} if "nocond" in r else {}),
    }


def report(name: str, summary: dict, grids: dict, jobs: list, n: int, wall: float, command: str) -> None:
    rows, drows, wrows, mrows, verdict = [], [], [], [], []
    for cell, s in summary.items():
        r = s["rows"]
        rows.append(
            [
                cell,
                "grid search (best by val)",
                f"{100 * s['grid_acc']:.2f}",
                s["grid_configs"],
                f"{s['grid_wall_s']:.0f}",
            ]
        )
        for key in LABELS:
            if key in r:
                w = {"light_best": s["light_search_wall_s"], "gnn_diff": s["pipeline_wall_s"]}.get(key)
                if key in ("all", "nocond"):  # the same light search, this variant's stages
                    vj = [j for j in jobs if j["cell"] == cell and j["variant"] == key]
                    w = s["light_search_wall_s"] + statistics.fmean(sum(j["walls"].values()) for j in vj)
                rows.append(
                    [
                        cell,
                        LABELS[key].format(n=n),
                        _pm(r[key]),
                        sum(x == x for x in r[key]),
                        "" if w is None else f"{w:.0f}",
                    ]
                )
        drows += paired_rows(
            (
                [cell, k.replace("_minus_", " − ").replace("_", " ")],
                {**d, "mean": 100 * d["mean"], "ci95": 100 * d["ci95"]},
            )
            for k, d in s["diffs"].items()
        )
        target = TARGET_RATIO.get(cell, 0.5)
        st = s["stage_wall_s"]
        wrows.append(
            [
                cell,
                f"{s['grid_wall_s']:.0f}",
                f"{s['light_search_wall_s']:.0f}",
                *(f"{st[k]:.1f}" for k in ("collect", "autoencoder", "diffusion", "sample")),
                f"{s['steps']['autoencoder']:.0f} / {s['steps']['diffusion']:.0f}",
                f"{s['pipeline_wall_s']:.0f}",
                f"{s['wall_ratio']:.2f}× ({'≤' if s['wall_ratio'] <= target else '>'} {target}×)",
            ]
        )
        mrows.append(
            [
                cell,
                f"{s['nn_ratio_median']:.3f}",
                f"{s['nn_ratio_p10_min']:.3f}",
                f"{100 * s['share_val_equal_base']:.0f}%",
                f"{100 * s['samples_val_mean']:.2f}",
                f"{100 * s['base_val']:.2f}",
            ]
        )
        d = s["diffs"]["gnn_diff_minus_light_best"]
        above = d["mean"] - d["ci95"] > 0
        s["targets"] = {"wall_ratio_max": target, "wall_met": s["wall_ratio"] <= target, "beats_light_best": above}
        verdict.append(
            f"- {cell}: GNN-Diff − light-search best {100 * d['mean']:+.2f} ± {100 * d['ci95']:.2f} pt "
            f"(**{'above 0' if above else 'interval not above 0'}**); pipeline {s['wall_ratio']:.2f}× the "
            f"grid's wall (**{'met' if s['wall_ratio'] <= target else 'missed'}**, target ≤ {target}×)."
        )
        s.update(_legacy(s, n))
    won = sum(s["targets"]["beats_light_best"] for s in summary.values())
    fast = sum(s["targets"]["wall_met"] for s in summary.values())
    size_rows = [
        [
            c,
            s["kwargs"]["autoencoder"]["dim"],
            s["kwargs"]["autoencoder"]["fold"],
            s["kwargs"]["autoencoder"]["dec_channels"],
            s["kwargs"]["diffusion"]["channels"],
        ]
        for c, s in summary.items()
    ]
    lines = [
        f"Test accuracy % (mean ± std over generation seeds; the light search is drawn anew per seed). N = {n}.",
        "",
        md_table(["cell", "method", "test acc %", "seeds", "wall s"], rows),
        "",
        "Paired differences in test accuracy (pt) per generation seed, ± the 95% t-interval (the grid is one "
        "number; `all layers − last layer` compares the two GNN-Diff targets):",
        "",
        md_table(["cell", "difference", "mean ± 95% CI", "interval holds 0"], drows),
        "",
        "Wall time (s; mean over seeds; two threads everywhere; light search = its share of the grid's wall; "
        "sample includes evaluating the controls) and the steps the stages ran before their validation plateau:",
        "",
        md_table(
            [
                "cell",
                "grid",
                "light search",
                "collect",
                "autoencoder",
                "diffusion",
                "sample",
                "steps AE / DDPM",
                "pipeline",
                "pipeline / grid",
            ],
            wrows,
        ),
        "",
        "Does generation move off its starting point? Memorisation ratio (distance to the nearest collected "
        "checkpoint / median nearest-neighbour distance among them; ≈ 0: copies), the share of samples whose "
        "validation accuracy equals the starting checkpoint's, the samples' mean validation accuracy and the "
        "starting checkpoint's:",
        "",
        md_table(
            [
                "cell",
                "nn ratio median",
                "10th pct (min over seeds)",
                "share val = start",
                "samples val %",
                "start val %",
            ],
            mrows,
        ),
        "",
        f"Targets: GNN-Diff − light-search best above 0 in at least half of the cells: **{won} of {len(summary)}** "
        f"({'met' if 2 * won >= len(summary) else 'missed'}); pipeline ≤ 0.2× the grid (cora/gcn) / ≤ 0.5× (108 "
        f"grids): **{fast} of {len(summary)}**.",
        "",
        *verdict,
        "",
        "Model sizes (`auto`, first seed; the best light config's hidden width sets the number generated):",
        "",
        md_table(["cell", "numbers generated", "fold", "decoder widths", "denoiser widths"], size_rows),
        "",
        f"This invocation: {wall:.0f} s (cached jobs are reused).",
    ]
    write_results(
        name,
        {"summary": summary, "grids": grids, "jobs": jobs, "this_invocation_s": wall},
        "\n".join(lines),
        command=command,
    )


def dev_report(cells: list[str], jobs: list, arms_ov: dict, rule: str, n: int, wall: float) -> None:
    """The development experiment's table and the defaults its declared rule picks."""
    arms = {}
    for arm, ov in arms_ov.items():
        js = [j for j in jobs if j["extra"] == list(ov)]
        arms[arm] = {
            "best_val": statistics.fmean(j["metrics"]["gen/best_val"] for j in js),
            "val_mean": statistics.fmean(j["metrics"]["gen/val_mean"] for j in js),
            "steps": {k: statistics.fmean(j["steps"][k] for j in js) for k in ("autoencoder", "diffusion")},
            "walls": {k: statistics.fmean(j["walls"][k] for j in js) for k in ("autoencoder", "diffusion", "sample")},
            "runs": len(js),
        }

    def close(a: str, b: str) -> bool:
        return all(abs(arms[a][k] - arms[b][k]) <= 0.003 for k in ("best_val", "val_mean"))

    sampler = next(a for a in ("ddim20", "ddim50", "ddpm1000") if close(f"{a}/delta1", "ddpm1000/delta1"))
    stop = "delta5" if close(f"{sampler}/delta5", f"{sampler}/delta1") else "delta1"
    chosen = f"{sampler}/{stop}"
    rows = [
        [
            a,
            f"{100 * v['best_val']:.2f}",
            f"{100 * v['val_mean']:.2f}",
            f"{v['steps']['autoencoder']:.0f} / {v['steps']['diffusion']:.0f}",
            " / ".join(f"{v['walls'][k]:.1f}" for k in ("autoencoder", "diffusion", "sample")),
            v["runs"],
        ]
        for a, v in arms.items()
    ]
    header = [
        "sampler / stop",
        "val acc of the pick %",
        "mean val acc of samples %",
        "steps AE / DDPM",
        "AE / DDPM / sample s",
        "runs",
    ]
    lines = [
        f"Rule (declared before the run): {rule}.",
        "",
        md_table(header, rows),
        "",
        f"Chosen: **{chosen}**.",
        "",
        f"Validation accuracy only; cells {', '.join(cells)}, generation (and search) seeds 100-102; N = {n}. The "
        "jobs ran one at a time at the thread count of the command. "
        f"{wall:.0f} s.",
    ]
    write_results(
        "generate_dev",
        {"summary": {"chosen": chosen, "arms": arms, "rule": rule}, "jobs": jobs},
        "\n".join(lines),
        command="python benchmarks/generate.py --dev",
    )
