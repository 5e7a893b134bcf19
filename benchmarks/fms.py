"""Forecasting Model Search benchmark: a tabular replay of recorded runs, regret against epochs spent.

Per cell (dataset/backbone) the table is one batched ``train.py -m`` sweep, trained once and cached:
Adam, lr {0.001, 0.005, 0.02, 0.1} x weight decay {0, 5e-4, 5e-3} x dropout {0.2, 0.5, 0.8} x hidden
{16, 32, 64} = 108 configs, 200 epochs, no early stopping, seed 0, per-epoch val/test curves and a snapshot
every 10 epochs (``zoo.snapshot_every=10``); the weight features of every snapshot are the training-free layer
statistics the sweeper uses by default (``hydra.sweeper.weights=stat``).

Every method searches the same space with the same total budget (``--budget`` epochs, default 2000 = 9% of the
table's 21,600) and is replayed from the table: a trial trained to ``e`` epochs gives the method its val curve
up to ``e``, its best val so far, the test accuracy at that best-val epoch and the snapshot features at ``e``,
nothing later (the replay gives a method only what it paid for). The incumbent of every method is chosen the
same way: the best val observed over everything paid for; its test accuracy is reported. Regret = the best test
accuracy anywhere in the table (any config, any epoch; the method sheet's definition) minus the incumbent's, in
points, at 25%, 50% and 100% of the budget.

* ``fms``, ``dyhpo``, ``random``: ``gnnzoo.search.Search`` (the loop the sweeper runs), n_initial 10, b0 10,
  Δ 10; ``random`` trains random configs to 200 epochs. The replay is also the loop's ``truth`` oracle, so each
  iteration's one-step forecast τ ranks every candidate's forecast against its true outcome (``tau_mean``: the
  mean over iterations, per seed);
* ``tpe``: Optuna's TPE, full-budget trials (200 epochs), 10 startup trials (as many as the others' n_initial);
* ``hyperband``: Optuna's TPE (10 startup trials) with ``HyperbandPruner(min_resource=10, max_resource=200,
  reduction_factor=3)``, reporting the best val so far every 10 epochs;
* a configuration is never paid for twice: when TPE or Hyperband suggests a point again, the epochs it already
  has are free (a point trained to full budget costs nothing and gives the value it has).
* ``ifbo``: the ``ifbo`` package's FT-PFN; run only where its surrogate weights are already on disk (they are
  downloaded from figshare on first use, which this machine cannot do), otherwise reported as not run.

Seeds 0..S-1 for every method (the Search's ``seed``, the Optuna samplers' ``seed``). Jobs run through the harness
(benchmarks/_common.py) in ``--jobs`` processes with one torch thread each; tables and finished jobs are cached in
``--work`` under a hash of the script, the library and every setting (a rerun resumes; other settings never reuse
a cached job).

    python benchmarks/fms.py [--cells cora/gcn,cora/sage,citeseer/gcn,citeseer/sage] [--seeds 10] [--budget 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    RESULTS,
    ROOT,
    JobCache,
    ci95,
    md_table,
    mean_std,
    paired,
    paired_rows,
    run_jobs,
    train_multirun,
    write_results,
)  # noqa: E402

SPACE = {
    "optimizer.lr": "tag(log, choice(0.001, 0.005, 0.02, 0.1))",
    "optimizer.weight_decay": "choice(0, 0.0005, 0.005)",
    "backbone.dropout": "choice(0.2, 0.5, 0.8)",
    "backbone.hidden_channels": "choice(16, 32, 64)",
}
GRID = [
    "optimizer=adam",
    "optimizer.lr=0.001,0.005,0.02,0.1",
    "optimizer.weight_decay=0,0.0005,0.005",
    "backbone.dropout=0.2,0.5,0.8",
    "backbone.hidden_channels=16,32,64",
]
COMMON = [
    "logger=none",
    "monitor.patience=null",
    "extras.print_config=false",
    "trainer.enable_progress_bar=false",
    "zoo.snapshot_every=10",
    "seed=0",
]
SMOKE_GRID = [
    "optimizer=adam",
    "optimizer.lr=0.005,0.02",
    "optimizer.weight_decay=0,0.0005,0.005",
    "backbone.dropout=0.5",
    "backbone.hidden_channels=16",
]
SMOKE_SPACE = {
    **SPACE,
    "optimizer.lr": "tag(log, choice(0.005, 0.02))",
    "backbone.dropout": "choice(0.5)",
    "backbone.hidden_channels": "choice(16)",
}
METHODS = ("fms", "dyhpo", "random", "tpe", "hyperband", "ifbo")
FRACTIONS = (0.25, 0.5, 1.0)
SNAP = 10
N_INITIAL = 10  # the loop's random initial design, and the Optuna samplers' startup trials


def _key(point: dict) -> tuple:
    return tuple(float(f"{float(point[k]):.6g}") for k in SPACE)


# ------------------------------------------------------------------------------------------------ the table
def table_settings(cell: str, epochs: int, smoke: bool) -> dict:
    return {
        "kind": "table",
        "cell": cell,
        "epochs": epochs,
        "common": COMMON,
        "grid": SMOKE_GRID if smoke else GRID,
        "space": SMOKE_SPACE if smoke else SPACE,
        "features": "stat",
    }


def build_table(cell: str, work: Path, data_dir: str, epochs: int, smoke: bool) -> dict:
    settings = table_settings(cell, epochs, smoke)
    return JobCache(work, __file__).run(settings, lambda: _train_table(settings, work, data_dir))["result"]


def _train_table(st: dict, work: Path, data_dir: str) -> dict:
    from omegaconf import OmegaConf

    from gnnzoo.search.features import stat_features
    from gnnzoo.zoo import Zoo

    cell, epochs, space = st["cell"], st["epochs"], st["space"]
    ds, bb = cell.split("/")
    zoo = work / f"zoo_{ds}_{bb}"
    wall = train_multirun(
        [*st["common"], f"trainer.max_epochs={epochs}", f"dataset={ds}", f"backbone={bb}", *st["grid"]],
        zoo,
        work,
        data_dir,
        f"table_{ds}_{bb}",
    )
    t0 = time.perf_counter()
    feat = stat_features()
    z = Zoo(zoo)
    runs = {}
    for r in z.df(kind="run", status="completed").itertuples():
        e = z.get(r.run_id)
        rec = e.record
        cfg = OmegaConf.create(rec["config"])
        point = {k: OmegaConf.select(cfg, k) for k in space}
        feats = {str(s["epoch"]): feat(e.snapshot(s["epoch"]), bb) for s in rec["snapshots"]}
        runs[repr(_key(point))] = {
            "run_id": r.run_id,
            "point": point,
            "val": rec["curves"]["val/acc"],
            "test": rec["curves"]["test/acc"],
            "feats": feats,
        }
    return {
        "cell": cell,
        "zoo": str(zoo),
        "configs": len(runs),
        "epochs": epochs,
        "train_wall_s": wall,
        "feature_wall_s": time.perf_counter() - t0,
        "runs": runs,
    }


def oracle(table: dict) -> float:
    return max(max(r["test"]) for r in table["runs"].values())


class Replay:
    """A trial's observation at ``e`` epochs from the table: val curve to ``e``, best val so far, the test
    accuracy at that epoch, the features of the snapshot at ``e`` (the last one at or before it)."""

    def __init__(self, table: dict):
        self.runs = table["runs"]

    def at(self, point: dict, e: int) -> tuple[list, float, float, list | None, str]:
        r = self.runs[repr(_key(point))]
        val = r["val"][:e]
        i = max(range(len(val)), key=lambda j: (val[j], -j))  # the first epoch of the best val
        snaps = [int(s) for s in r["feats"] if int(s) <= e]
        w = r["feats"][str(max(snaps))] if snaps else None
        return val, float(val[i]), float(r["test"][i]), w, r["run_id"]


# ------------------------------------------------------------------------------------------------ methods
def run_search(table: dict, method: str, seed: int, budget: int, space: dict) -> list[tuple[int, float, float]]:
    from gnnzoo.search.loop import Result, Search, Settings
    from gnnzoo.search.space import SearchSpace

    replay = Replay(table)

    def runner(launches):
        out = []
        for ln in launches:
            curve, v, t, w, rid = replay.at(ln.point, ln.target)
            out.append(Result(ok=True, epochs=ln.target, curve=curve, value=v, test=t, weights=w, run_id=rid))
        return out

    def truth(launches):
        return [replay.at(ln.point, ln.target)[1] for ln in launches]

    from gnnzoo.search.results import mean_tau

    s = Settings(
        budget=budget, max_epochs=table["epochs"], n_initial=N_INITIAL, b0=SNAP, delta=SNAP, surrogate=method, seed=seed
    )
    st = Search(SearchSpace(space), s, runner, truth=truth).run()
    assert st["spent"] <= budget
    deepest = max((t["epochs"] for t in st["trials"].values()), default=0)
    return [(h["spent"], h["incumbent_value"], h["incumbent_test"]) for h in st["history"]], {
        "fallbacks": len(st["fallbacks"]),
        "tau_last": st["history"][-1]["tau"] if st["history"] else None,
        "tau_mean": mean_tau(st) if method != "random" else None,
        "taus": [h["tau"] for h in st["history"]],
        "trials": len(st["trials"]),
        "continuations": sum(len(t["obs"]) - 1 for t in st["trials"].values() if t["obs"]),
        "deepest_epochs": deepest,
    }


def run_optuna(table: dict, method: str, seed: int, budget: int, space: dict):
    import optuna
    from optuna.trial import TrialState

    from gnnzoo.search.space import SearchSpace

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dims = [(d.key, d.values) for d in SearchSpace(space).dims]
    E = table["epochs"]
    hb = method == "hyperband"
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=N_INITIAL)
    pruner = (
        optuna.pruners.HyperbandPruner(min_resource=SNAP, max_resource=E, reduction_factor=3)
        if hb
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    replay, spent, best, trace, trials = Replay(table), 0, None, [], 0
    paid: dict[tuple, int] = {}  # epochs each configuration already has: never paid for twice
    asks, max_asks = 0, 50 * len(table["runs"])

    def seen(point, e):
        nonlocal best
        _, v, t, _, _ = replay.at(point, e)
        if best is None or v > best[0]:
            best = (v, t)
        trace.append((spent, best[0], best[1]))
        return v

    while spent < budget and asks < max_asks:
        trial = study.ask()
        asks += 1
        point = {k: trial.suggest_categorical(k, vals) for k, vals in dims}
        have = paid.get(_key(point), 0)
        trials += have == 0
        if not hb:
            e = max(have, min(E, have + budget - spent))
            spent += e - have
            paid[_key(point)] = e
            study.tell(trial, seen(point, e))
            continue
        e, v, pruned = 0, None, False
        while e < E and (spent < budget or e < have):
            step = min(SNAP, E - e) if e < have else min(SNAP, E - e, budget - spent)
            e += step
            spent += max(0, e - max(have, e - step))
            paid[_key(point)] = max(have, e)
            v = seen(point, e)
            trial.report(v, e)
            if trial.should_prune():
                pruned = True
                break
        study.tell(trial, state=TrialState.PRUNED) if pruned else study.tell(trial, v)
    return trace, {"trials": trials, "asks": asks}


def ifbo_available() -> str | None:
    """None when ifBO can be replayed here, else why not."""
    import importlib.util

    if importlib.util.find_spec("ifbo") is None:
        return "the ifbo package is not installed (pip install ifbo)"
    return (
        "ifBO's FT-PFN surrogate weights are downloaded from figshare on first use (ifbo/download.py) and "
        "this machine has no internet, so its replay is not implemented here"
    )


def job_settings(cell: str, method: str, seed: int, budget: int, epochs: int, smoke: bool) -> dict:
    return {
        "kind": "search",
        "cell": cell,
        "method": method,
        "seed": seed,
        "budget": budget,
        "table": table_settings(cell, epochs, smoke),
        "n_initial": N_INITIAL,
        "b0": SNAP,
        "delta": SNAP,
    }


def job(args: tuple) -> dict:
    settings, work = args

    def search() -> dict:
        table = build_table(
            settings["cell"], Path(work), "", settings["table"]["epochs"], settings["table"]["grid"] == SMOKE_GRID
        )
        space = settings["table"]["space"]
        t0 = time.perf_counter()
        runner = run_search if settings["method"] in ("fms", "dyhpo", "random") else run_optuna
        trace, extra = runner(table, settings["method"], settings["seed"], settings["budget"], space)
        return {
            "cell": settings["cell"],
            "method": settings["method"],
            "seed": settings["seed"],
            "budget": settings["budget"],
            "wall_s": time.perf_counter() - t0,
            "trace": trace,
            **extra,
        }

    payload = JobCache(work, __file__).run(settings, search)
    return {**payload["result"], "settings": payload["settings"], "job_key": payload["key"], "code": payload["code"]}


def from_cache(cache: JobCache, settings: dict) -> dict:
    """A finished job's result as cached (``--from-cache``), with its settings, key and code digest."""
    payload = cache.stored(settings)
    if payload is None:
        raise SystemExit(f"--from-cache: no cached job with settings {settings}")
    return {**payload["result"], "settings": payload["settings"], "job_key": payload["key"], "code": payload["code"]}


