"""Batched vs sequential: 32 models of GCN, SAGE, GAT and GIN on Cora, 200 epochs each.

For every backbone, in this one script: (a) one batched training of the 32 seeds
(`gnnzoo.batched.trainer.train_batched`, what `zoo.parallel_models=32` runs) and (b) 32 sequential
single trainings through `gnnzoo.tasks.backbone.train` (the Lightning path). Both write every model
into a zoo and use the default config (logger off, patience 100). Reported: wall times, speedup,
and mean test accuracy of each side (different dropout random streams, so equal in distribution,
not bit for bit).

    python benchmarks/batched.py [--models 32] [--backbones gcn sage gat gin]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datetime import datetime, timezone  # noqa: E402

from _common import RESULTS, compose, md_table, mean_std, write_results  # noqa: E402
from gnnzoo.batched.trainer import seed_configs, train_batched  # noqa: E402
from gnnzoo.data import load_graph  # noqa: E402
from gnnzoo.tasks.backbone import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=32)
    ap.add_argument("--backbones", nargs="+", default=["gcn", "sage", "gat", "gin"])
    ap.add_argument("--merge", action="store_true", help="keep the other backbones of the existing results file")
    ap.add_argument("--repeats", type=int, default=1, help="batched + sequential pairs per backbone; medians reported")
    args = ap.parse_args()
    out = {}
    if args.merge and (RESULTS / "batched.json").is_file():
        out = json.loads((RESULTS / "batched.json").read_text())["results"]
    for bb in args.backbones:
        t_bs, t_ss, ratios = [], [], []
        for rep in range(args.repeats):  # fresh zoos each repeat; ratio taken within the repeat
            tmp = tempfile.mkdtemp(prefix=f"gnnzoo-batched-{bb}-")
            base = [
                f"backbone={bb}",
                "logger=none",
                "extras.print_config=false",
                "trainer.enable_progress_bar=false",
                f"paths.output_dir={tmp}/out",
            ]
            cfg_b = compose(base + [f"paths.zoo_dir={tmp}/batched"])
            graph = load_graph(cfg_b)
            t0 = time.perf_counter()
            res_b = train_batched(seed_configs(cfg_b, args.models), graph, progress=False)
            t_b = time.perf_counter() - t0
            t0 = time.perf_counter()
            res_s = []
            for s in range(args.models):
                res_s.append(train(compose(base + [f"paths.zoo_dir={tmp}/single", f"seed={s}"])))
            t_s = time.perf_counter() - t0
            assert len(res_b) == len(res_s) == args.models  # same seeds; the two engines' run ids never collide
            assert not {r["run_id"] for r in res_b} & {r["run_id"] for r in res_s}
            t_bs.append(t_b)
            t_ss.append(t_s)
            ratios.append(t_s / t_b)
            print(bb, rep, f"batched {t_b:.1f}s sequential {t_s:.1f}s ratio {t_s / t_b:.1f}", flush=True)
        acc_b = mean_std([100 * r["test/acc"] for r in res_b])
        acc_s = mean_std([100 * r["test/acc"] for r in res_s])
        out[bb] = {
            "batched_s": statistics.median(t_bs),
            "sequential_s": statistics.median(t_ss),
            "speedup": statistics.median(ratios),
            "speedups": ratios,
            "repeats": args.repeats,
            "test_acc_batched": acc_b,
            "test_acc_sequential": acc_s,
            "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        print(bb, out[bb], flush=True)
    rows = []
    for bb, r in out.items():
        acc_b, acc_s = r["test_acc_batched"], r["test_acc_sequential"]
        spread = (
            f" ({min(r['speedups']):.1f}–{max(r['speedups']):.1f}, {r['repeats']} pairs)"
            if r.get("repeats", 1) > 1
            else ""
        )
        rows.append(
            [
                bb,
                f"{r['batched_s']:.1f}",
                f"{r['sequential_s']:.1f}",
                f"**{r['speedup']:.1f}×**{spread}",
                f"{acc_b[0]:.2f} ± {acc_b[1]:.2f}",
                f"{acc_s[0]:.2f} ± {acc_s[1]:.2f}",
                r.get("measured", ""),
            ]
        )
    md = md_table(
        [
            "backbone",
            f"batched s ({args.models} models)",
            f"sequential s ({args.models} runs)",
            "speedup",
            "test acc % batched",
            "test acc % sequential",
            "measured (UTC)",
        ],
        rows,
    )
    gcn = out.get("gcn", {}).get("speedup")
    if gcn is not None:
        md += f"\n\nTarget ≥ 8× for GCN: **{'met' if gcn >= 8 else 'NOT met'}** ({gcn:.1f}×).\n"
    md += (
        "\nCora, default backbone configs, 200 epochs max with patience 100 on val acc, seeds 0..N-1 (each "
        "model's dropout drawn from its own seed; the two engines' run ids differ). Both sides include writing every "
        "zoo entry; the batched side includes building "
        "the N initial models through the single-model path; the sequential side composes each run's config "
        "(as `train.py` would). With `--repeats R`: medians over R batched/sequential pairs, ratio per pair.\n"
    )
    summary = {
        bb: {"speedup": r["speedup"], "batched_s": r["batched_s"], "sequential_s": r["sequential_s"]}
        for bb, r in out.items()
    }
    write_results(
        "batched",
        {"summary": summary, "models": args.models, "results": out},
        md,
        command="python " + " ".join(["benchmarks/batched.py"] + sys.argv[1:]),
    )


if __name__ == "__main__":
    main()
