"""Sweep reports from the zoo: mean ± std over seeds per configuration, CSV + Markdown + PNG plots.

    python -m gnnzoo.report logs/train/multiruns/2026-11-23_10-00-00     # the runs of one sweep
    python -m gnnzoo.report zoo --where dataset=cora --where backbone=gcn  # a zoo query

Reads only the zoo (never W&B), so it works with W&B offline or disabled. A configuration is the
run's identity config (what its run id hashes) without ``seed`` / ``init_seed`` and, for graph
classification, without ``problem.fold``: the folds of a cross-validation are averaged like seeds (mean ± std over
every seed and fold). The swept parameters are the identity keys whose values differ between the selected runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from gnnzoo.utils.logging import console
from gnnzoo.utils.sweep import read_job_statuses
from gnnzoo.zoo.ids import identity_config
from gnnzoo.zoo.store import Zoo, flatten_tree

METRICS = {"best_val": "best val", "test_at_best_val": "test at best val", "wall_time_s": "wall time (s)"}
# what a configuration's replicates differ in: averaged over, never a swept parameter
SEED_KEYS = ("seed", "init_seed", "problem.fold")


def _identity_row(rec: dict) -> dict:
    flat: dict = {}
    flatten_tree("", identity_config(rec.get("config") or {}), flat)
    for k in SEED_KEYS:
        flat.pop(k, None)
    return flat


def collect(source: str | Path, where: Sequence[str] = ()) -> pd.DataFrame:
    """One row per zoo record of ``source`` (a multirun folder or a zoo folder)."""
    source = Path(source)
    jobs = read_job_statuses(source)
    if jobs:  # a multirun folder: the run ids its jobs reported
        zoo_dirs = {j.get("zoo_dir") for j in jobs if j.get("zoo_dir")}
        ids = {j["run_id"] for j in jobs if j.get("run_id")} | {r for j in jobs for r in j.get("run_ids") or []}
        entries = [e for d in zoo_dirs for e in Zoo(d).entries() if e.run_id in ids]
    elif source.is_dir():
        entries = list(Zoo(source).entries())
    else:
        raise FileNotFoundError(f"{source} is neither a multirun folder (with */gnnzoo_job.json) nor a zoo folder")
    rows = []
    for e in entries:
        rec = e.record
        row = {
            "run_id": rec["run_id"],
            "status": rec["status"],
            "seed": rec.get("seed"),
            "dataset": rec.get("dataset"),
            "backbone": rec.get("backbone"),
            **{m: rec.get(m) for m in METRICS},
        }
        row.update({f"param.{k}": (json.dumps(v) if isinstance(v, list) else v) for k, v in _identity_row(rec).items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    for cond in where:
        key, _, value = cond.partition("=")
        col = key if key in df.columns else f"param.{key}"
        if col not in df.columns:
            raise KeyError(f"--where {cond}: unknown key {key!r}")
        df = df[df[col].astype(str) == value]
    return df.reset_index(drop=True)


def swept_params(df: pd.DataFrame) -> list[str]:
    cols = [c for c in df.columns if c.startswith("param.")]
    return [c for c in cols if df[c].astype(str).nunique() > 1]


def aggregate(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Mean ± std over seeds per configuration; failed runs are counted, not averaged."""
    if df.empty:
        return pd.DataFrame(), []
    swept = swept_params(df)
    keys = swept or ["dataset"]
    ok = df[df.status == "completed"]
    out = []
    for vals, grp in df.groupby([df[k].astype(str) for k in keys], sort=False, dropna=False):
        vals = vals if isinstance(vals, tuple) else (vals,)
        g_ok = ok.loc[ok.index.intersection(grp.index)]
        row = {k.removeprefix("param."): grp[k].iloc[0] for k in keys}
        row["seeds"] = int(len(g_ok))
        row["failed"] = int((grp.status == "failed").sum())
        for m in METRICS:
            x = pd.to_numeric(g_ok[m], errors="coerce").dropna()
            row[f"{m}_mean"] = float(x.mean()) if len(x) else math.nan
            row[f"{m}_std"] = float(x.std(ddof=1)) if len(x) > 1 else (0.0 if len(x) else math.nan)
        out.append(row)
    agg = pd.DataFrame(out).sort_values("best_val_mean", ascending=False, na_position="last")
    return agg.reset_index(drop=True), [k.removeprefix("param.") for k in swept]


def _pm(m: float, s: float, scale: float = 100.0, digits: int = 2) -> str:
    if m != m:
        return "—"
    return f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}"


