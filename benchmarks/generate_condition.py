"""Cost of GNN-Diff's graph condition (issue 33): the condition GNN trained on Cora's node classification, 200 full
steps, three ways, alternated in one process on one thread:

* ``before``: the condition as it was before issue 33 (read from git: three ``GCNConv``/``Linear`` first maps on a
  dense copy of the 2708 x 1433 features, dense dropout);
* ``dense``: today's condition on the same dense features (one ``[F, 3H]`` first map, GCN propagation by a sparse
  normalised adjacency);
* ``sparse``: today's condition on gnnzoo's CSR features (dropout on the stored values): the default.

Reported: seconds per condition (median of the repeats) and the ratios, with each variant's final training
accuracy (the three are different random draws of the same kind of model, so accuracies agree only roughly).

    python benchmarks/generate_condition.py [--repeats 3] [--before cf64657]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, compose, md_table, write_results  # noqa: E402


def _before(commit: str):
    """The condition module of ``commit`` (git show), as a module object."""
    src = subprocess.run(
        ["git", "show", f"{commit}:src/gnnzoo/generate/condition.py"], cwd=ROOT, capture_output=True, text=True
    )
    if src.returncode != 0:
        raise SystemExit(f"git show {commit}:src/gnnzoo/generate/condition.py failed: {src.stderr.strip()}")
    mod = types.ModuleType("condition_before")
    exec(compile(src.stdout, f"{commit}:condition.py", "exec"), mod.__dict__)
    return mod


def main() -> None:
    import torch

    from gnnzoo.data.graph import load_graph
    from gnnzoo.generate.condition import condition_vector

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--before", default="cf64657", help="the commit whose condition is the 'before' side")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = Path.home() / ".cache" / "gnnzoo_bench_condition"
    cfg = compose([f"paths.data_dir={args.data_dir}", f"paths.cache_dir={cache}", "logger=none"])
    d = load_graph(cfg).data
    before = _before(args.before)
    x_dense = d.x.to_dense() if d.x.layout != torch.strided else d.x
    sides = {
        "before": lambda: before.condition_vector(x_dense, d.edge_index, d.y, d.train_mask, 64, args.steps),
        "dense": lambda: condition_vector(x_dense, d.edge_index, d.y, d.train_mask, 64, args.steps),
        "sparse": lambda: condition_vector(d.x, d.edge_index, d.y, d.train_mask, 64, args.steps),
    }
    walls: dict[str, list[float]] = {k: [] for k in sides}
    accs: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, fn in sides.items():  # alternated: the machine's load hits every side alike
            t0 = time.perf_counter()
            _, accs[name] = fn()
            walls[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in walls.items()}
    rows = [
        [
            k,
            f"{med[k]:.2f}",
            ", ".join(f"{w:.2f}" for w in walls[k]),
            f"{med['before'] / med[k]:.1f}x",
            f"{accs[k]:.3f}",
        ]
        for k in sides
    ]
    md = (
        f"Cora, {args.steps} steps of the condition GNN, one thread, {args.repeats} alternated repeats.\n\n"
        + md_table(["side", "median s", "repeats s", "speed-up over before", "final train acc"], rows)
        + "\n"
    )
    summary = {
        "before_s": med["before"],
        "sparse_s": med["sparse"],
        "dense_s": med["dense"],
        "speedup_sparse_over_before": med["before"] / med["sparse"],
    }
    write_results("generate_condition", {"summary": summary, "walls": walls, "train_acc": accs}, md)


if __name__ == "__main__":
    main()
