"""What a search is made of, apart from its loop (:mod:`gnnzoo.search.loop`): its settings, a launch and what a
trained job gives back, the saved state (a JSON-able dict) and the incumbent read from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from gnnzoo.search.space import SearchSpace

SURROGATES = ("fms", "dyhpo", "random")


@dataclass
class Launch:
    tid: str
    point: dict
    start: int  # epochs already trained
    target: int  # epochs after this job


@dataclass
class Result:
    """What a trained job gives back: its curve (the monitored metric per epoch, from epoch 1), the best
    value and the test metric at it, the checkpoint features at its last epoch."""

    ok: bool
    epochs: int = 0
    curve: list = field(default_factory=list)
    value: float = math.nan
    test: float = math.nan
    weights: list | None = None
    stopped: bool = False  # stopped early (patience): cannot be continued
    run_id: str | None = None
    error: str | None = None


Runner = Callable[[Sequence[Launch]], Sequence[Result]]
# the true one-step outcome (the monitored value after the launch) of each launch, for replay benchmarks
Truth = Callable[[Sequence[Launch]], Sequence[float]]


@dataclass
class Settings:
    budget: int  # total epochs
    max_epochs: int
    n_initial: int = 10
    b0: int = 1
    delta: int = 1
    batch_size: int = 1
    surrogate: str = "fms"
    n_candidates: int = 512
    seed: int = 0
    direction: str = "maximize"
    width: int = 32
    lr: float = 1e-2
    fit_steps_initial: int = 300
    refit_steps: int = 50
    # weight features reduced to this many principal directions of reference checkpoints (0: the raw features)
    weights_k: int = 4
    # fit the surrogate with and without the weights every step and forecast with the weights only while their
    # one-step forecasts of the observed outcomes have had the lower squared error (after guard_warmup of them)
    guard: bool = True
    guard_warmup: int = 5
    # the value a candidate's expected improvement is measured against: "budget" (DyHPO: the best value observed
    # at the budget it would reach, else the best at a lower one) or "global" (the best value observed at any
    # budget: a new configuration must promise to beat the deepest results, so promising runs are continued)
    incumbent: str = "budget"

    def check(self) -> None:
        from gnnzoo.utils.errors import ConfigError

        if self.surrogate not in SURROGATES:
            raise ConfigError(f"hydra.sweeper.surrogate={self.surrogate!r}: expected one of {SURROGATES}")
        if self.incumbent not in ("budget", "global"):
            raise ConfigError(f"hydra.sweeper.incumbent={self.incumbent!r}: expected budget or global")
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"hydra.sweeper.direction={self.direction!r}: expected maximize or minimize")
        for k in ("budget", "max_epochs", "n_initial", "b0", "delta", "batch_size", "n_candidates"):
            if int(getattr(self, k)) < 1:
                raise ConfigError(f"hydra.sweeper.{k}={getattr(self, k)} must be >= 1")
        for k in ("weights_k", "guard_warmup"):
            if int(getattr(self, k)) < 0:
                raise ConfigError(f"hydra.sweeper.{k}={getattr(self, k)} must be >= 0")
        if self.b0 > self.max_epochs:
            raise ConfigError(f"hydra.sweeper.b0={self.b0} exceeds the largest budget max_epochs={self.max_epochs}")
        if self.surrogate != "random" and self.budget < self.b0 * self.n_initial:
            raise ConfigError(
                f"hydra.sweeper.budget={self.budget} cannot pay for the initial design of n_initial="
                f"{self.n_initial} configurations x b0={self.b0} epochs: the least budget that works is "
                f"{self.b0 * self.n_initial} (or lower n_initial or b0)"
            )


def new_state(space: SearchSpace, s: Settings, search_id: str = "") -> dict:
    rng = np.random.default_rng(s.seed)
    cands = space.candidates(s.n_candidates, rng)
    return {
        "version": 1,
        "search_id": search_id,
        "settings": s.__dict__.copy(),
        "candidates": cands,
        "trials": {},
        "spent": 0,
        "iteration": 0,
        "pending": [],
        "history": [],
        "tau_pairs": [],
        "fallbacks": [],
        "guard": {"n": 0, "sse_weights": 0.0, "sse_plain": 0.0},
        "done": False,
    }


def sign_of(s: Settings) -> float:
    return 1.0 if s.direction == "maximize" else -1.0


def best_observation(state: dict) -> dict | None:
    """The best observation by the monitored metric (any trial, any budget) and its test metric: the incumbent."""
    sign = 1.0 if state["settings"]["direction"] == "maximize" else -1.0
    best = None
    for tid, t in state["trials"].items():
        for o in t["obs"]:
            if best is None or sign * o["value"] > sign * best["value"]:
                best = {
                    "tid": tid,
                    "point": t["point"],
                    "epochs": o["epochs"],
                    "value": o["value"],
                    "test": o["test"],
                    "run_id": t.get("run_id"),
                }
    return best
