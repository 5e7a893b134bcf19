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

Weight features (issue 32). ``fms`` reads each checkpoint's stat features projected onto ``k`` = 4 principal
directions fitted on every snapshot of a *reference* table (another dataset, same backbone: ``REFERENCE``), and
forecasts under the guard (``gnnzoo.search.loop.Settings.guard``): every step fits the surrogate with and without
the weights on the same observations and forecasts with the weights only once their one-step forecasts of the
observed outcomes have had the lower squared error. ``fms_raw`` is the surrogate before issue 32 (all ~140 raw
features, no guard). Each guarded search also logs the per-iteration τ of both surrogates on the same observations.
``fms_learned`` is ``fms`` with learned features: the embedding of an ng_gnn encoder trained on the tables of the
*other* datasets of the same backbone (benchmarks/fms_learned.py; GCN cells, as the three datasets' tables exist
for GCN only), so the searched dataset is one the encoder never saw.

Development round (declared before it ran; seeds 100-102, cora/gcn and citeseer/gcn; never the benchmark's seeds):
  1. k: ``fms_k4``, ``fms_k8``, ``fms_k16`` at budget 1000; the default k is the one with the highest mean over the
     six searches of (τ with weights - τ without, per-iteration means); ties within 0.01 go to the smaller k.
     Outcome (benchmarks/results/fms_dev_k.md): k4 -0.016, k8 -0.043, k16 -0.043, so k = 4. The weights lowered τ
     on average at every k; the guard kept them out of most steps.
  2. depth: ``dyhpo`` vs ``dyhpo_global`` (expected improvement over the best value at any budget) at budget 600
     (a small budget, where the README example stayed shallow); ``global`` becomes the default if its mean
     *validation* regret at 100% (the best val accuracy in the table - the incumbent's val accuracy) over the six
     searches is lower and its incumbents are trained deeper on average; otherwise DyHPO's per-budget incumbent
     stays. Both rules read validation accuracy only.
     Outcome (benchmarks/results/fms_dev_depth600.md): val regret 1.07 (budget) vs 1.23 (global), incumbents at 45
     vs 60 epochs: the rule keeps DyHPO's per-budget incumbent. In the replay both reach 200 epochs (the deepest
     trial) even at budget 600.

Seeds 0..S-1 for every method (the Search's ``seed``, the Optuna samplers' ``seed``). Jobs run through the harness
(benchmarks/_common.py) in ``--jobs`` processes with one torch thread each; tables and finished jobs are cached in
``--work`` under a hash of the script, the library and every setting (a rerun resumes; other settings never reuse
a cached job).

    python benchmarks/fms.py [--cells cora/gcn,citeseer/gcn,pubmed/gcn] [--seeds 10] [--budget 2000] [--stored-tables]
    python benchmarks/fms.py --stored-tables --methods fms_learned   # the learned-feature searches (encoders first)
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
    write_results,
)  # noqa: E402
from fms_learned import learned_features, learned_settings, stored_learned_features, with_features  # noqa: E402
from fms_tables import (  # noqa: E402
    GRID,
    SMOKE_GRID,
    SNAP,
    SPACE,
    Replay,
    build_table,
    oracle,
    table_key,
    table_settings,
)

METHODS = ("fms", "dyhpo", "random", "tpe", "hyperband", "ifbo")
# the table whose snapshots fit a cell's weight basis: another dataset, same backbone
REFERENCE = {
    "cora/gcn": "citeseer/gcn",
    "citeseer/gcn": "cora/gcn",
    "pubmed/gcn": "cora/gcn",
    "cora/sage": "citeseer/sage",
    "citeseer/sage": "cora/sage",
}
FRACTIONS = (0.25, 0.5, 1.0)
N_INITIAL = 10  # the loop's random initial design, and the Optuna samplers' startup trials


# ------------------------------------------------------------------------------------------------ methods
def search_settings(method: str) -> dict:
    """The loop's settings of a search method ``<surrogate>[_<modifier>...]``: surrogate ``fms`` (weights in 4
    principal directions of the reference table's checkpoints, under the guard), ``dyhpo`` (no weights) or
    ``random``; modifiers ``k<N>`` (N directions), ``raw`` (every raw stat feature, no guard: the surrogate before
    issue 32), ``unguarded`` (no guard), ``global`` (expected improvement over the best value at any budget),
    ``learned`` (the features are a trained encoder's embedding, see ``fms_learned.py``; the loop is unchanged)."""
    base, *mods = method.split("_")
    if base not in ("fms", "dyhpo", "random"):
        raise SystemExit(f"unknown search method {method!r}")
    out: dict = {"surrogate": base}
    for m in mods:
        if m == "raw" and base == "fms":
            out.update(weights_k=0, guard=False)
        elif m == "unguarded" and base == "fms":
            out["guard"] = False
        elif m.startswith("k") and m[1:].isdigit() and base == "fms":
            out["weights_k"] = int(m[1:])
        elif m == "learned" and base == "fms":
            pass  # the features change (job_settings' "learned"), not the loop
        elif m == "global" and base != "random":
            out["incumbent"] = "global"
        else:
            raise SystemExit(f"unknown modifier {m!r} of search method {method!r} (see search_settings)")
    return out


