"""Forecasting Model Search: resumable runs, the search space, the surrogate, the loop and the Hydra sweeper."""

from __future__ import annotations

import pytest

from conftest import make_cfg
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.errors import ConfigError
from gnnzoo.zoo import Zoo

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=300", "backbone.hidden_channels=8", "monitor.patience=null"]


def test_a_continued_run_keeps_its_id_curve_and_optimizer_state(tmp_path):
    straight = train(make_cfg(SYN + ["trainer.max_epochs=12"], tmp_path / "a"))
    first = train(make_cfg(SYN + ["trainer.max_epochs=5", "zoo.resumable=true"], tmp_path / "b"))
    second = train(make_cfg(SYN + ["trainer.max_epochs=12", "zoo.resumable=true"], tmp_path / "b"))
    assert first["run_id"] == second["run_id"] != straight["run_id"]
    assert not second["skipped"] and second["epochs_trained"] == 12
    rec_a = Zoo(tmp_path / "a/zoo")[straight["run_id"]].record
    e = Zoo(tmp_path / "b/zoo")[second["run_id"]]
    rec_b = e.record
    assert rec_b["curves"]["epoch"] == list(range(12)) and rec_b["epochs_trained"] == 12
    # Adam's moments, the RNG (dropout) and the weights continue: 5 + 7 epochs give the curve of 12
    for key in ("train/loss", "val/loss", "val/acc"):
        assert rec_b["curves"][key] == pytest.approx(rec_a["curves"][key], abs=1e-5), key
    assert rec_b["best_val"] == pytest.approx(rec_a["best_val"])
    assert [s["epochs"] for s in rec_b["stages"]] == [5, 12]
    assert {s["epoch"] for s in rec_b["snapshots"]} == {5, 12}
    # asking for what is done skips; the last-epoch snapshot is the weights it would continue from
    again = train(make_cfg(SYN + ["trainer.max_epochs=12", "zoo.resumable=true"], tmp_path / "b"))
    assert again["skipped"] and again["epochs_trained"] == 12
    assert set(e.snapshot(12)) == set(e.state_dict())


def test_resumable_refuses_batched_seeds(tmp_path):
    from gnnzoo.tasks.backbone import run

    with pytest.raises(ConfigError, match="parallel_models"):
        run(make_cfg(SYN + ["zoo.resumable=true", "zoo.parallel_models=2"], tmp_path))


