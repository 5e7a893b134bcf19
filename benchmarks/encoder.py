"""Encoders on GNN Zoo v1: Kendall τ of predicted vs true validation accuracy on held-out trajectories, beside the
cheap baselines, with paired 95% intervals; and the neural-graph encoder's training throughput against the one
before the input basis (issue 31).

The zoo is the default GNN Zoo v1 that ``benchmarks/zoo.py`` builds (``--zoo``; 1,084 runs, 13,536 checkpoints).
Splits (every checkpoint of a trajectory on one side; seed s draws split s and trains encoder seed s):

* ``cora_gcn`` (a): Cora x GCN; ``cora_all`` (b): Cora x every backbone; ``all`` (c): the whole zoo — random
  splits of trajectories, test fraction ``clamp(100 / trajectories, 0.15, 0.4)`` (at least 100 test trajectories
  where the zoo has them), validation 0.15, the rest train;
* ``lodo_<dataset>`` (d): train on the other datasets, test on every trajectory of the held-out one (validation:
  0.15 of the others' trajectories).

Encoders (``task=encoder``, one torch thread per job, 2 jobs at a time): ``ng_gnn``, ``ng_transformer`` (d 16,
edge width 16/2 = 8, 2 layers, 2 heads), ``stat``, ``hparams``, ``probe`` (MLP width 64), ``flat_mlp`` (runs where
the query has one parameter layout; zoo v1 varies width and depth, so it reports n/a with the reason).
Declared budget, the same for every encoder (never a clock): 30 epochs, patience 8 epochs on validation τ,
batch 16, AdamW lr 1e-3, weight decay 5e-4; an epoch draws ``per_trajectory = clamp(round(500 / training
trajectories), 1, all)`` checkpoints from each training trajectory (about 500 graphs per epoch where the split
allows); validation reads every val checkpoint each epoch, or 4 of each val trajectory (one fixed draw) where the
val split holds over 1,500 checkpoints (the whole zoo and leave-one-dataset-out); test τ is read once,
over every test checkpoint, with the weights of the best validation epoch. Encoder entries go to a zoo of links
to the zoo's runs under ``--work`` (GNN Zoo v1 itself is never written).

Throughput (``summary.throughput_ratio``): graphs/s of forward + backward + AdamW step, 2 threads, batches of 16
of the same 32 Cora GCN checkpoints (seeded draw), at the default ng_gnn size (d 32, edge 16, 3 layers): today's
ng_gnn (this file's git history: the model of commit ``LEGACY_COMMIT``, raw 1433-input graphs, per-feature
positional table) against the ng_gnn of this commit (inputs in the 32-direction basis), alternated.

    python benchmarks/encoder.py [--seeds 3] [--jobs 2] [--splits cora_gcn,cora_all,all,lodo]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, JobCache, compose, md_table, mean_std, paired, paired_rows, run_jobs, write_results  # noqa: E402

LEGACY_COMMIT = "23aa75a"  # the last commit with per-feature positional tables (raw input layers)
ENCODERS = ["ng_gnn", "ng_transformer", "stat", "hparams", "probe", "flat_mlp"]
NEURAL = {"ng_gnn", "ng_transformer"}
BASELINES = ["stat", "hparams", "probe"]
DATASETS = ["cora", "citeseer", "pubmed", "photo"]
MODEL = {
    "ng_gnn": ["encoder.model.d=16", "encoder.model.d_edge=8", "encoder.model.layers=2"],
    "ng_transformer": [
        "encoder.model.d=16",
        "encoder.model.d_edge=8",
        "encoder.model.layers=2",
        "encoder.model.heads=2",
    ],
}
BUDGET = {"epochs": 30, "patience": 8, "batch_size": 16, "lr": 1e-3, "weight_decay": 5e-4}
GRAPHS_PER_EPOCH = (
    500  # training checkpoints drawn per epoch (per trajectory: clamp(round(500 / trajectories), 1, all))
)
VAL_PER_TRAJECTORY = 4  # where validation holds over 1,500 checkpoints: this many per val trajectory (one fixed draw)


def split_defs() -> dict[str, dict]:
    out = {
        "cora_gcn": {"datasets": ["cora"], "backbones": ["gcn"], "by": "random"},
        "cora_all": {"datasets": ["cora"], "backbones": None, "by": "random"},
        "all": {"datasets": None, "backbones": None, "by": "random"},
    }
    for d in DATASETS:
        out[f"lodo_{d}"] = {"datasets": None, "backbones": None, "by": "dataset", "held": d}
    return out


def _query_items(zoo, q: dict):
    from gnnzoo.weightspace.dataset import checkpoints

    return checkpoints(zoo, kinds=["run"], datasets=q["datasets"], backbones=q["backbones"])


def prepare(zoo_dir: Path, work: Path, data_dir: str) -> dict:
    """Process each query's neural graphs, baseline features and probe outputs once (in this process, so the
    workers never race on the cache); the declared fractions and per-trajectory draws of every split."""
    from gnnzoo.weightspace.dataset import ZooGraphs, dataset_configs, graph_loader, input_bases
    from gnnzoo.zoo import Zoo

    zoo = Zoo(zoo_dir)
    paths = compose([f"paths.data_dir={data_dir}", f"paths.cache_dir={work / 'cache'}"]).paths
    load = graph_loader(paths)
    info, done = {}, {}
    for name, q in split_defs().items():
        items = _query_items(zoo, q)
        key = json.dumps([q["datasets"], q["backbones"]])
        if key not in done:
            t0 = time.perf_counter()
            configs = dataset_configs(zoo, items)
            ds = ZooGraphs(zoo, items, work / "cache" / "weightspace", input_bases(configs, paths, 32))
            ds.add_probe(lambda n: load(configs[n]))
            done[key] = time.perf_counter() - t0
        trajs = {c.trajectory for c in items}
        if q["by"] == "random":
            test = min(0.4, max(0.15, 100 / len(trajs)))
            fractions = [round(1 - 0.15 - test, 4), 0.15, round(test, 4)]
            n_train = fractions[0] * len(trajs)
        else:
            held = {c.trajectory for c in items if c.dataset == q["held"]}
            fractions = [0.7, 0.15, 0.15]  # by=dataset: val is fractions[1] of the other datasets' trajectories
            n_train = 0.85 * (len(trajs) - len(held))
        per = max(1, round(GRAPHS_PER_EPOCH / max(n_train, 1)))
        n_val_ckpt = len(items) * (fractions[1] if q["by"] == "random" else 0.15 * (1 - len(held) / len(trajs)))
        info[name] = {
            **q,
            "fractions": fractions,
            "per_trajectory": per,
            "val_per_trajectory": VAL_PER_TRAJECTORY if n_val_ckpt > 1500 else None,
            "checkpoints": len(items),
            "trajectories": len(trajs),
            "prepare_s": done[key],
        }
    return info


def _overrides(split: str, sp: dict, encoder: str, seed: int, zoo_dir: Path, work: Path, data_dir: str) -> list[str]:
    ov = [
        f"encoder={encoder}",
        f"seed={seed}",
        f"encoder.split.seed={seed}",
        f"encoder.split.by={sp['by']}",
        f"encoder.split.fractions=[{','.join(str(f) for f in sp['fractions'])}]",
        f"encoder.epochs={BUDGET['epochs']}",
        f"encoder.patience={BUDGET['patience']}",
        f"encoder.batch_size={BUDGET['batch_size']}",
        f"encoder.lr={BUDGET['lr']}",
        f"encoder.weight_decay={BUDGET['weight_decay']}",
        "encoder.eval_batch_size=128",
        f"encoder.per_trajectory={sp['per_trajectory']}",
        f"encoder.val_per_trajectory={sp['val_per_trajectory'] or 'null'}",
        "logger=none",
        "threads=1",
        "trainer.enable_progress_bar=false",
        f"paths.zoo_dir={zoo_dir}",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={work / 'cache'}",
        f"paths.output_dir={work / 'out' / f'{split}_{encoder}_{seed}'}",
        *MODEL.get(encoder, []),
    ]
    if sp.get("held"):
        ov.append(f"encoder.split.held={sp['held']}")
    for key in ("datasets", "backbones"):
        if sp[key]:
            ov.append(f"encoder.zoo.{key}=[{','.join(sp[key])}]")
    return ov


def work_zoo(zoo_dir: Path, work: Path) -> Path:
    """A zoo under ``work`` whose run entries are links to ``zoo_dir``'s: the encoders read GNN Zoo v1 and write
    their own entries beside the links, never into it."""
    out = work / "zoo"
    out.mkdir(parents=True, exist_ok=True)
    for d in zoo_dir.iterdir():
        link = out / d.name
        if d.is_dir() and (d / "record.json").is_file() and not link.exists():
            link.symlink_to(d.resolve(), target_is_directory=True)
    return out


def _settings(args: tuple) -> tuple[dict, list[str]]:
    split, sp, encoder, seed, zoo_dir, work, data_dir = args
    ov = _overrides(split, sp, encoder, seed, Path(zoo_dir), Path(work), data_dir)
    settings = {
        "split": split,
        "encoder": encoder,
        "seed": seed,
        "zoo": str(Path(zoo_dir).resolve()),
        "query": {
            k: sp[k] for k in ("checkpoints", "trajectories", "fractions", "per_trajectory", "val_per_trajectory")
        },
        "overrides": [o for o in ov if not o.startswith("paths.")],
    }
    return settings, ov


def job(args: tuple) -> dict:
    """One encoder training, cached by the harness under everything that determines it (its overrides)."""
    split, _, encoder, seed, zoo_dir, work, _ = args
    settings, ov = _settings(args)
    return JobCache(work, __file__).run(settings, lambda: _train(split, encoder, seed, Path(zoo_dir), ov))["result"]


# a job always trains: an encoder entry of the same config in the work zoo, left by other code, is replaced, never
# reused (the harness's JobCache, keyed by the code, is the one cache)
RETRAIN = ["zoo.skip_completed=false"]


def _train(split: str, encoder: str, seed: int, zoo_dir: Path, ov: list[str]) -> dict:
    from gnnzoo.utils.errors import ConfigError
    from gnnzoo.weightspace.task import run as run_encoder
    from gnnzoo.zoo import Zoo

    t0 = time.perf_counter()
    payload = {"split": split, "encoder": encoder, "seed": seed}
    try:
        res = run_encoder(compose([*ov, *RETRAIN]))
    except ConfigError as e:  # flat_mlp on a query of several parameter layouts
        payload.update(status="n/a", reason=str(e).splitlines()[0][:300])
    else:
        rec = Zoo(zoo_dir)[res["run_id"]].record
        splits = rec["encoder"]["splits"]
        payload.update(
            status="ok",
            run_id=res["run_id"],
            tau=res["encoder/test_tau"],
            r2=res["encoder/test_r2"],
            mse=res["encoder/test_mse"],
            val_tau=res["encoder/val_tau"],
            best_epoch=res["best_epoch"],
            epochs=res["epochs_run"],
            train_s=rec["wall_time_s"],
            graphs_per_s=res["train_graphs_per_s"],
            trajectories={k: len(v) for k, v in splits.items()},
            checkpoints=rec["encoder"]["split_checkpoints"],
            test_predictions=rec["encoder"]["test_predictions"],
        )
    payload["job_s"] = time.perf_counter() - t0
    return payload


# ------------------------------------------------------------------------------------------------ throughput
def _legacy_models():
    """The encoder models of ``LEGACY_COMMIT`` (raw input layers), loaded from git as a module of their own."""
    src = subprocess.run(
        ["git", "show", f"{LEGACY_COMMIT}:src/gnnzoo/weightspace/models.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"gnnzoo_legacy_models_{LEGACY_COMMIT}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("gnnzoo_legacy_models", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def throughput(zoo_dir: Path, work: Path, data_dir: str, rounds: int = 3) -> dict:
    import random

    import torch
    from torch_geometric.data import Batch

    from gnnzoo.weightspace import models as current
    from gnnzoo.weightspace.basis import projected_graph
    from gnnzoo.weightspace.dataset import checkpoints, dataset_configs, input_bases
    from gnnzoo.weightspace.graph import spec_of, to_graph
    from gnnzoo.zoo import Zoo

    torch.set_num_threads(2)
    legacy = _legacy_models()
    zoo = Zoo(zoo_dir)
    items = checkpoints(zoo, datasets=["cora"], backbones=["gcn"])
    sample = random.Random(0).sample(items, 32)
    states = [zoo[c.run_id].snapshot(c.snapshot) if c.snapshot else zoo[c.run_id].state_dict() for c in sample]
    paths = compose([f"paths.data_dir={data_dir}", f"paths.cache_dir={work / 'cache'}"]).paths
    basis = input_bases(dataset_configs(zoo, sample), paths, 32)["cora"]
    raw = [to_graph(spec_of("gcn", s), s) for s in states]
    proj = [projected_graph("gcn", s, basis) for s in states]

    def rate(model, graphs, passes):
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        batches = [Batch.from_data_list(graphs[i : i + 16]) for i in range(0, len(graphs), 16)]
        t0, n = time.perf_counter(), 0
        for _ in range(passes):
            for b in batches:
                loss = model(b).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                n += b.num_graphs
        return n / (time.perf_counter() - t0)

    torch.manual_seed(0)
    old = legacy.NGGNN(1433, 2, 7, d=32, d_edge=16, layers=3)
    new = current.NGGNN(32, 8, d=32, d_edge=16, layers=3)
    small = current.NGGNN(32, 8, d=16, d_edge=8, layers=2)
    runs = {"legacy": [], "current": [], "current_bench_size": []}
    for _ in range(rounds):  # alternated
        runs["legacy"].append(rate(old, raw, 1))
        runs["current"].append(rate(new, proj, 4))
        runs["current_bench_size"].append(rate(small, proj, 4))
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    return {
        "graphs_per_s": med,
        "rounds": runs,
        "ratio": med["current"] / med["legacy"],
        "edges": {
            "raw_mean": sum(g.num_edges for g in raw) / 32,
            "projected_mean": sum(g.num_edges for g in proj) / 32,
        },
        "widths": sorted({int(s["layers.0.lin.weight"].shape[0]) for s in states}),
        "legacy_commit": LEGACY_COMMIT,
    }


# ------------------------------------------------------------------------------------------------ report
def _worst(j: dict, zoo, k: int = 5) -> list[dict]:
    """The test checkpoints whose predicted rank is furthest from their true rank."""
    import torch

    tp = j["test_predictions"]
    pred, y = torch.tensor(tp["pred"]), torch.tensor(tp["y"])
    n = max(1, len(y) - 1)
    err = pred.argsort().argsort().float() / n - y.argsort().argsort().float() / n
    out = []
    for i in err.abs().argsort(descending=True)[:k].tolist():
        run_id, epoch, snap = tp["checkpoints"][i]
        cfg = zoo[run_id].record["config"]
        out.append(
            {
                "run_id": run_id,
                "dataset": cfg["dataset"]["name"],
                "backbone": cfg["backbone"]["name"],
                "epoch": epoch,
                "weights": "snapshot" if snap else "best-val",
                "optimizer": cfg["optimizer"]["_target_"].rsplit(".", 1)[-1],
                "lr": cfg["optimizer"]["lr"],
                "dropout": cfg["backbone"]["dropout"],
                "width": cfg["backbone"].get("hidden_channels"),
                "run_length": cfg["trainer"]["max_epochs"],
                "true": float(y[i]),
                "pred": float(pred[i]),
                "rank_error": float(err[i]),
            }
        )
    return out


def _fmt(m: float, s: float) -> str:
    return "n/a" if m != m else f"{m:.3f} ± {s:.3f}"


def verify(spec: str, todo: list[tuple], stored: dict) -> list[dict]:
    """Train the named stored jobs again on this code (in the same work zoo, replacing their entries) and compare
    their τ with the stored one: evidence that the stored jobs still describe this code."""
    import torch

    torch.set_num_threads(1)  # as in the worker pool
    out = []
    for item in [x for x in spec.split(",") if x]:
        split, encoder, seed = item.split(":")
        key = (split, encoder, int(seed))
        t = next((t for t in todo if (t[0], t[2], t[3]) == key), None)
        if t is None or key not in stored:
            raise SystemExit(f"--verify {item}: no such stored job")
        ov = _settings(t)[1]
        res = _train(split, encoder, int(seed), Path(t[4]), ov)
        old = stored[key]
        out.append(
            {
                "job": item,
                "stored_tau": old["result"].get("tau"),
                "now_tau": res.get("tau"),
                "stored_code": old["code"],
                "equal": old["result"].get("tau") == res.get("tau"),
            }
        )
        print(f"verify {item}: stored τ {old['result'].get('tau')} now {res.get('tau')}", flush=True)
    return out


def provenance(stored: dict, fresh: int, checks: list[dict]) -> dict:
    """Which code produced the reported jobs (stored payloads by their digests, and how many ran now)."""
    from collections import Counter

    from _common import code_digest

    by = Counter(json.dumps(h["code"], sort_keys=True) for h in stored.values())
    return {
        "this_code": code_digest(__file__),
        "stored": [{"code": json.loads(k), "jobs": n} for k, n in by.items()],
        "ran_now": fresh,
        "verified": checks,
    }


def report(
    jobs: list[dict],
    info: dict,
    tp: dict | None,
    zoo_dir: Path,
    seeds: int,
    wall: float,
    cmd: str,
    missing: list[str],
    versions: dict | None = None,
) -> None:
    from gnnzoo.zoo import Zoo

    zoo = Zoo(zoo_dir)
    summary: dict = {"throughput_ratio": tp["ratio"] if tp else None, "test_trajectories": {}}
    rows, diff_rows, verdicts, worst_blocks = [], [], [], []
    splits = [s for s in split_defs() if any(j["split"] == s for j in jobs)]
    for split in splits:
        summary[split] = {}
        ok = {
            e: sorted(
                (j for j in jobs if j["split"] == split and j["encoder"] == e and j["status"] == "ok"),
                key=lambda j: j["seed"],
            )
            for e in ENCODERS
        }
        for e in ENCODERS:
            js = ok[e]
            if not js:
                why = next((j.get("reason", "") for j in jobs if j["split"] == split and j["encoder"] == e), "")
                if why:
                    rows.append([split, e, "n/a", "n/a", "n/a", "n/a", "n/a", "0", why[:90]])
                continue
            tm, ts = mean_std([j["tau"] for j in js])
            rm, rs = mean_std([j["r2"] for j in js])
            trs, gps = mean_std([j["train_s"] for j in js])[0], mean_std([j["graphs_per_s"] for j in js])[0]
            summary[split][e] = {
                "tau_mean": tm,
                "tau_std": ts,
                "train_s": trs,
                "graphs_per_s": gps,
                "r2_mean": rm,
                "n": len(js),
            }
            epochs = [j["epochs"] for j in js]
            rows.append(
                [
                    split,
                    e,
                    _fmt(tm, ts),
                    _fmt(rm, rs),
                    f"{trs:.0f}",
                    f"{gps:.0f}",
                    f"{min(epochs)}–{max(epochs)} (best {','.join(str(j['best_epoch'] + 1) for j in js)})",
                    str(len(js)),
                    "",
                ]
            )
            summary["test_trajectories"][split] = js[0]["trajectories"]["test"]
        for e in NEURAL:
            for b in BASELINES:
                a_, b_ = ok[e], ok[b]
                seeds_ab = sorted({j["seed"] for j in a_} & {j["seed"] for j in b_})
                if not seeds_ab:
                    continue
                d = paired(
                    [next(j["tau"] for j in a_ if j["seed"] == s) for s in seeds_ab],
                    [next(j["tau"] for j in b_ if j["seed"] == s) for s in seeds_ab],
                )
                summary[split][e][f"tau_minus_{b}"] = d
                diff_rows.append(([split, f"{e} − {b}"], d))
        neural = {e: summary[split][e]["tau_mean"] for e in NEURAL if e in summary[split]}
        if neural:
            best = max(neural, key=neural.get)
            above = [
                b
                for b in BASELINES
                if b in summary[split]
                and f"tau_minus_{b}" in summary[split][best]
                and summary[split][best][f"tau_minus_{b}"]["mean"] > 0
                and not summary[split][best][f"tau_minus_{b}"]["holds_zero"]
            ]
            top_base = max(
                (b for b in BASELINES if b in summary[split]), key=lambda b: summary[split][b]["tau_mean"], default=None
            )
            summary[split]["best_neural"] = best
            summary[split]["best_neural_above_every_baseline"] = len(above) == len(
                [b for b in BASELINES if b in summary[split]]
            )
            verdicts.append(
                f"- {split}: best neural {best} τ {neural[best]:.3f}; best baseline "
                f"{top_base} {summary[split][top_base]['tau_mean']:.3f}; above (paired interval > 0): "
                f"{', '.join(above) or 'none'}"
            )
            j0 = next((j for j in ok[best] if j["seed"] == 0), None)
            if j0:
                w = _worst(j0, zoo)
                worst_blocks += [
                    f"Worst-ranked test checkpoints, {best} seed 0, {split} (rank error: predicted minus true rank, "
                    "as a fraction of the test split):",
                    "",
                    md_table(
                        [
                            "dataset",
                            "backbone",
                            "epoch",
                            "weights",
                            "optimizer",
                            "lr",
                            "dropout",
                            "width",
                            "run length",
                            "true val %",
                            "pred val %",
                            "rank error",
                        ],
                        [
                            [
                                x["dataset"],
                                x["backbone"],
                                x["epoch"],
                                x["weights"],
                                x["optimizer"],
                                f"{x['lr']:.4g}",
                                f"{x['dropout']:.2f}",
                                x["width"],
                                x["run_length"],
                                f"{100 * x['true']:.1f}",
                                f"{100 * x['pred']:.1f}",
                                f"{x['rank_error']:+.2f}",
                            ]
                            for x in w
                        ],
                    ),
                    "",
                ]
                summary[split]["worst"] = w
    lines = [
        md_table(
            [
                "split",
                "encoder",
                "test τ (mean ± std)",
                "test R²",
                "train s",
                "graphs/s",
                "epochs run",
                "seeds",
                "note",
            ],
            rows,
        ),
        "",
        "Paired differences in test τ, neural encoder minus baseline (same split and seed; ± the 95% t-interval over "
        "seeds):",
        "",
        md_table(["split", "difference", "mean ± 95% CI", "interval holds 0"], paired_rows(diff_rows, 3)),
        "",
        "Splits (trajectories; fractions train/val/test; checkpoints drawn per training trajectory each epoch):",
        "",
        md_table(
            [
                "split",
                "checkpoints",
                "trajectories",
                "test trajectories",
                "fractions",
                "per trajectory",
                "val per trajectory",
            ],
            [
                [
                    s,
                    v["checkpoints"],
                    v["trajectories"],
                    summary["test_trajectories"].get(s, "n/a"),
                    "/".join(str(f) for f in v["fractions"]) if v["by"] == "random" else f"held out: {v['held']}",
                    v["per_trajectory"],
                    v["val_per_trajectory"] or "all",
                ]
                for s, v in info.items()
                if s in splits
            ],
        ),
        "",
        "Verdicts:",
        "",
        *verdicts,
        "",
    ]
    a, b_, c = (summary.get(s, {}) for s in ("cora_gcn", "cora_all", "all"))
    target = []
    if a:
        t = max((a[e]["tau_mean"] for e in NEURAL if e in a), default=float("nan"))
        target.append(f"- (a) cora_gcn: best neural τ {t:.3f}, target ≥ 0.93: **{'met' if t >= 0.93 else 'missed'}**")
    for nm, s in (("(b) cora_all", b_), ("(c) all", c)):
        if s and "best_neural" in s:
            t = s[s["best_neural"]]["tau_mean"]
            target.append(
                f"- {nm}: best neural τ {t:.3f} (target ≥ 0.85: **{'met' if t >= 0.85 else 'missed'}**); above every "
                "baseline with the paired interval above 0: "
                f"**{'yes' if s['best_neural_above_every_baseline'] else 'no'}**"
            )
    lodo = [s for s in splits if s.startswith("lodo_")]
    if lodo:
        wins = [s for s in lodo if summary[s].get("best_neural_above_every_baseline")]
        target.append(
            f"- (d) leave-one-dataset-out: best neural above every baseline on {len(wins)} of {len(lodo)} "
            f"held-out datasets ({', '.join(w[5:] for w in wins) or 'none'}); target ≥ 4"
        )
    if c:
        longest = max(c[e]["train_s"] for e in c if isinstance(c[e], dict) and "train_s" in c[e])
        target.append(
            f"- training on (c) within 60 minutes on 2 cores: longest mean {longest / 60:.1f} min "
            f"(1 thread per job): **{'met' if longest <= 3600 else 'missed'}**"
        )
    if tp:
        g = tp["graphs_per_s"]
        target.append(
            f"- throughput (Cora GCN checkpoints, 2 threads, forward + backward + step, default size d 32 / 3 layers): "
            f"ng_gnn {g['current']:.1f} graphs/s vs {g['legacy']:.2f} before the input basis (commit {LEGACY_COMMIT}): "
            f"**{tp['ratio']:.0f}×** (target ≥ 10×); at the benchmark's size (d 16, 2 layers) "
            f"{g['current_bench_size']:.0f} "
            f"graphs/s. Mean edges per graph: {tp['edges']['raw_mean']:.0f} raw, {tp['edges']['projected_mean']:.0f} "
            f"projected; widths in the sample {tp['widths']}."
        )
    lines += ["Targets:", "", *target, "", *worst_blocks]
    if missing:
        lines += [
            f"Not run within this session's compute ({len(missing)} of {len(missing) + len(jobs)} jobs; the same "
            "command runs them and the table grows): " + "; ".join(missing),
            "",
        ]
    lines += [
        f"{seeds} seeds (seed s: split s, encoder seed s). Budget, the same for every encoder: {BUDGET}; "
        "settings in the docstring of benchmarks/encoder.py. Encoder jobs: "
        f"{sum(j['job_s'] for j in jobs):.0f} s in all (2 workers, 1 thread each; a rerun reuses them from the cache).",
        "",
    ]
    if versions and versions["stored"]:
        lines += [
            f"Code: {versions['ran_now']} jobs ran now (library {versions['this_code']['library']}, script "
            f"{versions['this_code']['script']}); "
            + "; ".join(
                f"{v['jobs']} stored jobs of library {v['code']['library']}, script {v['code']['script']}"
                for v in versions["stored"]
            )
            + " (same settings; `--stored`).",
            "",
        ]
        for c in versions["verified"]:
            lines.append(
                f"- re-trained on this code: {c['job']}: stored τ {c['stored_tau']:.4f}, now {c['now_tau']:.4f} "
                f"({'identical' if c['equal'] else 'DIFFERENT'})"
            )
        lines.append("")
    write_results(
        "encoder",
        {
            "summary": summary,
            "code_versions": versions,
            "splits": info,
            "throughput": tp,
            "not_run": missing,
            "jobs": [{k: v for k, v in j.items() if k != "test_predictions"} for j in jobs],
            "this_invocation_s": wall,
        },
        "\n".join(lines),
        command=cmd,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--encoders", default=",".join(ENCODERS))
    ap.add_argument("--splits", default="cora_gcn,cora_all,all,lodo", help="names; `lodo` = every lodo_<dataset>")
    ap.add_argument("--zoo", default=str(Path.home() / ".cache" / "gnnzoo_bench_zoo" / "zoo"))
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_encoder"))
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--skip-throughput", action="store_true", help="reuse the last throughput measurement")
    ap.add_argument("--report-only", action="store_true", help="report the cached jobs; run nothing")
    ap.add_argument(
        "--stored",
        action="store_true",
        help="use a job's payload stored by other code (same settings) instead of re-running it; the report lists "
        "the code versions used",
    )
    ap.add_argument(
        "--verify",
        default="",
        help="split:encoder:seed,... stored jobs to train again on this code and compare (with --stored)",
    )
    a = ap.parse_args()
    zoo_dir, work = Path(a.zoo), Path(a.work)
    if not (zoo_dir / "index.json").exists() and not any(zoo_dir.glob("*/record.json")):
        raise SystemExit(f"no GNN Zoo v1 at {zoo_dir}: build it with `python benchmarks/zoo.py` (or pass --zoo)")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    zoo_dir = work_zoo(zoo_dir, work)
    info = prepare(zoo_dir, work, a.data_dir)
    print(json.dumps(info, indent=1), flush=True)
    tp_file = work / f"throughput_{LEGACY_COMMIT}.json"
    tp = None
    if not a.skip_throughput and not a.report_only:
        tp = throughput(zoo_dir, work, a.data_dir)
        tp_file.write_text(json.dumps(tp))
        print(json.dumps(tp), flush=True)
    elif tp_file.exists():
        tp = json.loads(tp_file.read_text())
    wanted = []
    for s in a.splits.split(","):
        wanted += [k for k in info if k.startswith("lodo_")] if s == "lodo" else [s]
    encs = a.encoders.split(",")
    # (a)-(c) first, then leave-one-dataset-out; seed-major within each, slow neural jobs first within a seed
    todo = [
        (s, info[s], e, seed, str(zoo_dir), str(work), a.data_dir)
        for group in ([s for s in wanted if not s.startswith("lodo_")], [s for s in wanted if s.startswith("lodo_")])
        for seed in range(a.seeds)
        for s in group
        for e in sorted(encs, key=lambda e: e not in NEURAL)
    ]
    stored, checks = {}, []
    if a.stored:
        cache = JobCache(work, __file__)
        for t in todo:
            settings = _settings(t)[0]
            hit = cache.get(settings) or cache.stored(settings)
            if hit is not None:
                stored[(t[0], t[2], t[3])] = hit
        checks = verify(a.verify, todo, stored)
        todo = [t for t in todo if (t[0], t[2], t[3]) not in stored]
        print(f"{len(stored)} stored jobs reused; {len(todo)} to run", flush=True)
    if a.report_only:
        cache = JobCache(work, __file__)
        hits = [cache.get(_settings(t)[0]) for t in todo]
        missing = [f"{t[0]} {t[2]} seed {t[3]}" for t, h in zip(todo, hits) if h is None]
        jobs = [h["result"] for h in hits if h is not None]
        print(f"{len(jobs)} cached jobs; not run: {len(missing)}", flush=True)
        report(jobs, info, tp, zoo_dir, a.seeds, time.perf_counter() - t0, "python benchmarks/encoder.py", missing)
        return
    jobs = run_jobs(
        job,
        todo,
        a.jobs,
        1,
        lambda item, res: (
            f"{res['split']} {res['encoder']} seed {res['seed']}: {res['status']} τ {res.get('tau', float('nan')):.3f} "
            f"({res['job_s']:.0f}s)"
        ),
    )
    cmd = "python benchmarks/encoder.py " + " ".join(sys.argv[1:])
    if stored:
        jobs = [h["result"] for h in stored.values()] + jobs
    versions = provenance(stored, len(jobs) - len(stored), checks)
    report(jobs, info, tp, zoo_dir, a.seeds, time.perf_counter() - t0, cmd.strip(), [], versions)


if __name__ == "__main__":
    main()