def reference_basis(reference: dict | None, k: int):
    """The weight basis fitted on every snapshot of the reference table (another dataset: the zoo, not the search's
    own observations)."""
    import torch

    from gnnzoo.search.surrogate import WeightBasis

    if reference is None or k == 0:
        return None
    feats = [f for r in reference["runs"].values() for f in r["feats"].values()]
    return WeightBasis.fit(torch.tensor(feats), k)


def run_search(table: dict, method: str, seed: int, budget: int, space: dict, reference: dict | None = None):
    from gnnzoo.search.loop import Result, Search, Settings, best_observation
    from gnnzoo.search.results import mean_tau
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

    s = Settings(
        budget=budget,
        max_epochs=table["epochs"],
        n_initial=N_INITIAL,
        b0=SNAP,
        delta=SNAP,
        seed=seed,
        **search_settings(method),
    )
    basis = reference_basis(reference, s.weights_k) if s.surrogate == "fms" else None
    st = Search(SearchSpace(space), s, runner, truth=truth, weight_basis=basis).run()
    assert st["spent"] <= budget
    hist = st["history"]

    best = best_observation(st)
    return [(h["spent"], h["incumbent_value"], h["incumbent_test"]) for h in hist], {
        "fallbacks": len(st["fallbacks"]),
        "tau_last": hist[-1]["tau"] if hist else None,
        "tau_mean": mean_tau(st) if method != "random" else None,
        "tau_weights_mean": mean_tau(st, "tau_all_weights"),
        "tau_plain_mean": mean_tau(st, "tau_all_plain"),
        "weights_share": (sum(h.get("model") == "weights" for h in hist) / len(hist)) if hist else None,
        "weight_features": st.get("weight_features"),
        "taus": [h["tau"] for h in hist],
        "trials": len(st["trials"]),
        "continuations": sum(len(t["obs"]) - 1 for t in st["trials"].values() if t["obs"]),
        "deepest_epochs": max((t["epochs"] for t in st["trials"].values()), default=0),
        "incumbent_epochs": best["epochs"] if best else None,
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
        have = paid.get(table_key(point), 0)
        trials += have == 0
        if not hb:
            e = max(have, min(E, have + budget - spent))
            spent += e - have
            paid[table_key(point)] = e
            study.tell(trial, seen(point, e))
            continue
        e, v, pruned = 0, None, False
        while e < E and (spent < budget or e < have):
            step = min(SNAP, E - e) if e < have else min(SNAP, E - e, budget - spent)
            e += step
            spent += max(0, e - max(have, e - step))
            paid[table_key(point)] = max(have, e)
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
    out = {
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
    if method.split("_")[0] in ("fms", "dyhpo", "random"):
        out["search"] = search_settings(method)
    if method.startswith("fms"):
        out["reference"] = table_settings(REFERENCE[cell], epochs, smoke)
    if "learned" in method.split("_")[1:]:
        out["learned"] = learned_settings(cell, REFERENCE[cell], epochs, smoke)
    return out


def learned_for(settings: dict, work: Path, data_dir: str, stored: bool) -> dict:
    """The learned features of a cell (``learned_settings``); the tables it trains on and reads are built first."""
    tables = {}
    for t in settings["train_tables"] + settings["read_tables"]:
        if t["cell"] not in tables:
            tables[t["cell"]] = build_table(t["cell"], work, data_dir, t["epochs"], t["grid"] == SMOKE_GRID, stored)
    return learned_features(settings, tables, work, data_dir)


def job(args: tuple) -> dict:
    settings, work = args

    def search() -> dict:
        stored = settings.get("stored_tables", False)
        table = build_table(
            settings["cell"],
            Path(work),
            "",
            settings["table"]["epochs"],
            settings["table"]["grid"] == SMOKE_GRID,
            stored,
        )
        space = settings["table"]["space"]
        reference = None
        if "reference" in settings:
            ref = settings["reference"]
            reference = build_table(ref["cell"], Path(work), "", ref["epochs"], ref["grid"] == SMOKE_GRID, stored)
        if "learned" in settings:  # precomputed by main() (the encoder trains once per cell, not per job)
            learned = learned_for(settings["learned"], Path(work), "", stored)
            table = with_features(table, learned["feats"][settings["cell"]])
            reference = with_features(reference, learned["feats"][settings["reference"]["cell"]])
        t0 = time.perf_counter()
        if settings["method"].split("_")[0] in ("fms", "dyhpo", "random"):
            trace, extra = run_search(table, settings["method"], settings["seed"], settings["budget"], space, reference)
        else:
            trace, extra = run_optuna(table, settings["method"], settings["seed"], settings["budget"], space)
        return {
            "cell": settings["cell"],
            "method": settings["method"],
            "seed": settings["seed"],
            "budget": settings["budget"],
            "wall_s": time.perf_counter() - t0,
            "table_code": table["code"],
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


def val_regret_at(trace: list, best_val: float, spent: float) -> float:
    """The same in validation accuracy (what development choices read)."""
    inc = [v for s, v, _ in trace if s <= spent]
    return 100 * (best_val - inc[-1]) if inc else float("nan")


def plot(cells: list[str], methods: list[str], jobs: list[dict], oracles: dict, budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    xs = np.linspace(0, budget, 101)
    n = len(cells)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, cell in zip(axes[0], cells):
        for m in methods:
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


def _seed_values(jobs: list[dict], cell: str, method: str, fn) -> list[float]:
    js = sorted((j for j in jobs if j["cell"] == cell and j["method"] == method), key=lambda j: j["seed"])
    return [fn(j) for j in js]


def _target_rows(cell, methods, summary, jobs, best, budget, out: dict, head: str = "fms") -> list[list[str]]:
    """Issue 32's targets for one cell (``out`` gets the verdicts): fms τ >= dyhpo τ (paired interval not below 0);
    fms regret <= dyhpo and <= random at 25% and 50% (mean paired difference <= 0, so its interval is not above 0);
    fms the lowest mean regret at 100% of all methods. ``head``: the fms variant judged; the learned-feature
    variants are judged in rows of their own and left out of the others' ranking."""
    rows = []

    def tau(j):
        return j.get("tau_mean") if j.get("tau_mean") is not None else float("nan")

    if "dyhpo" in methods:
        d = paired(_seed_values(jobs, cell, head, tau), _seed_values(jobs, cell, "dyhpo", tau))
        out["tau_not_below_dyhpo"] = ok = d["mean"] + d["ci95"] >= 0
        rows.append([cell, f"τ: {head} − dyhpo, interval not below 0", f"{d['mean']:+.3f} ± {d['ci95']:.3f}", _met(ok)])
    for other in ("dyhpo", "random"):
        if other not in methods:
            continue
        for q in (0.25, 0.5):

            def reg(j, q=q):
                return regret_at(j["trace"], best, q * budget)

            d = paired(_seed_values(jobs, cell, head, reg), _seed_values(jobs, cell, other, reg))
            ok = d["mean"] <= 0
            out[f"regret_{int(q * 100)}_le_{other}"] = ok
            rows.append(
                [
                    cell,
                    f"regret @{int(q * 100)}%: {head} − {other} ≤ 0",
                    f"{d['mean']:+.2f} ± {d['ci95']:.2f}",
                    _met(ok),
                ]
            )
    k = "regret_100"
    rivals = [m for m in methods if m == head or "learned" not in m.split("_")]
    ranked = sorted(rivals, key=lambda m: (summary[cell][m][k] != summary[cell][m][k], summary[cell][m][k]))
    out["lowest_at_100"] = ranked[0] == head
    rows.append(
        [
            cell,
            f"{head}: lowest mean regret @100%",
            f"{ranked[0]} {summary[cell][ranked[0]][k]:.2f} ({head} {summary[cell][head][k]:.2f})",
            _met(ranked[0] == head),
        ]
    )
    return rows


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def learned_table(learned: dict) -> str:
    """The encoders behind the learned features: what each learned from, how well it ranks, what it cost."""
    rows = [
        [
            c,
            ", ".join(i["trained_on"]),
            i["encoder_run_id"],
            f"{i['encoder_val_tau']:.3f}",
            f"{i['encoder_test_tau']:.3f}",
            f"{i['encoder_epochs_run']} (best {i['encoder_best_epoch']})",
            i["embed_dim"],
            f"{i['encoder_train_wall_s']:.0f}",
            f"{i['embed_wall_s']:.0f}",
        ]
        for c, i in learned.items()
    ]
    return (
        "Learned features (`fms_learned`; benchmarks/fms_learned.py): per searched cell an ng_gnn encoder trained on "
        "the other datasets' tables (same backbone), its embedding of every snapshot in place of the stat features "
        "(then the same k = 4 directions of the reference table and the same guard as `fms`). τ here is the "
        "encoder's own Kendall τ of predicted vs true validation accuracy on held-out trajectories of its training "
        "tables.\n\n"
        + md_table(
            [
                "searched cell",
                "encoder trained on",
                "encoder run id",
                "val τ",
                "test τ",
                "epochs run",
                "embedding dims",
                "train s",
                "embed s",
            ],
            rows,
        )
    )


def _paired_rows(cell: str, a: str, b: str, per: dict, tau: bool) -> list[tuple[list[str], dict]]:
    """Paired (by seed) differences ``a − b`` of one cell: regret at each budget fraction, and τ when ``tau``."""
    rows = [([cell, f"{a} − {b}", f"regret @{int(q * 100)}%"], paired(per[a][q], per[b][q])) for q in FRACTIONS]
    if tau:
        rows.append(([cell, f"{a} − {b}", "τ (per-iteration mean)"], paired(per[a]["tau"], per[b]["tau"])))
    return rows


def report(name, cells, methods, tables, jobs, budget, seeds, not_run, wall, command, learned=None) -> None:
    oracles = {c: oracle(tables[c]) for c in cells}
    table_epochs = tables[cells[0]]["epochs"]
    summary, rows, diff_rows, runs = {}, [], [], []
    methods = [m for m in methods if m not in not_run]
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
            for key in ("tau_weights_mean", "tau_plain_mean"):
                per[m][key] = [j.get(key) if j.get(key) is not None else float("nan") for j in js]
            best_val = max(max(r["val"]) for r in tables[cell]["runs"].values())
            vr = [val_regret_at(j["trace"], best_val, budget) for j in js]
            cellrow["val_regret_100"] = mean_std(vr)[0] if vr else None
            for key in ("weights_share", "incumbent_epochs", "deepest_epochs", "wall_s"):
                vals = [j[key] for j in js if j.get(key) is not None]
                cellrow[key] = mean_std(vals)[0] if vals else None
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
                    "-" if cellrow["incumbent_epochs"] is None else f"{cellrow['incumbent_epochs']:.0f}",
                    "-" if cellrow["weights_share"] is None else f"{cellrow['weights_share']:.2f}",
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
                            "tau_weights_mean",
                            "tau_plain_mean",
                            "weights_share",
                            "weight_features",
                            "incumbent_epochs",
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
        head = "fms" if "fms" in methods else next((m for m in methods if m.startswith("fms")), None)
        for other in [m for m in methods if m != head] if head else []:
            diff_rows += _paired_rows(cell, head, other, per, summary[cell][other]["tau_mean"] is not None)
        for v in [m for m in methods if "learned" in m.split("_") and m != head]:  # learned features vs the rest
            for other in [o for o in ("dyhpo", "random") if o in methods]:
                diff_rows += _paired_rows(cell, v, other, per, summary[cell][other]["tau_mean"] is not None)
        for m in methods:  # the guard's two surrogates, fitted on the same observations every step
            pair = zip(per[m].get("tau_weights_mean", []), per[m].get("tau_plain_mean", []))
            if any(a == a and b == b for a, b in pair):  # guarded searches only (both surrogates fitted)
                diff_rows.append(
                    (
                        [cell, f"{m}: with weights − without", "τ, same observations"],
                        paired(per[m]["tau_weights_mean"], per[m]["tau_plain_mean"]),
                    )
                )
    target_rows, targets = [], {}
    if "fms" in methods:
        for cell in cells:
            targets[cell] = {}
            target_rows += _target_rows(cell, methods, summary, jobs, oracles[cell], budget, targets[cell])
        lowest = sum(t.get("lowest_at_100", False) for t in targets.values())
        target_rows.append(
            [
                "all",
                "lowest mean regret at 100% in at least half of the cells",
                f"{lowest} of {len(cells)}",
                "met" if 2 * lowest >= len(cells) else "missed",
            ]
        )
    for v in [m for m in methods if "learned" in m.split("_")]:
        for cell in cells:
            targets.setdefault(cell, {})[v] = {}
            target_rows += _target_rows(cell, methods, summary, jobs, oracles[cell], budget, targets[cell][v], v)
    plot_path = RESULTS / f"{name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(cells, methods, jobs, oracles, budget, plot_path)
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
            *([learned_table(learned)] if learned else []),
            md_table(
                [
                    "cell",
                    "method",
                    "regret @25%",
                    "regret @50%",
                    "regret @100%",
                    "one-step τ (mean over iterations)",
                    "deepest trial (epochs)",
                    "incumbent's epochs",
                    "steps forecast with weights",
                    "seeds",
                    "wall s / search",
                ],
                rows,
            ),
            "Paired differences, per seed (regret: negative means fms better; τ: positive means fms forecasts better):",
            md_table(["cell", "difference", "figure", "mean ± 95% CI", "interval holds 0"], paired_rows(diff_rows)),
            "Targets (issue 32), per cell:",
            md_table(["cell", "target", "measured", "verdict"], target_rows),
            "Not run: " + ("; ".join(f"{m}: {why}" for m, why in not_run.items()) if not_run else "none") + ".",
            f"![regret vs epochs]({name}.png)\n\nCompute: the searches' own wall times add up to "
            f"{sum(j['wall_s'] for j in jobs):.0f} s and the tables' training and features to "
            f"{sum(t['train_wall_s'] + t['feature_wall_s'] for t in tables.values()):.0f} s (worker processes of one "
            f"torch thread each); {wall:.0f} s of this invocation "
            "(tables and finished jobs cached in the work folder). Code that produced the jobs (script, library "
            "digests): "
            + ", ".join(sorted({json.dumps(j.get("code"), sort_keys=True) for j in jobs}))
            + "; code that trained the tables (the library less the search code): "
            + ", ".join(f"{c} {json.dumps(tables[c].get('code'), sort_keys=True)}" for c in cells)
            + ".",
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
            "learned_features": learned or {},
            "targets": targets,
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
    ap.add_argument("--cells", default="cora/gcn,citeseer/gcn,pubmed/gcn")
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
    ap.add_argument("--name", default=None, help="results name (default fms, or fms_smoke with --smoke)")
    ap.add_argument("--seed-offset", type=int, default=0, help="seeds offset..offset+S-1 (development seeds: 100)")
    ap.add_argument(
        "--stored-tables",
        action="store_true",
        help="use tables cached under the same settings by another library version (listed in the report)",
    )
    ap.add_argument("--tables-only", action="store_true", help="build (or check) the cells' tables, run no search")
    args = ap.parse_args()
    t0 = time.perf_counter()
    work = Path(args.work) / ("smoke" if args.smoke else "full")
    cells = args.cells.split(",")
    methods = args.methods.split(",")
    variants = [m for m in methods if m.split("_")[0] in ("fms", "dyhpo", "random")]
    bad = [m for m in methods if m not in METHODS and m not in variants]
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; expected {METHODS} or a variant (see search_settings)")
    for m in variants:
        search_settings(m)
    missing = [c for c in cells if c not in REFERENCE]
    if missing and any(m.startswith("fms") for m in methods):
        raise SystemExit(f"no reference table for {missing} (REFERENCE in benchmarks/fms.py)")
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
            tables[c] = build_table(c, work, args.data_dir, args.epochs, args.smoke, args.stored_tables)
        print(f"  {tables[c]['configs']} configs, {tables[c]['train_wall_s']:.0f} s", flush=True)
    if args.tables_only:
        return
    learned = {}  # the encoders of the learned-feature variants: trained once per cell, before any search
    for c in cells:
        if any("learned" in m.split("_") for m in methods):
            print(f"learned features {c} ...", flush=True)
            ls = learned_settings(c, REFERENCE[c], args.epochs, args.smoke)
            if args.from_cache:  # trains nothing: the encoder as cached under these settings, by any code version
                info = stored_learned_features(ls, work)
            else:
                info = learned_for(ls, work, args.data_dir, args.stored_tables)
            learned[c] = {k: v for k, v in info.items() if k != "feats"}
    todo = [
        (
            {**job_settings(c, m, s, args.budget, args.epochs, args.smoke), "stored_tables": args.stored_tables},
            str(work),
        )
        for c in cells
        for m in methods
        if m not in not_run
        for s in range(args.seed_offset, args.seed_offset + args.seeds)
    ]
    if args.from_cache:
        jobs = [from_cache(cache, settings) for settings, _ in todo]
    else:
        jobs = run_jobs(
            job, todo, args.jobs, 1, lambda item, r: f"{r['cell']} {r['method']} seed {r['seed']}: {r['wall_s']:.1f} s"
        )
    cmd = "python benchmarks/fms.py " + " ".join(a for a in sys.argv[1:])
    report(
        args.name or ("fms_smoke" if args.smoke else "fms"),
        cells,
        methods,
        tables,
        jobs,
        args.budget,
        args.seeds,
        not_run,
        time.perf_counter() - t0,
        cmd.strip(),
        learned,
    )


if __name__ == "__main__":
    main()