# ------------------------------------------------------------------------------------------------ report
def regret_at(trace: list, best: float, spent: float) -> float:
    inc = [t for s, _, t in trace if s <= spent]
    return 100 * (best - inc[-1]) if inc else float("nan")


def plot(cells: list[str], jobs: list[dict], oracles: dict, budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    xs = np.linspace(0, budget, 101)
    n = len(cells)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, cell in zip(axes[0], cells):
        for m in METHODS:
            js = [j for j in jobs if j["cell"] == cell and j["method"] == m]
            if not js:
                continue
            r = np.array([[regret_at(j["trace"], oracles[cell], x) for x in xs] for j in js])
            mu = np.nanmean(r, 0)
            ax.plot(xs, mu, label=m)
            if len(js) > 1:
                se = np.nanstd(r, 0, ddof=1) / np.sqrt(len(js))
                ax.fill_between(xs, mu - 1.96 * se, mu + 1.96 * se, alpha=0.15)
        ax.set_title(cell)
        ax.set_xlabel("epochs spent")
        ax.set_ylabel("regret (test acc pt)")
        ax.set_ylim(bottom=0)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(name, cells, tables, jobs, budget, seeds, not_run, wall, command) -> None:
    oracles = {c: oracle(tables[c]) for c in cells}
    table_epochs = tables[cells[0]]["epochs"]
    summary, rows, diff_rows, runs = {}, [], [], []
    methods = [m for m in METHODS if m not in not_run]
    for cell in cells:
        summary[cell] = {}
        per = {}
        for m in methods:
            js = sorted((j for j in jobs if j["cell"] == cell and j["method"] == m), key=lambda j: j["seed"])
            per[m] = {q: [regret_at(j["trace"], oracles[cell], q * budget) for j in js] for q in FRACTIONS}
            cellrow = {}
            for q in FRACTIONS:
                mu, _ = mean_std(per[m][q])
                cellrow[f"regret_{int(q * 100)}"] = mu
                cellrow[f"regret_{int(q * 100)}_ci95"] = ci95(per[m][q])
            taus = [j["tau_mean"] for j in js if j.get("tau_mean") is not None]
            cellrow["tau_mean"] = mean_std(taus)[0] if taus else None
            cellrow["tau_mean_ci95"] = ci95(taus) if taus else None
            per[m]["tau"] = [j.get("tau_mean") if j.get("tau_mean") is not None else float("nan") for j in js]
            summary[cell][m] = cellrow
            rows.append(
                [cell, m]
                + [
                    f"{cellrow[f'regret_{int(q * 100)}']:.2f} ± {cellrow[f'regret_{int(q * 100)}_ci95']:.2f}"
                    for q in FRACTIONS
                ]
                + [
                    "-"
                    if cellrow["tau_mean"] is None
                    else f"{cellrow['tau_mean']:.3f} ± {cellrow['tau_mean_ci95']:.3f}",
                    f"{mean_std([j.get('deepest_epochs', table_epochs) for j in js])[0]:.0f}",
                    len(js),
                    f"{mean_std([j['wall_s'] for j in js])[0]:.1f}",
                ]
            )
            runs += [
                {
                    "cell": cell,
                    "method": m,
                    "seed": j["seed"],
                    "wall_s": j["wall_s"],
                    **{f"regret_{int(q * 100)}": regret_at(j["trace"], oracles[cell], q * budget) for q in FRACTIONS},
                    **{
                        k: j[k]
                        for k in (
                            "trials",
                            "asks",
                            "fallbacks",
                            "tau_last",
                            "tau_mean",
                            "continuations",
                            "deepest_epochs",
                            "settings",
                            "job_key",
                            "code",
                        )
                        if k in j
                    },
                }
                for j in js
            ]
        for other in [m for m in methods if m != "fms"]:
            for q in FRACTIONS:
                diff_rows.append(
                    ([cell, f"fms − {other}", f"regret @{int(q * 100)}%"], paired(per["fms"][q], per[other][q]))
                )
            if other == "dyhpo":
                diff_rows.append(
                    ([cell, "fms − dyhpo", "τ (per-iteration mean)"], paired(per["fms"]["tau"], per["dyhpo"]["tau"]))
                )
    best_rows = []
    for cell in cells:
        for q in FRACTIONS:
            k = f"regret_{int(q * 100)}"
            ranked = sorted(methods, key=lambda m: (summary[cell][m][k] != summary[cell][m][k], summary[cell][m][k]))
            best_rows.append(
                [
                    cell,
                    f"{int(q * 100)}%",
                    ranked[0],
                    f"{summary[cell][ranked[0]][k]:.2f}",
                    "yes" if ranked[0] == "fms" else "no",
                ]
            )
    plot_path = RESULTS / f"{name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(cells, jobs, oracles, budget, plot_path)
    table_rows = [
        [
            c,
            tables[c]["configs"],
            tables[c]["epochs"],
            f"{100 * oracles[c]:.2f}",
            f"{tables[c]['train_wall_s']:.0f}",
            f"{tables[c]['feature_wall_s']:.0f}",
        ]
        for c in cells
    ]
    md = "\n\n".join(
        [
            f"Tabular replay, budget {budget} epochs per search, {seeds} seeds per method; regret = best test "
            "accuracy anywhere in the table − the test accuracy of the incumbent (chosen by val), in points, "
            "mean ± 95% t-interval over seeds. Settings in the docstring of benchmarks/fms.py.",
            md_table(
                ["cell", "configs", "epochs", "best test acc in the table %", "table train s", "features s"], table_rows
            ),
            md_table(
                [
                    "cell",
                    "method",
                    "regret @25%",
                    "regret @50%",
                    "regret @100%",
                    "one-step τ (mean over iterations)",
                    "deepest trial (epochs)",
                    "seeds",
                    "wall s / search",
                ],
                rows,
            ),
            "Paired differences, per seed (regret: negative means fms better; τ: positive means fms forecasts better):",
            md_table(["cell", "difference", "figure", "mean ± 95% CI", "interval holds 0"], paired_rows(diff_rows)),
            "Target: fms lowest mean regret at 25%, 50% and 100% of the budget.",
            md_table(["cell", "budget", "lowest mean regret", "its regret", "fms"], best_rows),
            "Not run: " + ("; ".join(f"{m}: {why}" for m, why in not_run.items()) if not_run else "none") + ".",
            f"![regret vs epochs]({name}.png)\n\nCompute: the searches' own wall times add up to "
            f"{sum(j['wall_s'] for j in jobs):.0f} s and the tables' training and features to "
            f"{sum(t['train_wall_s'] + t['feature_wall_s'] for t in tables.values()):.0f} s (worker processes of one "
            f"torch thread each); {wall:.0f} s of this invocation "
            "(tables and finished jobs cached in the work folder). Code that produced the jobs (script, library "
            "digests): " + ", ".join(sorted({json.dumps(j.get("code"), sort_keys=True) for j in jobs})) + ".",
        ]
    )
    write_results(
        name,
        {
            "summary": summary,
            "settings": {
                "budget": budget,
                "seeds": seeds,
                "space": SPACE,
                "grid": GRID,
                "n_initial": N_INITIAL,
                "b0": SNAP,
                "delta": SNAP,
                "optuna_startup_trials": N_INITIAL,
            },
            "oracle_test_acc": oracles,
            "not_run": not_run,
            "runs": runs,
            "tables": {c: {k: v for k, v in tables[c].items() if k != "runs"} for c in cells},
            "this_invocation_s": wall,
        },
        md,
        command,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="cora/gcn,cora/sage,citeseer/gcn,citeseer/sage")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_fms"))
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--smoke", action="store_true", help="tiny tables and budget: checks the pipeline in minutes")
    ap.add_argument(
        "--from-cache",
        action="store_true",
        help="report the cached jobs of exactly these settings, "
        "whatever code version produced them (the report names the code digests); trains nothing",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    work = Path(args.work) / ("smoke" if args.smoke else "full")
    cells = args.cells.split(",")
    methods = args.methods.split(",")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; expected {METHODS}")
    not_run = {}
    if "ifbo" in methods and (why := ifbo_available()):
        not_run["ifbo"] = why
    tables = {}
    cache = JobCache(work, __file__)
    for c in cells:
        print(f"table {c} ...", flush=True)
        if args.from_cache:
            tables[c] = from_cache(cache, table_settings(c, args.epochs, args.smoke))
        else:
            tables[c] = build_table(c, work, args.data_dir, args.epochs, args.smoke)
        print(f"  {tables[c]['configs']} configs, {tables[c]['train_wall_s']:.0f} s", flush=True)
    todo = [
        (job_settings(c, m, s, args.budget, args.epochs, args.smoke), str(work))
        for c in cells
        for m in methods
        if m not in not_run
        for s in range(args.seeds)
    ]
    if args.from_cache:
        jobs = [from_cache(cache, settings) for settings, _ in todo]
    else:
        jobs = run_jobs(
            job, todo, args.jobs, 1, lambda item, r: f"{r['cell']} {r['method']} seed {r['seed']}: {r['wall_s']:.1f} s"
        )
    cmd = "python benchmarks/fms.py " + " ".join(a for a in sys.argv[1:])
    report(
        "fms_smoke" if args.smoke else "fms",
        cells,
        tables,
        jobs,
        args.budget,
        args.seeds,
        not_run,
        time.perf_counter() - t0,
        cmd.strip(),
    )


if __name__ == "__main__":
    main()
