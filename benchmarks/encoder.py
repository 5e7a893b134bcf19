"""Neural-graph encoder benchmark: Kendall τ of predicted vs true validation accuracy on held-out runs.

Zoos (built with ``experiment=encoder_zoo`` and the batched launcher; cached in --work, a rerun reuses them):

* ``cora_gcn``: GCN (hidden 16) on Cora, lr {0.001, 0.005, 0.02, 0.05} x weight decay {0, 5e-4, 5e-3} x
  dropout {0, 0.5, 0.8} x training length {50, 150} epochs = 72 runs; snapshots every 50 epochs, plus each
  run's best-val weights;
* ``cora_mixed``: GCN, SAGE, GAT (4 heads), GIN on Cora, all hidden 16, lr {0.001, 0.005, 0.02} x weight
  decay {0, 5e-4, 5e-3} x dropout {0, 0.5}, 100 epochs = 72 runs; snapshots every 50 epochs + best-val;
* ``citeseer_transfer``: the encoders trained on ``cora_mixed`` (their positional tables sized for
  CiteSeer's 3703 inputs), evaluated on every checkpoint of the same grid trained on CiteSeer (no training).

Per zoo and seed s (0..--seeds-1): runs split 70/15/15 by ``encoder.split.seed=s``, encoder seed s, each of
``ng_gnn``, ``ng_transformer``, ``stat``, ``flat_mlp`` trained by ``task=encoder`` (selected by validation
τ) and its test τ reported. CPU settings, the same for every zoo and seed (declared, not tuned): ng_gnn /
ng_transformer with d=16, d_edge=8, 2 layers (transformer: 2 heads); batch 8, at most 60 epochs,
patience 15, and a wall-time cap of --minutes per training. flat_mlp reads one parameter layout, so it has
no figure on the mixed zoos (the table says n/a). Jobs run in --jobs worker processes, one torch thread
each; every job's result is cached in --work.

    python benchmarks/encoder.py [--seeds 3] [--jobs 2] [--minutes 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, JobCache, ci95, compose, md_table, mean_std, run_jobs, write_results  # noqa: E402

ENCODERS = ["ng_gnn", "ng_transformer", "stat", "flat_mlp"]
NEURAL = {
    "ng_gnn": ["encoder.model.d=16", "encoder.model.d_edge=8", "encoder.model.layers=2"],
    "ng_transformer": [
        "encoder.model.d=16",
        "encoder.model.d_edge=8",
        "encoder.model.layers=2",
        "encoder.model.heads=2",
    ],
}
ZOO_SWEEPS = {
    "cora_gcn": [
        [
            "dataset=cora",
            "backbone=gcn",
            "backbone.hidden_channels=16",
            "seed=0",
            "optimizer.lr=0.001,0.005,0.02,0.05",
            "optimizer.weight_decay=0,0.0005,0.005",
            "backbone.dropout=0.0,0.5,0.8",
            "trainer.max_epochs=50,150",
            "zoo.snapshot_every=50",
        ]
    ],
    "mixed": [
        [
            "dataset=cora,citeseer",
            f"backbone={bb}",
            "backbone.hidden_channels=16",
            "seed=0",
            *extra,
            "optimizer.lr=0.001,0.005,0.02",
            "optimizer.weight_decay=0,0.0005,0.005",
            "backbone.dropout=0.0,0.5",
            "trainer.max_epochs=100",
            "zoo.snapshot_every=50",
        ]
        for bb, extra in (("gcn", []), ("sage", []), ("gin", []), ("gat", ["backbone.heads=4"]))
    ],
}
# zoo -> (zoo folder, datasets, backbones)
QUERIES = {
    "cora_gcn": ("cora_gcn", ["cora"], ["gcn"]),
    "cora_mixed": ("mixed", ["cora"], None),
    "citeseer_transfer": ("mixed", ["citeseer"], None),
}


def build_zoos(work: Path, data_dir: str) -> dict:
    """Train the zoos (skipped where the zoo already has the runs: zoo.skip_completed)."""
    walls = {}
    for name, sweeps in ZOO_SWEEPS.items():
        t0 = time.perf_counter()
        for sweep in sweeps:
            cmd = [
                sys.executable,
                str(ROOT / "train.py"),
                "-m",
                "experiment=encoder_zoo",
                *sweep,
                f"paths.zoo_dir={work / ('zoo_' + name)}",
                f"paths.data_dir={data_dir}",
                f"paths.cache_dir={work / 'cache'}",
                f"hydra.sweep.dir={work / 'sweeps' / name}",
                "hydra.launcher.progress=false",
            ]
            print("$", " ".join(cmd[1:]), flush=True)
            subprocess.run(
                cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "2"}
            )
        walls[name] = time.perf_counter() - t0
    return walls


def _items(work: Path, zoo_name: str):
    from gnnzoo.weightspace.dataset import checkpoints
    from gnnzoo.zoo import Zoo

    folder, datasets, backbones = QUERIES[zoo_name]
    zoo = Zoo(work / f"zoo_{folder}")
    return zoo, checkpoints(zoo, kinds=["run"], datasets=datasets, backbones=backbones)


def prepare(work: Path) -> dict:
    """Process every zoo's neural graphs once (in this process, so workers never race on the cache)."""
    from gnnzoo.weightspace.dataset import ZooGraphs

    sizes = {}
    for name in QUERIES:
        zoo, items = _items(work, name)
        ZooGraphs(zoo, items, work / "cache" / "weightspace")
        sizes[name] = {
            "runs": len({c.run_id for c in items}),
            "checkpoints": len(items),
            "backbones": sorted({c.backbone for c in items}),
            "target_range": [min(c.target for c in items), max(c.target for c in items)],
        }
    return sizes