# ---------------------------------------------------------------------------------------------- search space
def test_search_space_parses_the_optuna_grammar_and_encodes_into_the_unit_cube():
    import numpy as np

    from gnnzoo.search.space import SearchSpace, split_arguments, to_overrides

    s = SearchSpace(
        {
            "optimizer.lr": "tag(log, interval(1e-4, 1e-1))",
            "backbone.dropout": "interval(0.0, 0.8)",
            "backbone.hidden_channels": "choice(16, 32, 64)",
            "optimizer": "adam,sgd",
            "backbone.num_layers": "range(2, 5)",
        }
    )
    kinds = {d.key: (d.kind, d.log) for d in s.dims}
    assert kinds["optimizer.lr"] == ("interval", True) and kinds["backbone.hidden_channels"] == ("choice", False)
    assert [d.values for d in s.dims if d.key == "backbone.num_layers"] == [[2, 3, 4]]
    assert s.width == 1 + 1 + 1 + 2 + 1  # the categorical optimizer is one-hot
    rng = np.random.default_rng(0)
    for p in s.candidates(50, rng):
        x = s.encode(p)
        assert all(0.0 <= v <= 1.0 for v in x)
        assert 1e-4 <= p["optimizer.lr"] <= 1e-1
    assert s.encode(
        {
            "optimizer.lr": 1e-4,
            "backbone.dropout": 0.8,
            "backbone.hidden_channels": 64,
            "optimizer": "sgd",
            "backbone.num_layers": 2,
        }
    ) == [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    mid = s.dims[0].encode(math_sqrt(1e-4 * 1e-1))[0]
    assert abs(mid - 0.5) < 1e-9  # log scale
    grid = SearchSpace({"a": "choice(1, 2, 3)", "b": "x,y"})
    assert len(grid.candidates(512, rng)) == 6  # a finite grid smaller than n: all of it
    assert to_overrides({"a": 1, "b": None, "c": True}) == ["a=1", "b=null", "c=true"]
    fixed, space = split_arguments(["dataset=cora", "optimizer.lr=tag(log, interval(1e-3, 1e-1))", "seed=0,1"])
    assert fixed == ["dataset=cora"] and set(space) == {"optimizer.lr", "seed"}


def math_sqrt(x):
    import math

    return math.sqrt(x)


@pytest.mark.parametrize(
    "params, match",
    [
        ({}, "empty"),
        ({"optimizer.lr": "tag(log, interval(0, 1))"}, "low > 0"),
        ({"optimizer.lr": "interval(1, 1)"}, "low < high"),
        ({"optimizer.lr": "tag(log, choice(0, 0.1))"}, "positive"),
        ({"optimizer.lr": "interval(0.1"}, "override grammar"),
    ],
)
def test_search_space_errors_are_clear(params, match):
    from gnnzoo.search.space import SearchSpace

    with pytest.raises(ConfigError, match=match):
        SearchSpace(params)


# ---------------------------------------------------------------------------------------------- the surrogate
def test_deep_kernel_gp_ranks_a_smooth_function_and_reports_a_failed_fit():
    import torch

    from gnnzoo.search.surrogate import DeepKernelSurrogate, Inputs, kendall_tau

    def inputs(x):
        n = len(x)
        return Inputs(
            x[:, None], torch.full((n,), 0.5), torch.zeros(n, 4), torch.zeros(n, 4), torch.zeros(n, 0), torch.zeros(n)
        )

    g = torch.Generator().manual_seed(0)
    x, xt = torch.rand(40, generator=g), torch.rand(40, generator=g)
    f = lambda v: torch.sin(3 * v) + 0.5 * v  # noqa: E731
    sur = DeepKernelSurrogate(1, 4, 0, use_weights=False, fit_steps_initial=150, seed=0)
    assert sur.fit(inputs(x), f(x)) is None
    mean, std = sur.predict(inputs(xt))
    assert kendall_tau(mean.tolist(), f(xt).tolist()) > 0.6
    assert (std > 0).all()
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)

    def boom(*a, **k):
        raise FloatingPointError("surrogate loss became nan")

    sur._train = boom
    err = sur.fit(inputs(x), f(x))
    assert err is not None and "FloatingPointError" in err and sur.model is None


# ---------------------------------------------------------------------------------------------- the loop
def _toy_runner(calls, fail=None):
    """Curves of a made-up learner; the 'weights' are [epochs trained, last value]: they tell which checkpoint
    the search was given."""
    import math

    from gnnzoo.search.loop import Result

    def curve(p, n):
        a = 0.9 - 0.2 * abs(math.log10(p["lr"]) + 2) - 50 * p["wd"]
        return [a * (1 - math.exp(-(e + 1) * p["lr"] * 20)) for e in range(n)]

    def run(launches):
        out = []
        for ln in launches:
            calls.append((ln.tid, ln.start, ln.target))
            if fail is not None and fail(ln.point):
                out.append(Result(ok=False, error="diverged"))
                continue
            c = curve(ln.point, ln.target)
            out.append(
                Result(
                    ok=True,
                    epochs=ln.target,
                    curve=c,
                    value=max(c),
                    test=max(c) - 0.01,
                    weights=[float(ln.target), c[-1]],
                )
            )
        return out

    return run


TOY_SPACE = {"lr": "tag(log, choice(0.001, 0.003, 0.01, 0.03, 0.1))", "wd": "choice(0, 0.0001, 0.001)"}


def _settings(**kw):
    from gnnzoo.search.loop import Settings

    base = dict(
        budget=60,
        max_epochs=12,
        n_initial=3,
        b0=2,
        delta=3,
        surrogate="fms",
        seed=0,
        fit_steps_initial=40,
        refit_steps=10,
    )
    return Settings(**{**base, **kw})


