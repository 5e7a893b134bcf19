"""What the FMS sweeper reads from the zoo and writes next to the search: a trial's observation from its zoo
record, the search state file, ``optimization_results.yaml`` and the incumbent/regret plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gnnzoo.search.features import Featurizer
from gnnzoo.search.loop import Result, best_observation
from gnnzoo.utils.io import atomic_write_json
from gnnzoo.zoo.store import Zoo, ZooError

SEARCHES = ".searches"  # under the zoo folder (dot folders are not zoo entries)


def observe(zoo: Zoo, run_id: str, monitor: str, featurizer: Featurizer | None) -> Result:
    """A resumable run's observation: its curve of ``monitor``, best value, test metric at it, the features of
    its last-epoch checkpoint (the weights it has trained to, never later ones)."""
    e = zoo.get(run_id)
    if e is None or e.status != "completed":
        err = (e.record.get("error") if e is not None else None) or f"no completed zoo entry {run_id}"
        return Result(ok=False, run_id=run_id, error=str(err)[:500])
    rec = e.record
    epochs = int(rec.get("epochs_trained") or 0)
    if not epochs:
        return Result(ok=False, run_id=run_id, error=f"zoo entry {run_id} is not a resumable run (zoo.resumable)")
    curve = [float(v) for v in (rec.get("curves") or {}).get(monitor, [])][:epochs]
    metrics = rec.get("metrics") or {}
    weights = None
    if featurizer is not None:
        try:
            weights = featurizer(e.snapshot(epochs), rec["backbone"])
        except ZooError as err:
            return Result(ok=False, run_id=run_id, error=f"last checkpoint unreadable: {err}")
    return Result(
        ok=True,
        epochs=epochs,
        curve=curve,
        value=float(rec["best_val"]),
        test=float(metrics.get("test/acc", math.nan)),
        weights=weights,
        stopped=bool(rec.get("stopped_early")),
        run_id=run_id,
    )


def load_state(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ZooError(f"the search state {path} is unreadable ({e}); delete it to start the search afresh") from e


def save_state(path: Path, state: dict) -> None:
    atomic_write_json(path, state)


def mean_tau(state: dict, key: str = "tau") -> float | None:
    """The mean over iterations of each iteration's one-step forecast τ (iterations where it is defined); ``key``
    names another per-iteration τ of the history (``tau_all_weights``, ``tau_all_plain``: the guard's two models)."""
    taus = [h[key] for h in state["history"] if h.get(key) is not None and h[key] == h[key]]
    return sum(taus) / len(taus) if taus else None


def summary(state: dict) -> dict[str, Any]:
    """The content of ``optimization_results.yaml``."""
    s = state["settings"]
    best = best_observation(state)
    out = {
        "name": "fms",
        "surrogate": s["surrogate"],
        "search_id": state.get("search_id"),
        "budget_epochs": s["budget"],
        "spent_epochs": state["spent"],
        "iterations": state["iteration"],
        "trials": len(state["trials"]),  # configurations started
        "continuations": sum(max(0, len(t["obs"]) - 1) for t in state["trials"].values()),
        "deepest_trial_epochs": max((t["epochs"] for t in state["trials"].values()), default=0),
        "failed_trials": sum(t["status"] == "failed" for t in state["trials"].values()),
        "surrogate_fallbacks": len(state.get("fallbacks", [])),
        "kendall_tau_one_step": mean_tau(state),
        "weight_features": state.get("weight_features"),
        "steps_forecast_with_weights": sum(h.get("model") == "weights" for h in state["history"]),
    }
    if best is not None:
        out.update(
            best_params=best["point"],
            best_value=best["value"],
            best_test=best["test"],
            best_epochs=best["epochs"],
            best_run_id=best["run_id"],
        )
    return out


def plot(state: dict, path: Path, regret_of_test: float | None = None) -> None:
    """Incumbent value (and its test metric) against epochs spent; with ``regret_of_test`` (the best test metric
    known, e.g. from a full table), regret instead."""
    from gnnzoo.utils.plots import png

    hist = state["history"]
    xs = [h["spent"] for h in hist if h.get("incumbent_value") is not None]
    val = [h["incumbent_value"] for h in hist if h.get("incumbent_value") is not None]
    test = [h["incumbent_test"] for h in hist if h.get("incumbent_value") is not None]
    with png(path, "search plot") as ax:
        if regret_of_test is not None:
            ax.step(xs, [regret_of_test - t for t in test], where="post", label="regret (test)")
            ax.set_ylabel("regret")
        else:
            ax.step(xs, val, where="post", label="incumbent (val)")
            ax.step(xs, test, where="post", label="its test", alpha=0.7)
            ax.set_ylabel("monitored metric")
        ax.set_xlabel("epochs spent")
        ax.set_title(
            f"FMS search ({state['settings']['surrogate']}), {state['spent']}/{state['settings']['budget']} epochs"
        )
        ax.legend()
