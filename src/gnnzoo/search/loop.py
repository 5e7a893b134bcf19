"""The FMS multi-fidelity loop, independent of how trials are trained (the Hydra sweeper trains them through
the launcher into the zoo; the tabular benchmark replays recorded runs).

1. ``n_initial`` random candidates are trained for ``b0`` epochs.
2. Each iteration fits the surrogate on every observation so far and scores every candidate one step ahead:
   a started trial at ``epochs + Δ`` (from its curve and its checkpoint at ``epochs``), an unstarted one at
   ``b0`` (no curve, no weights: it has paid for none), by expected improvement over the incumbent at that
   fidelity (the best value observed at that budget, else the best at a lower one: DyHPO's rule).
3. The best ``batch_size`` candidates are continued (or started) and observed; repeat until the budget (total
   epochs) is spent. The budget is never exceeded: a step costs at most what is left.

A training point is (hyperparameters, target budget b_k, the curve up to b_{k-1}, the checkpoint at b_{k-1}) ->
the best monitored value up to b_k: exactly what the surrogate sees when it forecasts b_{k-1} -> b_k, so a label
is never paired with weights or a curve from after the decision (the reference code's look-ahead and mismatched
history, see the method sheet). ``surrogate="random"`` trains random candidates to ``max_epochs`` each (the floor).

The whole state is a JSON-able dict, saved (``save(state)``) before every launch and after every observation,
so a killed search resumes: pending launches are launched again (the zoo skips what finished) and finished
trials are never redone.

Forecast quality is logged per iteration: ``tau`` is the Kendall τ of *that* iteration's one-step forecasts
against their outcomes, never pooled over iterations and fidelities. With a ``truth`` oracle (a tabular replay
knows every outcome) it ranks every candidate's forecast; without one (a real sweep) it ranks the forecasts of
the launched batch (nan below three launches). ``tau_pooled`` keeps the pool over every forecast so far.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import torch

from gnnzoo.search.space import SearchSpace, point_key
from gnnzoo.search.state import (  # noqa: F401  (Result, best_observation, new_state: the loop's public names)
    Launch,
    Result,
    Runner,
    Settings,
    Truth,
    best_observation,
    new_state,
    sign_of,
)
from gnnzoo.search.surrogate import DeepKernelSurrogate, Inputs, WeightBasis, expected_improvement, kendall_tau


def _inputs(
    space: SearchSpace,
    s: Settings,
    rows: list[tuple[dict, int, list, list | None]],
    d_w: int,
    basis: WeightBasis | None = None,
) -> Inputs:
    """rows: (point, target budget, curve before it (signed), weights at the curve's end or None); weights are
    projected onto ``basis`` when there is one."""
    n, L = len(rows), s.max_epochs
    curve, mask = torch.zeros(n, L), torch.zeros(n, L)
    w, has = torch.zeros(n, d_w), torch.zeros(n)
    raw = []  # the rows' weight features, in row order where has == 1
    for i, (_, _, c, wt) in enumerate(rows):
        c = c[:L]
        if c:
            curve[i, : len(c)] = torch.tensor(c, dtype=torch.float32)
            mask[i, : len(c)] = 1
        if wt is not None and d_w:
            raw.append(wt)
            has[i] = 1
    if raw:
        raw_w = torch.tensor(raw, dtype=torch.float64)
        w[has > 0] = basis.project(raw_w) if basis is not None else raw_w.float()
    hp = torch.tensor([space.encode(p) for p, *_ in rows], dtype=torch.float32).view(n, -1)
    b = torch.tensor([t / s.max_epochs for _, t, *_ in rows], dtype=torch.float32)
    return Inputs(hp, b, curve, mask, w, has)


class Search:
    def __init__(
        self,
        space: SearchSpace,
        settings: Settings,
        runner: Runner,
        state: dict | None = None,
        save: Callable[[dict], None] | None = None,
        log: Callable[[str], None] | None = None,
        use_weights: bool | None = None,
        truth: Truth | None = None,
        weight_basis: WeightBasis | None = None,
    ):
        settings.check()
        self.space, self.s, self.runner, self.truth = space, settings, runner, truth
        self.state = state if state is not None else new_state(space, settings)
        self.state.setdefault("guard", {"n": 0, "sse_weights": 0.0, "sse_plain": 0.0})
        self.save = save or (lambda st: None)
        self.log = log or (lambda msg: None)
        self.rng = np.random.default_rng(settings.seed + 1 + self.state["iteration"])
        self._use_weights = settings.surrogate == "fms" if use_weights is None else use_weights
        self.basis = weight_basis if self._use_weights and settings.weights_k > 0 else None
        if self._use_weights:
            if settings.weights_k == 0:
                self.state["weight_features"] = "raw (weights_k=0)"
            elif self.basis is None:  # nothing to reduce the features with: no weights rather than raw ones
                self._use_weights = False
                self.state["weight_features"] = "none (no reference checkpoints to fit the weight basis on)"
            else:
                self.state["weight_features"] = (
                    f"{self.basis.k} principal directions of {self.basis.n_reference} reference checkpoints"
                )
        self.d_w = 0
        self.surrogate = None
        self.plain = None  # the same surrogate without weights (the guard's comparison)
        if settings.surrogate != "random":
            import importlib.util

            if importlib.util.find_spec("gpytorch") is None:  # an error here, not a fallback at every step
                from gnnzoo.utils.errors import ConfigError

                raise ConfigError(f"hydra.sweeper.surrogate={settings.surrogate} needs gpytorch: pip install gpytorch")
        self.t0 = time.perf_counter()

    # ------------------------------------------------------------------ bookkeeping
    @property
    def remaining(self) -> int:
        return self.s.budget - self.state["spent"]

    def _trial(self, point: dict) -> tuple[str, dict]:
        tid = point_key(point)
        t = self.state["trials"].setdefault(
            tid, {"point": point, "epochs": 0, "status": "new", "obs": [], "curve": [], "run_id": None}
        )
        return tid, t

    def incumbent(self) -> dict | None:
        return best_observation(self.state)

    def _run(self, launches: list[Launch], pred: list[float] | None = None, info: dict | None = None) -> None:
        """Register the launches' trials, save the state with them pending, train them, observe the results."""
        for ln in launches:
            self._trial(ln.point)
        cost = sum(ln.target - ln.start for ln in launches)
        if cost > self.remaining:
            raise AssertionError(f"a step of {cost} epochs would exceed the budget ({self.remaining} left)")
        self.state["pending"] = [ln.__dict__ for ln in launches]
        self.save(self.state)
        results = self.runner(launches)
        self._observe(launches, results, pred, info)

    def _observe(self, launches: Sequence[Launch], results: Sequence[Result], pred, info) -> None:
        sign = sign_of(self.s)
        batch: list[list[float]] = []  # this iteration's (forecast, outcome) pairs
        for idx, (ln, res) in enumerate(zip(launches, results)):
            trial = self.state["trials"][ln.tid]
            if not res.ok:
                trial["status"] = "failed"
                trial["error"] = res.error
                self.state["spent"] += ln.target - ln.start  # a failed job may have used all it was given
                self.log(f"trial {ln.tid} failed: {res.error}")
                continue
            self.state["spent"] += max(0, res.epochs - ln.start)
            trial.update(
                epochs=res.epochs,
                curve=list(res.curve[: res.epochs]),
                run_id=res.run_id,
                status="stopped" if res.stopped or res.epochs >= self.s.max_epochs else "running",
            )
            trial["obs"].append(
                {
                    "epochs": res.epochs,
                    "value": float(res.value),
                    "test": float(res.test),
                    "prev_epochs": ln.start,
                    "weights": res.weights,
                }
            )
            if pred is not None and pred[idx] == pred[idx]:
                batch.append([pred[idx], sign * float(res.value)])
        self.state["tau_pairs"] += batch
        pairs = self.state["tau_pairs"]
        inc = self.incumbent()
        info = dict(info or {})
        self._score_guard(launches, results, info.pop("guard_forecasts", None))
        tau = info.pop("tau_all", None)  # every candidate's forecast against the oracle's outcome
        if tau is None:
            tau = kendall_tau([p for p, _ in batch], [v for _, v in batch])
        rec = {
            "iteration": self.state["iteration"],
            "spent": self.state["spent"],
            "wall_s": time.perf_counter() - self.t0,
            "launched": [[ln.tid, ln.start, ln.target] for ln in launches],
            "incumbent_value": inc["value"] if inc else None,
            "incumbent_test": inc["test"] if inc else None,
            "tau": tau,
            "tau_pooled": kendall_tau([p for p, _ in pairs], [v for _, v in pairs]),
            **info,
        }
        self.state["history"].append(rec)
        self.state["iteration"] += 1
        self.state["pending"] = []
        self.save(self.state)

    def _score_guard(self, launches, results, forecasts: dict | None) -> None:
        """Add each launched trial's squared forecast error, with and without weights, to the guard's sums (both
        forecasts were made before the outcome was seen)."""
        if not forecasts or len(forecasts) < 2:
            return
        g, sign = self.state["guard"], sign_of(self.s)
        for idx, res in enumerate(results):
            if res.ok and res.value == res.value:
                y = sign * float(res.value)
                g["sse_weights"] += (forecasts["weights"][idx] - y) ** 2
                g["sse_plain"] += (forecasts["plain"][idx] - y) ** 2
                g["n"] += 1

    # ------------------------------------------------------------------ training data and scoring
    def _weights_dim(self) -> int:
        for t in self.state["trials"].values():
            for o in t["obs"]:
                if o.get("weights") is not None:
                    return len(o["weights"])
        return 0

    def _training_rows(self) -> tuple[list, list]:
        sign, rows, ys = sign_of(self.s), [], []
        for t in self.state["trials"].values():
            prev_w = None
            for o in t["obs"]:
                prev = o["prev_epochs"]
                curve = [sign * v for v in t["curve"][:prev]]
                rows.append((t["point"], o["epochs"], curve, prev_w if prev else None))
                ys.append(sign * o["value"])
                prev_w = o.get("weights")
        return rows, ys

    def _candidate_rows(self) -> tuple[list[Launch], list]:
        sign, launches, rows = sign_of(self.s), [], []
        left = self.remaining
        for p in self.state["candidates"]:
            tid, t = point_key(p), self.state["trials"].get(point_key(p))
            if t is None:
                if self.s.b0 <= left:
                    launches.append(Launch(tid, p, 0, self.s.b0))
                    rows.append((p, self.s.b0, [], None))
            elif t["status"] == "running" and t["epochs"] < self.s.max_epochs:
                target = min(t["epochs"] + self.s.delta, self.s.max_epochs, t["epochs"] + left)
                if target > t["epochs"]:
                    w = t["obs"][-1].get("weights") if t["obs"] else None
                    launches.append(Launch(tid, t["point"], t["epochs"], target))
                    rows.append((t["point"], target, [sign * v for v in t["curve"]], w))
        return launches, rows

    def _incumbent_at(self, budgets: list[int]) -> torch.Tensor:
        sign = sign_of(self.s)
        by_budget: dict[int, float] = {}
        for t in self.state["trials"].values():
            for o in t["obs"]:
                v = sign * o["value"]
                by_budget[o["epochs"]] = max(by_budget.get(o["epochs"], -math.inf), v)
        if self.s.incumbent == "global":
            return torch.full((len(budgets),), max(by_budget.values(), default=0.0), dtype=torch.float64)
        out = []
        for b in budgets:
            if b in by_budget:
                out.append(by_budget[b])
            else:
                lower = [v for bb, v in by_budget.items() if bb < b]
                out.append(max(lower) if lower else max(by_budget.values(), default=0.0))
        return torch.tensor(out, dtype=torch.float64)

    def _new_surrogate(self, d_w: int) -> DeepKernelSurrogate:
        return DeepKernelSurrogate(
            self.space.width,
            self.s.max_epochs,
            d_w,
            use_curve=True,
            use_weights=d_w > 0,
            width=self.s.width,
            lr=self.s.lr,
            fit_steps_initial=self.s.fit_steps_initial,
            refit_steps=self.s.refit_steps,
            seed=self.s.seed,
        )

    @property
    def guarded(self) -> bool:
        return self._use_weights and self.s.guard

    def _fit_models(self) -> tuple[dict, str | None, float]:
        """Fit the surrogate (and, under the guard, the one without weights) on every observation so far:
        ``({name: (model, d_w)} of the fits that worked, the last error, seconds)``."""
        if self.surrogate is None:
            if self._use_weights:
                self.d_w = self.basis.k if self.basis is not None else self._weights_dim()
            self.surrogate = self._new_surrogate(self.d_w if self._use_weights else 0)
        if self.guarded and self.plain is None:
            self.plain = self._new_surrogate(0)
        t0 = time.perf_counter()
        trows, ys = self._training_rows()
        y = torch.tensor(ys)
        pairs = [("weights" if self._use_weights else "plain", self.surrogate, self.d_w if self._use_weights else 0)]
        if self.guarded:
            pairs.append(("plain", self.plain, 0))
        models, error = {}, None
        for name, model, d_w in pairs:
            err = model.fit(_inputs(self.space, self.s, trows, d_w, self.basis if d_w else None), y)
            if err is None:
                models[name] = (model, d_w)
            else:
                error = err
        return models, error, time.perf_counter() - t0

    def _active(self, models: dict) -> str:
        """Which fitted model forecasts: the weights only while they have earned it (see ``Settings.guard``)."""
        if not self.guarded:
            return next(iter(models))
        g = self.state["guard"]
        earned = g["n"] >= self.s.guard_warmup and g["sse_weights"] <= g["sse_plain"]
        if "weights" in models and (earned or "plain" not in models):
            return "weights"
        return "plain"

    def _pick(self) -> tuple[list[Launch], list[float] | None, dict]:
        launches, rows = self._candidate_rows()
        if not launches:
            return [], None, {}
        models, error, fit_s = self._fit_models()
        if not models:
            self.state["fallbacks"].append({"iteration": self.state["iteration"], "error": error})
            self.log(f"surrogate fit failed ({error}); this step picks at random")
            chosen = self._affordable(launches, self.rng.permutation(len(launches)).tolist())
            return [launches[i] for i in chosen], None, {"fallback": error, "fit_s": fit_s}
        preds = {
            name: model.predict(_inputs(self.space, self.s, rows, d_w, self.basis if d_w else None))
            for name, (model, d_w) in models.items()
        }
        active = self._active(models)
        mean, std = preds[active]
        ei = expected_improvement(mean, std, self._incumbent_at([ln.target for ln in launches]))
        chosen = self._affordable(launches, torch.argsort(ei, descending=True).tolist())
        info = {"fit_s": fit_s, "ei": [float(ei[i]) for i in chosen], "model": active}
        if self.guarded:
            info["guard"] = dict(self.state["guard"])  # the sums this step's choice of model read
            info["guard_forecasts"] = {name: [float(p[0][i]) for i in chosen] for name, p in preds.items()}
        if self.truth is not None:
            sign = sign_of(self.s)
            outcomes = [sign * float(v) for v in self.truth(launches)]
            info["tau_all"] = kendall_tau(mean.tolist(), outcomes)
            for name, p in preds.items():
                info[f"tau_all_{name}"] = kendall_tau(p[0].tolist(), outcomes)
        return [launches[i] for i in chosen], [float(mean[i]) for i in chosen], info

    def _affordable(self, launches: list[Launch], order: list[int]) -> list[int]:
        """The first ``batch_size`` launches in ``order`` whose costs together fit in what is left of the budget."""
        chosen, spend = [], 0
        for i in order:
            c = launches[i].target - launches[i].start
            if spend + c <= self.remaining:
                chosen.append(i)
                spend += c
            if len(chosen) == self.s.batch_size:
                break
        return chosen

    def _random_pick(self) -> list[Launch]:
        fresh = [p for p in self.state["candidates"] if point_key(p) not in self.state["trials"]]
        out, left = [], self.remaining
        for i in self.rng.permutation(len(fresh))[: self.s.batch_size]:
            target = min(self.s.max_epochs, left)
            if target < 1:
                break
            out.append(Launch(point_key(fresh[i]), fresh[i], 0, target))
            left -= target
        return out

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        st = self.state
        if st["pending"]:  # killed while these were training: launch them again (finished ones are skipped)
            launches = [Launch(**ln) for ln in st["pending"]]
            self.log(f"resuming: {len(launches)} pending launch(es) of iteration {st['iteration']}")
            self._run(launches)
        if self.s.surrogate != "random" and not any(t["obs"] for t in st["trials"].values()) and not st["done"]:
            n = min(self.s.n_initial, len(st["candidates"]), self.remaining // self.s.b0)
            init = [st["candidates"][i] for i in self.rng.permutation(len(st["candidates"]))[:n]]
            launches = [Launch(point_key(p), p, 0, self.s.b0) for p in init]
            self.log(f"initial design: {len(launches)} random configs x {self.s.b0} epochs")
            self._run(launches)
        while self.remaining > 0 and not st["done"]:
            if self.s.surrogate == "random":
                launches, pred, info = self._random_pick(), None, {}
            else:
                launches, pred, info = self._pick()
            if not launches:
                break
            self._run(launches, pred, info)
            inc = self.incumbent()
            self.log(
                f"iteration {st['iteration']}: spent {st['spent']}/{self.s.budget} epochs; incumbent "
                f"{inc['value'] if inc else float('nan'):.4f} ({inc['epochs'] if inc else 0} epochs)"
            )
        st["done"] = True
        self.save(st)
        return st