@pytest.mark.parametrize(
    "kw", [dict(surrogate="fms"), dict(surrogate="dyhpo", batch_size=3, budget=61), dict(surrogate="random", budget=30)]
)
def test_the_loop_spends_exactly_its_budget_and_never_more(kw):
    from gnnzoo.search.loop import Search
    from gnnzoo.search.space import SearchSpace

    calls = []
    st = Search(SearchSpace(TOY_SPACE), _settings(**kw), _toy_runner(calls)).run()
    paid = sum(t - s for _, s, t in calls)
    assert paid == st["spent"] <= kw.get("budget", 60)
    assert st["spent"] >= kw.get("budget", 60) - _settings().max_epochs  # it does not stop early either
    assert all(h["spent"] <= kw.get("budget", 60) for h in st["history"])
    for tid, s, t in calls:  # a continuation starts where the trial stopped
        assert t <= 12 and t > s
    by_trial = {}
    for tid, s, t in calls:
        assert s == by_trial.get(tid, 0)
        by_trial[tid] = t
    if kw["surrogate"] == "random":
        assert all(s == 0 and t == 12 for _, s, t in calls[:-1])


def test_a_candidate_is_only_scored_with_what_it_has_trained_to():
    """The rows the surrogate is fitted on and the rows it scores: every curve and every checkpoint is from
    before the budget the row forecasts (weights[0] is the checkpoint's epoch, in the toy runner)."""
    from gnnzoo.search.loop import Search
    from gnnzoo.search.space import SearchSpace

    checked = {"train": 0, "cand": 0}

    class Checked(Search):
        def _training_rows(self):
            rows, ys = super()._training_rows()
            for point, target, curve, w in rows:
                assert target > len(curve)
                assert (w is None) == (len(curve) == 0)
                assert w is None or w[0] == len(curve)
                checked["train"] += 1
            return rows, ys

        def _candidate_rows(self):
            launches, rows = super()._candidate_rows()
            for ln, (point, target, curve, w) in zip(launches, rows):
                trained = self.state["trials"].get(ln.tid, {}).get("epochs", 0)
                assert ln.start == trained == len(curve) and target == ln.target > trained
                assert w is None if trained == 0 else w[0] == trained
                checked["cand"] += 1
            return launches, rows

    calls = []
    Checked(SearchSpace(TOY_SPACE), _settings(), _toy_runner(calls)).run()
    assert checked["train"] > 20 and checked["cand"] > 100


def test_seeds_are_applied_and_failures_and_fallbacks_are_recorded(monkeypatch):
    from gnnzoo.search import surrogate as sur_mod
    from gnnzoo.search.loop import Search
    from gnnzoo.search.space import SearchSpace

    space = SearchSpace(TOY_SPACE)
    runs = [[], [], []]
    for calls, seed in zip(runs, (0, 0, 1)):
        Search(space, _settings(seed=seed, budget=30), _toy_runner(calls)).run()
    assert runs[0] == runs[1] and runs[0] != runs[2]

    calls = []
    st = Search(space, _settings(budget=40), _toy_runner(calls, fail=lambda p: p["lr"] == 0.1)).run()
    failed = [t for t in st["trials"].values() if t["status"] == "failed"]
    assert all(t["point"]["lr"] == 0.1 and t["error"] == "diverged" for t in failed)
    assert st["spent"] <= 40 and st["done"]
    assert not [c for c in calls if c[1] > 0 and "lr=0.1," in c[0]]  # a failed trial is not continued

    def boom(self, *a, **k):
        raise FloatingPointError("surrogate loss became nan")

    monkeypatch.setattr(sur_mod.DeepKernelSurrogate, "_train", boom)
    calls = []
    st = Search(space, _settings(budget=30), _toy_runner(calls)).run()
    assert st["fallbacks"] and "FloatingPointError" in st["fallbacks"][0]["error"]
    assert st["spent"] == 30 and all(h.get("fallback") for h in st["history"][1:])
    # the fallback's random batch still fits in what is left of the budget (3 continuations of 3 near the end)
    calls = []
    st = Search(space, _settings(budget=31, batch_size=3), _toy_runner(calls)).run()
    assert st["done"] and sum(t - s for _, s, t in calls) == st["spent"] <= 31 and len(st["fallbacks"]) > 3