def to_markdown(agg: pd.DataFrame, swept: list[str]) -> str:
    keys = swept or ["dataset"]
    header = keys + ["seeds", "failed", "best val %", "test at best val %", "wall time s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in agg.iterrows():
        cells = [str(r[k]) for k in keys] + [
            str(r.seeds),
            str(r.failed),
            _pm(r.best_val_mean, r.best_val_std),
            _pm(r.test_at_best_val_mean, r.test_at_best_val_std),
            _pm(r.wall_time_s_mean, r.wall_time_s_std, 1.0, 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(agg: pd.DataFrame, swept: list[str], out: Path, metric: str = "test_at_best_val") -> list[Path]:
    """One PNG per swept parameter: metric (mean ± std over seeds) against the parameter's values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for p in swept:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        values = agg[p].tolist()
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            x = pd.to_numeric(agg[p])
        else:
            cats = sorted({str(v) for v in values})
            x = agg[p].astype(str).map({c: i for i, c in enumerate(cats)})
            ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right")
        ax.errorbar(
            x, 100 * agg[f"{metric}_mean"], yerr=100 * agg[f"{metric}_std"].fillna(0), fmt="o", alpha=0.75, capsize=3
        )
        best = agg.loc[agg.groupby(x)[f"{metric}_mean"].idxmax().dropna()]
        bx = pd.to_numeric(best[p]) if numeric else best[p].astype(str).map({c: i for i, c in enumerate(cats)})
        order = bx.argsort()
        ax.plot(bx.iloc[order], 100 * best[f"{metric}_mean"].iloc[order], "-", color="C1", label="best per value")
        if numeric and x.min() > 0 and x.max() / x.min() > 50:
            ax.set_xscale("log")
        ax.set_xlabel(p)
        ax.set_ylabel(f"{METRICS[metric]} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        f = out / f"{metric}_vs_{p.replace('/', '_')}.png"
        fig.savefig(f, dpi=110)
        plt.close(fig)
        files.append(f)
    return files


def report(source: str | Path, out: str | Path | None = None, where: Sequence[str] = (), plots: bool = True) -> dict:
    df = collect(source, where)
    if df.empty:
        raise SystemExit(f"no zoo records found for {source} {list(where) or ''}")
    agg, swept = aggregate(df)
    out = Path(out) if out else Path(source) / "report"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "runs.csv", index=False)
    agg.to_csv(out / "report.csv", index=False)
    md = to_markdown(agg, swept)
    (out / "report.md").write_text(
        f"# Report: {source}\n\n{len(df)} runs, swept: {', '.join(swept) or 'nothing'}\n\n" + md
    )
    files = plot(agg, swept, out) if plots else None
    _print(agg, swept, len(df), out, files)
    return {"runs": df, "table": agg, "swept": swept, "out": out, "plots": files or []}


def _print(agg: pd.DataFrame, swept: list[str], n: int, out: Path, plots: Sequence[Path] | None) -> None:
    """The table, then what was written (``plots``: the PNGs drawn; None: plots were turned off)."""
    from rich.table import Table

    keys = swept or ["dataset"]
    t = Table(title=f"{n} runs, {len(agg)} configurations (mean ± std over seeds, %)")
    for k in keys + ["seeds", "failed", "best val", "test at best val", "wall s"]:
        t.add_column(k)
    for _, r in agg.iterrows():
        t.add_row(
            *[str(r[k]) for k in keys],
            str(r.seeds),
            str(r.failed),
            _pm(r.best_val_mean, r.best_val_std),
            _pm(r.test_at_best_val_mean, r.test_at_best_val_std),
            _pm(r.wall_time_s_mean, r.wall_time_s_std, 1, 1),
        )
    console.print(t)
    if plots:
        what = f" and {len(plots)} plot{'s' if len(plots) > 1 else ''} ({', '.join(Path(p).name for p in plots)})"
    else:
        what = " (no plot: " + ("--no-plots" if plots is None else "no parameter was swept, nothing to plot") + ")"
    console.print(f"written: {out}/report.csv, report.md, runs.csv{what}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gnnzoo.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="a multirun folder (logs/train/multiruns/...) or a zoo folder")
    ap.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs whose dataset/backbone/status or config key equals VALUE (repeatable)",
    )
    ap.add_argument("--out", default=None, help="output folder (default: SOURCE/report)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    report(args.source, args.out, args.where, plots=not args.no_plots)


if __name__ == "__main__":
    main(sys.argv[1:])