def _worst(work: Path, zoo_name: str, run_id: str, transfer: bool = False, k: int = 5) -> tuple[list, dict]:
    """Test-split predictions of a trained encoder: the k checkpoints with the largest rank error, and the
    transfer τ/R² (all of CiteSeer) when ``transfer``."""
    import torch

    from gnnzoo.weightspace.dataset import ZooGraphs
    from gnnzoo.weightspace.encoder import TrainedEncoder
    from gnnzoo.weightspace.module import regression_metrics

    zoo_dir = work / f"zoo_{QUERIES[zoo_name][0]}"
    enc_zoo, items = _items(work, zoo_name)
    enc = TrainedEncoder.from_zoo(zoo_dir, run_id)
    if not transfer:
        test = set(enc_zoo[run_id].record["encoder"]["splits"]["test"])
        items = [c for c in items if c.run_id in test]
    ds = ZooGraphs(enc_zoo, items, work / "cache" / "weightspace")
    pred = enc.predict_graphs(ds).view(-1)
    y = torch.tensor([c.target for c in items])
    metrics = regression_metrics(pred, y) if transfer else {}
    rank_p = pred.argsort().argsort().float() / max(1, len(items) - 1)
    rank_y = y.argsort().argsort().float() / max(1, len(items) - 1)
    err = rank_p - rank_y
    worst = []
    for i in err.abs().argsort(descending=True)[:k].tolist():
        c = items[i]
        cfg = enc_zoo[c.run_id].record["config"]
        worst.append(
            {
                "run_id": c.run_id,
                "backbone": c.backbone,
                "epoch": c.epoch,
                "snapshot": c.snapshot is not None,
                "true_val_acc": float(y[i]),
                "pred_val_acc": float(pred[i]),
                "rank_error": float(err[i]),
                "lr": cfg["optimizer"]["lr"],
                "weight_decay": cfg["optimizer"]["weight_decay"],
                "dropout": cfg["backbone"]["dropout"],
                "max_epochs": cfg["trainer"]["max_epochs"],
            }
        )
    return worst, metrics