def test_a_killed_loop_resumes_from_its_state_without_redoing_trials():
    import json

    from gnnzoo.search.loop import Search
    from gnnzoo.search.space import SearchSpace

    saved = {}

    class Killed(Exception):
        pass

    calls = []
    inner = _toy_runner(calls)

    def dying(launches):
        if len(calls) >= 8:
            raise Killed
        return inner(launches)

    space = SearchSpace(TOY_SPACE)
    with pytest.raises(Killed):
        Search(space, _settings(), dying, save=lambda st: saved.update(st=json.loads(json.dumps(st)))).run()
    st = saved["st"]
    assert st["pending"] and not st["done"]
    before = {tid: list(t["obs"]) for tid, t in st["trials"].items() if t["obs"]}
    n_before = len(calls)
    st = Search(space, _settings(), inner, state=st).run()
    resumed = calls[n_before:]
    assert resumed[: len(saved["st"]["pending"])] == [
        (p["tid"], p["start"], p["target"]) for p in saved["st"]["pending"]
    ]
    for tid, obs in before.items():  # finished observations are kept, never redone
        assert st["trials"][tid]["obs"][: len(obs)] == obs
    assert st["done"] and st["spent"] <= 60
    assert sum(t - s for _, s, t in calls) == st["spent"]


# ---------------------------------------------------------------------------------------------- the sweeper
FMS_ARGS = [
    "-m",
    "hydra/sweeper=fms",
    "hydra.sweeper.n_initial=2",
    "hydra.sweeper.b0=2",
    "hydra.sweeper.delta=2",
    "hydra.sweeper.max_epochs=6",
    "hydra.sweeper.fit_steps_initial=40",
    "hydra.sweeper.refit_steps=10",
    "optimizer=sgd",
    "optimizer.momentum=0",
    "optimizer.lr=choice(0.05, 0.2, 1e30)",
    "backbone.dropout=0.0,0.5",
    "dataset=synthetic",
    "dataset.loader.num_nodes=300",
    "backbone.hidden_channels=8",
    "monitor.patience=null",
    "logger=none",
    "trainer.enable_progress_bar=false",
]


def _search_state(tmp_path):
    import json

    (state_file,) = (tmp_path / "zoo" / ".searches").glob("*/state.json")
    return json.loads(state_file.read_text())


def _job_dirs(tmp_path):
    return [d for run in (tmp_path / "logs" / "train" / "multiruns").iterdir() for d in run.iterdir() if d.is_dir()]


