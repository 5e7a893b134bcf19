"""Why UGS on CiteSeer GCN collapses from round 8 (the pruning benchmark's seed 2): does the global threshold
empty GCN-16's small last layer? Runs UGS (the benchmark's settings: rate 0.2, L1 0.01/0.01, weights only) for 8
rounds on seed 2 with and without ``pruning.min_per_neuron`` and reports, per round, the ticket's test accuracy,
the kept fraction of every tensor, the fewest weights any output neuron keeps, whether the retraining learned
(its training loss at the first and last epoch), and the kept density on input features that occur in some
training node vs in none.

    python benchmarks/ugs_collapse.py [--seed 2] [--rounds 8]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, JobCache, compose, md_table, run_jobs, write_results  # noqa: E402
from pruning import UGS_L1, W_RATE  # noqa: E402
from pruning import _base as pruning_overrides  # noqa: E402


def _base(seed: int, zoo: Path, data_dir: str, floor: int, rounds: int) -> list[str]:
    """The pruning benchmark's overrides for this cell and seed, UGS with its CiteSeer GCN settings, ``floor``."""
    level = math.floor(1e4 * (1 - (1 - W_RATE) ** rounds)) / 1e4
    l1_graph, l1_weight = UGS_L1[("citeseer", "gcn")]
    base = [o for o in pruning_overrides("citeseer", "gcn", seed, zoo, data_dir) if "min_per_neuron" not in o]
    return base + [
        "pruning=imp_ugs",
        f"pruning.weight_sparsity={level}",
        "pruning.graph_sparsity=0",
        f"pruning.rounds={rounds}",
        f"pruning.rate_weight={W_RATE}",
        f"pruning.l1_weight={l1_weight}",
        f"pruning.l1_graph={l1_graph}",
        f"pruning.min_per_neuron={floor}",
    ]


def _run(seed: int, floor: int, rounds: int, work: Path, data_dir: str) -> dict:
    import torch

    from gnnzoo.data.graph import load_graph
    from gnnzoo.pruning.task import run as run_prune
    from gnnzoo.zoo import Zoo

    zoo = work / f"zoo_{seed}_{floor}"
    cfg = compose(_base(seed, zoo, data_dir, floor, rounds))
    res = run_prune(cfg)
    d = load_graph(cfg).data
    x = d.x.to_dense() if d.x.layout != torch.strided else d.x
    seen = (x[d.train_mask] > 0).any(0)
    rows = []
    for rid in res["tickets"]:
        rec = Zoo(zoo)[rid].record
        masks = Zoo(zoo)[rid].ticket()
        first = masks["layers.0.lin.weight"].float()
        loss = rec["curves"]["train/loss"]
        rows.append(
            {
                "round": rec["pruning"]["round"],
                "test_acc": rec["metrics"]["test/acc"],
                "weight_sparsity": rec["pruning"]["weight_sparsity"],
                "layer_density": rec["pruning"]["layer_density"],
                "min_kept_per_neuron": {n: int(m.sum(1).min()) for n, m in masks.items()},
                "train_loss_first": loss[0],
                "train_loss_last": loss[-1],
                "density_seen_features": float(first[:, seen].mean()),
                "density_unseen_features": float(first[:, ~seen].mean()),
                "unseen_features": int((~seen).sum()),
            }
        )
    return {"seed": seed, "min_per_neuron": floor, "rows": rows}


def job(args: tuple) -> dict:
    seed, floor, rounds, work, data_dir = args
    settings = {
        "seed": seed,
        "min_per_neuron": floor,
        "rounds": rounds,
        "overrides": [o for o in _base(seed, Path("."), "", floor, rounds) if not o.startswith("paths.")],
    }
    return JobCache(work, __file__).run(settings, lambda: _run(seed, floor, rounds, Path(work), data_dir))["result"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "gnnzoo_bench_ugs_collapse"))
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    a = ap.parse_args()
    out = run_jobs(job, [(a.seed, f, a.rounds, a.work, a.data_dir) for f in (0, 1)], a.jobs, 1)
    out.sort(key=lambda r: r["min_per_neuron"])
    table = []
    for res in out:
        for r in res["rows"]:
            dens = ", ".join(f"{n.split('.')[1]}: {100 * v:.1f}%" for n, v in r["layer_density"].items())
            table.append(
                [
                    res["min_per_neuron"],
                    r["round"],
                    f"{100 * r['weight_sparsity']:.1f}%",
                    f"{100 * r['test_acc']:.1f}",
                    dens,
                    min(r["min_kept_per_neuron"].values()),
                    f"{r['train_loss_first']:.3f} → {r['train_loss_last']:.3f}",
                    f"{100 * r['density_seen_features']:.1f}% / {100 * r['density_unseen_features']:.1f}%",
                ]
            )
    md = (
        f"UGS on CiteSeer GCN (hidden 16), seed {a.seed}, rounds 1..{a.rounds}, weights only. The last layer is "
        "16x6 (96 weights); ln 6 = 1.792 is the loss of a uniform prediction.\n\n"
        + md_table(
            [
                "min_per_neuron",
                "round",
                "weight sparsity",
                "test acc %",
                "kept fraction per layer",
                "fewest weights of an output neuron",
                "retrain loss first → last epoch",
                "layer-0 density on features seen / unseen in training nodes",
            ],
            table,
        )
    )
    write_results(
        "ugs_collapse",
        {
            "summary": {
                f"min_per_neuron_{r['min_per_neuron']}": {
                    "test_acc_by_round": [x["test_acc"] for x in r["rows"]],
                    "last_layer_density_by_round": [x["layer_density"]["layers.1.lin.weight"] for x in r["rows"]],
                }
                for r in out
            },
            "runs": out,
        },
        md,
        command="python benchmarks/ugs_collapse.py " + " ".join(sys.argv[1:]),
    )


if __name__ == "__main__":
    main()