def job(args: tuple) -> dict:
    """One encoder training, cached by the harness under everything that determines it (its overrides)."""
    zoo_name, encoder, seed, work, minutes = args
    work = Path(work)
    ov = _overrides(zoo_name, encoder, seed, work, minutes)
    settings = {
        "zoo": zoo_name,
        "encoder": encoder,
        "seed": seed,
        "minutes": minutes,
        "zoo_query": QUERIES[zoo_name],
        "overrides": [o for o in ov if not o.startswith("paths.")],
    }
    return JobCache(work, __file__).run(settings, lambda: _train_encoder(zoo_name, encoder, seed, work, ov))["result"]


def _overrides(zoo_name: str, encoder: str, seed: int, work: Path, minutes: float) -> list[str]:
    folder, datasets, backbones = QUERIES[zoo_name]
    ov = [
        f"encoder={encoder}",
        f"seed={seed}",
        f"encoder.split.seed={seed}",
        "encoder.epochs=60",
        "encoder.patience=15",
        f"encoder.max_minutes={minutes}",
        "encoder.batch_size=8",
        "logger=none",
        "threads=1",
        "trainer.enable_progress_bar=false",
        f"paths.zoo_dir={work / ('zoo_' + folder)}",
        f"paths.cache_dir={work / 'cache'}",
        f"paths.output_dir={work / 'out' / f'{zoo_name}_{encoder}_{seed}'}",
        f"encoder.zoo.datasets=[{','.join(datasets)}]",
        *NEURAL.get(encoder, []),
    ]
    if backbones:
        ov.append(f"encoder.zoo.backbones=[{','.join(backbones)}]")
    if zoo_name == "cora_mixed" and encoder in NEURAL:
        ov.append("+encoder.model.max_inputs=3703")  # CiteSeer's inputs, for the transfer evaluation
    return ov


def _train_encoder(zoo_name: str, encoder: str, seed: int, work: Path, ov: list[str]) -> dict:
    from gnnzoo.utils.errors import ConfigError
    from gnnzoo.weightspace.task import run as run_encoder

    folder = QUERIES[zoo_name][0]
    t0 = time.perf_counter()
    payload = {"zoo": zoo_name, "encoder": encoder, "seed": seed}
    try:
        res = run_encoder(compose(ov))
    except ConfigError as e:  # flat_mlp on a zoo of several parameter layouts
        payload.update(status="n/a", reason=str(e))
    else:
        from gnnzoo.zoo import Zoo

        rec = Zoo(work / f"zoo_{folder}")[res["run_id"]].record
        payload.update(
            status="ok",
            run_id=res["run_id"],
            tau=res["encoder/test_tau"],
            r2=res["encoder/test_r2"],
            mse=res["encoder/test_mse"],
            val_tau=res["encoder/val_tau"],
            best_epoch=res["best_epoch"],
            epochs=len(rec["curves"]["epoch"]),
            train_s=rec["wall_time_s"],
        )
        payload["worst"], _ = _worst(work, zoo_name, res["run_id"])
        if zoo_name == "cora_mixed":
            worst_t, m = _worst(work, "citeseer_transfer", res["run_id"], transfer=True)
            payload["transfer"] = {"tau": m["tau"], "r2": m["r2"], "mse": m["mse"], "worst": worst_t}
    payload["job_s"] = time.perf_counter() - t0
    return payload


def _fmt(mean: float, std: float, digits: int = 3) -> str:
    return "n/a" if mean != mean else f"{mean:.{digits}f} ± {std:.{digits}f}"