def test_fms_sweeper_end_to_end_through_hydra(tmp_path):
    """A search on synthetic data: continued trials keep their run id and curve, the zoo's epochs add up to
    the budget spent (never more), a diverging trial is recorded and the search goes on, results are written,
    and the same command again does no new work."""
    import yaml

    from test_sweeps import run_train

    p = run_train(FMS_ARGS + ["hydra.sweeper.budget=20"], tmp_path)
    assert "FMS search done" in p.stderr + p.stdout, p.stderr[-3000:]
    # a fresh zoo has no checkpoints to fit the weight basis on: no weights, and the log says why
    assert "a 4-direction weight basis needs 16" in p.stderr + p.stdout
    st = _search_state(tmp_path)
    zoo = Zoo(tmp_path / "zoo")
    runs = {e.run_id: e.record for e in zoo.entries() if e.status == "completed"}
    failed = {tid for tid, t in st["trials"].items() if t["status"] == "failed"}
    lost = {tid: t - s for h in st["history"] for tid, s, t in h["launched"] if tid in failed}  # a failed job's grant
    assert sum(r["epochs_trained"] for r in runs.values()) + sum(lost.values()) == st["spent"] <= 20
    continued = [t for t in st["trials"].values() if len(t["obs"]) > 1]
    assert continued, "no trial was continued"
    for t in continued:
        rec = runs[t["run_id"]]
        assert [s["epochs"] for s in rec["stages"]] == [o["epochs"] for o in t["obs"]]
        assert rec["curves"]["epoch"] == list(range(t["epochs"]))
        assert rec["curves"]["val/acc"] == pytest.approx(t["curve"])
        assert rec["resume"]  # the optimizer and RNG state it continues from
    # lr=1e30 diverges when it is picked: recorded, never continued
    assert all(st["trials"][tid]["point"]["optimizer.lr"] == 1e30 and st["trials"][tid]["error"] for tid in failed)
    res = yaml.safe_load(next((tmp_path / "logs").rglob("optimization_results.yaml")).read_text())
    assert res["spent_epochs"] == st["spent"] and res["best_run_id"] in runs
    assert res["continuations"] == sum(max(0, len(t["obs"]) - 1) for t in st["trials"].values()) > 0
    assert res["trials"] == len(st["trials"]) and res["weight_features"].startswith("none")
    n_failed = sum(1 for h in st["history"] for tid, _, _ in h["launched"] if tid in failed)
    assert (
        f"sweep summary: {len(st['trials']) - len(failed)} new run(s) + {res['continuations']} continuation(s) done, "
        f"0 skipped, {n_failed} failed" in p.stdout
    )
    assert res["best_value"] == pytest.approx(max(r["best_val"] for r in runs.values()))
    assert next((tmp_path / "logs").rglob("search.png")).stat().st_size > 0
    # a later search in this zoo fits its weight basis on these runs' checkpoints, never on its own trials
    from gnnzoo.search.features import reference_basis, stat_features

    basis, why = reference_basis(zoo, stat_features(), 1, "gcn")
    n_ckpt = sum(1 + len(r.get("snapshots") or []) for r in runs.values())  # final weights + snapshots
    if n_ckpt >= 4:
        assert basis is not None and basis.k == 1 and basis.n_reference == n_ckpt, why
    else:
        assert basis is None and f"holds {n_ckpt} checkpoints" in why
    none, why = reference_basis(zoo, stat_features(), 1, "gcn", exclude=set(runs))
    assert none is None and "holds 0 checkpoints" in why
    assert reference_basis(zoo, stat_features(), 1, "sage")[0] is None  # another backbone's checkpoints: not read
    jobs = len(_job_dirs(tmp_path))
    again = run_train(FMS_ARGS + ["hydra.sweeper.budget=20"], tmp_path)
    assert "continuing from iteration" in again.stderr + again.stdout
    assert len(_job_dirs(tmp_path)) == jobs  # nothing relaunched
    assert _search_state(tmp_path)["history"] == st["history"]
    # a corrupt checkpoint is left out of a basis, and counted in what the search logs
    victim = zoo.get(next(iter(runs)))
    victim.weights_path().write_bytes(b"not safetensors")
    basis, why = reference_basis(zoo, stat_features(), 1, "gcn")
    assert "1 unreadable, left out" in why and victim.run_id in why


def test_a_killed_fms_search_continues_with_the_same_command(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    args = [a for a in FMS_ARGS if a != "optimizer.lr=choice(0.05, 0.2, 1e30)"] + [
        "optimizer.lr=choice(0.05, 0.1, 0.2)",
        "hydra.sweeper.budget=40",
    ]
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        *args,
        f"paths.zoo_dir={tmp_path}/zoo",
        f"paths.log_dir={tmp_path}/logs",
        f"paths.cache_dir={tmp_path}/cache",
        "extras.print_config=false",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    searches = tmp_path / "zoo" / ".searches"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        files = list(searches.glob("*/state.json")) if searches.is_dir() else []
        if files:
            try:
                if json.loads(files[0].read_text())["iteration"] >= 4:
                    break
            except (json.JSONDecodeError, OSError):
                pass
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = _search_state(tmp_path)
    assert not killed["done"] and killed["spent"] < 40
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    st = _search_state(tmp_path)
    assert st["done"] and st["spent"] <= 40
    assert st["history"][: len(killed["history"])] == killed["history"]  # finished iterations are kept
    second = sorted((tmp_path / "logs" / "train" / "multiruns").iterdir())[-1]
    launched_after = sum(len(h["launched"]) for h in st["history"][len(killed["history"]) :])
    assert len([d for d in second.iterdir() if d.is_dir()]) == launched_after  # only what was left
    zoo = Zoo(tmp_path / "zoo")
    assert sum(e.record["epochs_trained"] for e in zoo.entries() if e.status == "completed") == st["spent"]


def test_fms_sweeper_launches_its_batch_in_parallel_through_the_configured_launcher(tmp_path):
    """batch_size=2 with hydra/launcher=local (joblib): each launch after the first is two trials at once, each a
    joblib job; the budget still holds."""
    from test_sweeps import run_train

    args = [a for a in FMS_ARGS if a != "optimizer.lr=choice(0.05, 0.2, 1e30)"] + [
        "optimizer.lr=choice(0.05, 0.1, 0.2)",
        "hydra/launcher=local",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.batch_size=2",
        "hydra.sweeper.budget=16",
    ]
    p = run_train(args, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "is launching 2 jobs" in p.stderr + p.stdout  # joblib ran them, two at a time
    st = _search_state(tmp_path)
    assert st["spent"] <= 16 and st["done"]
    assert max(len(h["launched"]) for h in st["history"]) == 2
    assert not [t for t in st["trials"].values() if t["status"] == "failed"]


@pytest.mark.parametrize(
    "extra, match",
    [
        (["trainer.max_epochs=5"], "hydra.sweeper.max_epochs"),
        (["hydra.sweeper.direction=minimize"], "contradicts monitor.mode"),
        (["hydra.sweeper.surrogate=gp"], "expected one of"),
        # below b0 x n_initial the initial design cannot be paid for: refused, naming the least budget that works
        (["hydra.sweeper.n_initial=3", "hydra.sweeper.b0=5"], "the least budget that works is 15"),
        # a space key that is not in the config: refused before the first trial, with a suggestion
        (["optimizer.lrr=choice(0.1, 0.2)"], "'optimizer.lrr', which is not in the config (did you mean optimizer.lr"),
    ],
)
def test_fms_sweeper_refuses_what_it_cannot_honour(tmp_path, extra, match):
    from test_sweeps import run_train

    p = run_train(FMS_ARGS + ["hydra.sweeper.budget=10"] + extra, tmp_path)
    assert p.returncode != 0 and match in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "zoo").exists() or not [e for e in Zoo(tmp_path / "zoo").entries()]


def test_tau_is_per_iteration_and_read_from_the_truth_oracle():
    """With a truth oracle each iteration's τ ranks every candidate's one-step forecast against its true outcome
    (reversed outcomes give the opposite τ, iteration by iteration, while the decisions stay the same); without
    one, τ is that of the launched batch (undefined for one launch) and the pool is kept as ``tau_pooled``."""
    import math

    from gnnzoo.search.loop import Search
    from gnnzoo.search.space import SearchSpace

    def truth(sign):
        def oracle(launches):
            a = [0.9 - 0.2 * abs(math.log10(ln.point["lr"]) + 2) - 50 * ln.point["wd"] for ln in launches]
            return [sign * (x * (1 - math.exp(-ln.target * ln.point["lr"] * 20))) for x, ln in zip(a, launches)]

        return oracle

    runs = {}
    for name, oracle in (("up", truth(1.0)), ("down", truth(-1.0)), ("none", None)):
        calls = []
        st = Search(SearchSpace(TOY_SPACE), _settings(), _toy_runner(calls), truth=oracle).run()
        runs[name] = (st, calls)
    up, down, none = (runs[k][0]["history"] for k in ("up", "down", "none"))
    assert runs["up"][1] == runs["down"][1] == runs["none"][1]  # the oracle never changes a decision
    scored = [h for h in up if h.get("fit_s") is not None and h["tau"] == h["tau"]]
    assert scored, "no iteration was scored against the oracle"
    for a, b in zip(up, down):
        if a["tau"] == a["tau"]:
            assert a["tau"] == pytest.approx(-b["tau"])
    assert all(math.isnan(h["tau"]) for h in none)  # batch_size 1: one forecast per iteration, no τ
    assert any(h["tau_pooled"] == h["tau_pooled"] for h in none)


def test_weight_basis_is_fitted_on_the_reference_and_round_trips():
    import torch

    from gnnzoo.search.surrogate import WeightBasis

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(200, 3, generator=g) @ torch.randn(3, 12, generator=g) + 5 * torch.rand(12, generator=g)
    basis = WeightBasis.fit(ref, 3)
    z = basis.project(ref)
    assert z.shape == (200, 3)
    assert torch.allclose(z.double().std(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(WeightBasis.fit(ref, 3).project(ref[:5]), z[:5])  # deterministic (signs fixed)
    again = WeightBasis.from_dict(basis.to_dict())
    assert torch.allclose(again.project(ref[:7]), z[:7]) and again.n_reference == 200
    with pytest.raises(ValueError, match="needs more than 3 reference checkpoints"):
        WeightBasis.fit(ref[:3], 3)


def _noise_runner(calls):
    """The toy runner, with weight features that are pure noise (seeded by the trial and epoch)."""
    import random

    inner = _toy_runner(calls)

    def run(launches):
        out = inner(launches)
        for ln, res in zip(launches, out):
            if res.ok:
                rng = random.Random(f"{ln.tid}/{ln.target}")
                res.weights = [rng.gauss(0, 1) for _ in range(6)]
        return out

    return run


def _noise_basis():
    import torch

    from gnnzoo.search.surrogate import WeightBasis

    return WeightBasis.fit(torch.randn(64, 6, generator=torch.Generator().manual_seed(1)), 2)


def test_the_guard_forecasts_with_the_weights_only_after_they_have_forecast_better():
    """Every step fits the surrogate with and without the weights on the same observations; the weights forecast
    only after ``guard_warmup`` scored forecasts with a squared error no larger than the plain surrogate's. While
    the plain one forecasts, the search makes exactly dyhpo's decisions."""
    from gnnzoo.search.loop import Search
    from gnnzoo.search.space import SearchSpace

    guarded_calls, dyhpo_calls = [], []
    st = Search(
        SearchSpace(TOY_SPACE), _settings(guard_warmup=3), _noise_runner(guarded_calls), weight_basis=_noise_basis()
    ).run()
    Search(SearchSpace(TOY_SPACE), _settings(surrogate="dyhpo"), _noise_runner(dyhpo_calls)).run()
    assert st["weight_features"].startswith("2 principal directions of 64")
    steps = [h for h in st["history"] if h.get("model")]
    assert steps and st["guard"]["n"] == len(steps)  # batch_size 1: one scored forecast per step
    for h in steps:
        g = h["guard"]
        assert (h["model"] == "weights") == (g["n"] >= 3 and g["sse_weights"] <= g["sse_plain"])
    first = next((i for i, h in enumerate(steps) if h["model"] == "weights"), len(steps))
    n0 = len(guarded_calls) - sum(len(h["launched"]) for h in steps)  # the initial design's launches
    assert guarded_calls[: n0 + first] == dyhpo_calls[: n0 + first]


def test_fms_without_a_weight_basis_forecasts_without_weights_and_says_so():
    from gnnzoo.search.loop import Search
    from gnnzoo.search.space import SearchSpace

    a, b = [], []
    st = Search(SearchSpace(TOY_SPACE), _settings(), _noise_runner(a)).run()
    Search(SearchSpace(TOY_SPACE), _settings(surrogate="dyhpo"), _noise_runner(b)).run()
    assert st["weight_features"].startswith("none (no reference checkpoints")
    assert a == b and not any(h.get("model") == "weights" for h in st["history"])
    raw = Search(SearchSpace(TOY_SPACE), _settings(weights_k=0, guard=False), _noise_runner([])).run()
    assert raw["weight_features"] == "raw (weights_k=0)"
    assert all(h.get("model") == "weights" for h in raw["history"] if h.get("model"))