def report(jobs: list[dict], sizes: dict, zoo_walls: dict, seeds: int, minutes: float, wall: float) -> None:
    summary: dict = {}
    rows = []
    for zoo_name in QUERIES:
        summary[zoo_name] = {}
        for enc in ENCODERS:
            if zoo_name == "citeseer_transfer":
                js = [j for j in jobs if j["zoo"] == "cora_mixed" and j["encoder"] == enc]
                taus = [j["transfer"]["tau"] for j in js if j["status"] == "ok"]
                r2s = [j["transfer"]["r2"] for j in js if j["status"] == "ok"]
            else:
                js = [j for j in jobs if j["zoo"] == zoo_name and j["encoder"] == enc]
                taus = [j["tau"] for j in js if j["status"] == "ok"]
                r2s = [j["r2"] for j in js if j["status"] == "ok"]
            trains = [j["train_s"] for j in js if j["status"] == "ok"]
            tm, ts = mean_std(taus)
            rm, rs = mean_std(r2s)
            sm, _ = mean_std(trains)
            epochs = [j["epochs"] for j in js if j["status"] == "ok"]
            summary[zoo_name][enc] = {"tau_mean": tm, "tau_std": ts, "train_s": sm, "r2_mean": rm, "n": len(taus)}
            rows.append(
                [
                    zoo_name,
                    enc,
                    _fmt(tm, ts),
                    _fmt(rm, rs),
                    "n/a" if sm != sm else f"{sm:.0f}",
                    "n/a" if not epochs else f"{min(epochs)}–{max(epochs)}",
                    len(taus),
                ]
            )
    lines = [
        md_table(
            ["zoo", "encoder", "test Kendall τ (mean ± std)", "test R²", "train s (mean)", "epochs run", "seeds"], rows
        ),
        "",
    ]
    size_rows = [
        [
            z,
            s["runs"],
            s["checkpoints"],
            ",".join(s["backbones"]),
            f"{100 * s['target_range'][0]:.1f}–{100 * s['target_range'][1]:.1f}",
        ]
        for z, s in sizes.items()
    ]
    lines += [
        "Zoo sizes (every checkpoint of the query; splits are by run, 70/15/15):",
        "",
        md_table(["zoo", "runs", "checkpoints", "backbones", "val acc range %"], size_rows),
        "",
    ]
    diff_rows = []  # paired by seed (same split, same encoder seed): neural encoder minus the stat baseline
    for zoo_name in QUERIES:
        for enc in ("ng_gnn", "ng_transformer"):
            d = []
            for s in range(seeds):
                src = "cora_mixed" if zoo_name == "citeseer_transfer" else zoo_name
                a_ = next((j for j in jobs if j["zoo"] == src and j["encoder"] == enc and j["seed"] == s), None)
                b_ = next((j for j in jobs if j["zoo"] == src and j["encoder"] == "stat" and j["seed"] == s), None)
                if a_ and b_ and a_["status"] == b_["status"] == "ok":
                    ta, tb = (
                        (a_["transfer"]["tau"], b_["transfer"]["tau"])
                        if zoo_name == "citeseer_transfer"
                        else (a_["tau"], b_["tau"])
                    )
                    d.append(ta - tb)
            if d:
                m, h = mean_std(d)[0], ci95(d)
                summary[zoo_name][enc]["tau_minus_stat"] = {"mean": m, "ci95": h}
                inside = h == h and m - h <= 0 <= m + h
                diff_rows.append(
                    [zoo_name, f"{enc} − stat", f"{m:+.3f} ± {h:.3f}", "yes (no difference shown)" if inside else "no"]
                )
    lines += [
        "Paired differences in test τ (same split and seed; ± the 95% t-interval over seeds):",
        "",
        md_table(["zoo", "difference", "mean ± 95% CI", "interval holds 0"], diff_rows),
        "",
    ]
    a = summary["cora_gcn"]
    verdict = []
    for enc in ("ng_gnn", "ng_transformer"):
        t = a[enc]["tau_mean"]
        base_a = max(a[b]["tau_mean"] for b in ("stat", "flat_mlp") if a[b]["tau_mean"] == a[b]["tau_mean"])
        b = summary["cora_mixed"]
        base_b = max(
            (b[x]["tau_mean"] for x in ("stat", "flat_mlp") if b[x]["tau_mean"] == b[x]["tau_mean"]),
            default=float("nan"),
        )
        verdict.append(
            f"- {enc}: τ {t:.3f} on cora_gcn (target ≥ 0.93: **{'met' if t >= 0.93 else 'missed'}**); "
            f"vs the best baseline {base_a:.3f} on cora_gcn: **{'above' if t > base_a else 'not above'}**; "
            f"on cora_mixed {b[enc]['tau_mean']:.3f} vs {base_b:.3f}: "
            f"**{'above' if b[enc]['tau_mean'] > base_b else 'not above'}**."
        )
    longest = max(j.get("train_s", 0) for j in jobs)
    verdict.append(
        f"- Longest training: {longest:.0f} s (target ≤ 15 min; every training is capped at {minutes:g} min "
        "by `encoder.max_minutes`, so this target holds by construction: the τ above is what that budget buys)."
    )
    lines += ["Targets:", "", *verdict, ""]
    worst = [j for j in jobs if j["status"] == "ok" and j["encoder"] == "ng_gnn" and j["seed"] == 0]
    for j in worst:
        wr = [
            [
                w["backbone"],
                w["epoch"],
                "snapshot" if w["snapshot"] else "best-val",
                w["lr"],
                w["weight_decay"],
                w["dropout"],
                w["max_epochs"],
                f"{100 * w['true_val_acc']:.1f}",
                f"{100 * w['pred_val_acc']:.1f}",
                f"{w['rank_error']:+.2f}",
            ]
            for w in j["worst"]
        ]
        lines += [
            f"Worst-ranked test checkpoints, ng_gnn seed 0, {j['zoo']} (rank error: predicted minus true "
            "rank, as a fraction of the split):",
            "",
            md_table(
                [
                    "backbone",
                    "epoch",
                    "weights",
                    "lr",
                    "wd",
                    "dropout",
                    "run length",
                    "true val %",
                    "pred val %",
                    "rank error",
                ],
                wr,
            ),
            "",
        ]
    lines += [
        "Zoo training wall time: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in zoo_walls.items())
        + f" (batched launcher). Encoder jobs: {sum(j['job_s'] for j in jobs):.0f} s in all (2 workers; a rerun reuses "
        f"them from the cache). {seeds} seeds; "
        "seed s = split seed s and encoder seed s. Settings: see the docstring of benchmarks/encoder.py.",
        "",
    ]
    write_results(
        "encoder",
        {
            "summary": summary,
            "zoos": sizes,
            "zoo_train_s": zoo_walls,
            "jobs": jobs,
            "minutes_cap": minutes,
            "this_invocation_s": wall,
        },
        "\n".join(lines),
        command=f"python benchmarks/encoder.py --seeds {seeds} --minutes {minutes:g}",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=6.0, help="wall-time cap of each encoder training")
    ap.add_argument("--encoders", default=",".join(ENCODERS))
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_encoder"))
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--zoos-only", action="store_true")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    walls_file = work / "zoo_walls.json"
    if walls_file.is_file():
        zoo_walls = json.loads(walls_file.read_text())
    else:
        zoo_walls = build_zoos(work, a.data_dir)
        walls_file.write_text(json.dumps(zoo_walls))
    sizes = prepare(work)
    print(json.dumps(sizes, indent=1), flush=True)
    if a.zoos_only:
        return
    encs = a.encoders.split(",")
    # the slow (neural) trainings first, so the two workers stay busy to the end
    todo = [(z, e, s, str(work), a.minutes) for e in encs for z in ("cora_gcn", "cora_mixed") for s in range(a.seeds)]
    todo.sort(key=lambda t: t[1] not in NEURAL)
    jobs = run_jobs(
        job,
        todo,
        a.jobs,
        1,
        lambda item, res: (
            f"{res['zoo']} {res['encoder']} seed {res['seed']}: "
            f"{res['status']} τ {res.get('tau', float('nan')):.3f} ({res['job_s']:.0f}s)"
        ),
    )
    report(jobs, sizes, zoo_walls, a.seeds, a.minutes, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
