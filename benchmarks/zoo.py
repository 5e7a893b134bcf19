"""GNN Zoo v1 benchmark: build the default zoo with the README's command, export it, read it back.

    python benchmarks/zoo.py                      # build (resumable) + export + read + memory
    python benchmarks/zoo.py --phase build        # only the build (the same command continues a stopped one)
    python benchmarks/zoo.py --phase measure      # export, read and memory on the zoo already built

* **build**: ``python train.py -m experiment=zoo_v1`` (the recipe: scrambled Sobol configurations, batched,
  snapshots every 10 epochs) into ``<work>/zoo``, timed as a whole; its wall, exit status and command go to
  ``<work>/build.json``. Per dataset x backbone: runs, checkpoints and the wall of its batches (the batched
  trainer records each batch's wall; a batch holds one dataset x backbone x shape).
* **export**: ``python -m gnnzoo.zoo export`` in float32 and float16: wall, bytes, bytes per checkpoint.
* **read**: checkpoints/s from the float32 export one at a time (``ZooExport.weights``, random order, each call
  opens its shard with ``safe_open``) and in batches (``iter_weights``: each shard opened once); peak RSS of a
  process that reads every checkpoint one at a time.
* **memory of the neural-graph dataset**: peak RSS of a process that builds ``ZooGraphs`` (the encoder's
  dataset) over the whole zoo, stopped (and reported as such) if it passes ``--rss-cap-gb``.

Writes ``benchmarks/results/zoo.{json,md}`` and ``zoo_histograms.png`` (the export's accuracy histograms).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, md_table, write_results  # noqa: E402

WORK = Path(os.environ.get("GNNZOO_BENCH_WORK", Path.home() / ".cache" / "gnnzoo_bench_zoo"))


def build(work: Path, data_dir: str, overrides: list[str]) -> dict:
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "experiment=zoo_v1",
        f"paths.zoo_dir={work / 'zoo'}",
        f"paths.log_dir={work / 'logs'}",
        f"paths.cache_dir={work / 'cache'}",
        *overrides,
    ]
    env = dict(os.environ, GNNZOO_DATA_DIR=data_dir, WANDB_SILENT="true")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(work / "build.log", "a") as log:
        rc = subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    info = {
        "command": "python train.py -m experiment=zoo_v1 " + " ".join(overrides),
        "wall_s": time.perf_counter() - t0,
        "rc": rc,
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    runs = json.loads((work / "build.json").read_text()) if (work / "build.json").is_file() else []
    runs.append(info)
    (work / "build.json").write_text(json.dumps(runs, indent=1))
    return info


def composition(work: Path) -> dict:
    """Per dataset x backbone: runs, checkpoints, duplicates and the wall of its batches, from the zoo."""
    from gnnzoo.zoo import Zoo
    from gnnzoo.zoo.checkpoints import list_checkpoints

    zoo = Zoo(work / "zoo")
    listed = list_checkpoints(zoo)
    cells: dict[str, dict] = {}
    failed = 0
    for e in zoo.entries():
        rec = e.record
        if rec["status"] != "completed":
            failed += 1
            continue
        c = cells.setdefault(f"{rec['dataset']}/{rec['backbone']}", {"runs": 0, "checkpoints": 0, "batch_wall_s": 0.0})
        c["runs"] += 1
        b = rec.get("batch") or {}
        c["batch_wall_s"] += float(b.get("wall_time_s", rec.get("wall_time_s") or 0.0)) / max(int(b.get("size", 1)), 1)
    for ck in listed.items:
        cells[f"{ck.dataset}/{ck.backbone}"]["checkpoints"] += 1
    return {
        "cells": dict(sorted(cells.items())),
        "runs": sum(c["runs"] for c in cells.values()),
        "failed": failed,
        "checkpoints": len(listed.items),
        "trajectories": len({ck.trajectory for ck in listed.items}),
        "duplicates_dropped": listed.duplicates,
        "datasets": sorted({k.split("/")[0] for k in cells}),
        "backbones": sorted({k.split("/")[1] for k in cells}),
    }


def _child(code: str, timeout: float = 3600) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last. Adds the child's peak RSS (GB): VmHWM of
    its own memory map (``ru_maxrss`` would carry the parent's peak over the fork)."""
    wrapper = (
        "import json, sys\n"
        + code
        + "\nhwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]"
        "\nout['peak_rss_gb'] = int(hwm) / 2**20\n"
        "print(json.dumps(out))\n"
    )
    p = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def export_and_read(work: Path, sample: int) -> dict:
    from gnnzoo.zoo.export import export_zoo
    from gnnzoo.zoo.exported import ZooExport

    out: dict = {"export": {}}
    for dtype in ("float32", "float16"):
        dest = work / f"export_{dtype}"
        shutil.rmtree(dest, ignore_errors=True)
        t0 = time.perf_counter()
        m = export_zoo(work / "zoo", dest, dtype=dtype, progress=False)
        wall = time.perf_counter() - t0
        weights = sum(p.stat().st_size for p in (dest / "weights").iterdir())
        total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        n = m["counts"]["checkpoints"]
        out["export"][dtype] = {
            "wall_s": wall,
            "bytes": total,
            "weight_bytes": weights,
            "bytes_per_checkpoint": weights / n,
            "shards": len(list((dest / "weights").iterdir())),
        }
    shutil.copy(work / "export_float32" / "accuracy_histograms.png", RESULTS / "zoo_histograms.png")
    t0 = time.perf_counter()
    ex = ZooExport(work / "export_float32", verify=True)
    out["verify_s"] = time.perf_counter() - t0
    ids = list(ex.checkpoints["id"])
    picked = random.Random(0).sample(ids, min(sample, len(ids)))
    t0 = time.perf_counter()
    for i in picked:
        ex.weights(i)
    out["read_one_ckpt_per_s"] = len(picked) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = sum(1 for _ in ex.iter_weights())
    out["read_batch_ckpt_per_s"] = n / (time.perf_counter() - t0)
    out["read_rss"] = _child(
        "from gnnzoo.zoo.exported import ZooExport\n"
        f"ex = ZooExport({str(work / 'export_float32')!r}, verify=False)\n"
        "n = 0\n"
        "for i in ex.checkpoints['id']:\n"
        "    ex.weights(i); n += 1\n"
        "out = {'checkpoints': n}\n"
    )
    return out


def graphs_rss(work: Path, cap_gb: float) -> dict:
    """Peak RSS of building the encoder's neural-graph dataset over the whole zoo (stopped past ``cap_gb``)."""
    code = f"""
import os, threading, time, psutil
from gnnzoo.zoo import Zoo
from gnnzoo.weightspace.dataset import ZooGraphs, checkpoints
cap = {cap_gb} * 2**30
def watch():
    while True:
        if psutil.Process().memory_info().rss > cap:
            print(json.dumps({{'error': 'peak RSS passed the cap', 'cap_gb': {cap_gb}}})); sys.stdout.flush()
            os._exit(0)
        time.sleep(0.2)
threading.Thread(target=watch, daemon=True).start()
zoo = Zoo({str(work / "zoo")!r})
items = checkpoints(zoo)
t0 = time.perf_counter()
ds = ZooGraphs(zoo, items, {str(work / "graphs_cache")!r})
out = {{'graphs': len(ds), 'wall_s': time.perf_counter() - t0}}
"""
    shutil.rmtree(work / "graphs_cache", ignore_errors=True)
    return _child(code, timeout=7200)


def report(build_runs: list[dict], comp: dict, meas: dict | None, command: str) -> None:
    first = build_runs[0] if build_runs else {}
    build_wall = sum(r["wall_s"] for r in build_runs)
    rows = [
        [
            cell,
            c["runs"],
            c["checkpoints"],
            f"{c['batch_wall_s'] / 60:.1f}",
            f"{c['batch_wall_s'] / max(c['runs'], 1):.2f}",
        ]
        for cell, c in comp["cells"].items()
    ]
    md = [
        f"Build: `{first.get('command', '')}` — {len(build_runs)} launch(es), {build_wall / 60:.1f} min in all "
        f"(exit status {', '.join(str(r['rc']) for r in build_runs)}); {comp['runs']} runs ({comp['failed']} "
        f"failed), {comp['checkpoints']} checkpoints, {comp['trajectories']} trajectories, "
        f"{comp['duplicates_dropped']} duplicate checkpoints dropped; {len(comp['datasets'])} datasets x "
        f"{len(comp['backbones'])} backbones.",
        "",
        md_table(["dataset/backbone", "runs", "checkpoints", "batch wall (min)", "s per run"], rows),
        "",
        "![accuracy histograms](zoo_histograms.png)",
    ]
    summary = {
        "runs": comp["runs"],
        "checkpoints": comp["checkpoints"],
        "trajectories": comp["trajectories"],
        "datasets": len(comp["datasets"]),
        "backbones": len(comp["backbones"]),
        "build_wall_s": build_wall,
        "export_bytes": None,
        "read_ckpt_per_s": None,
    }
    if meas:
        ex = meas["export"]
        summary["export_bytes"] = ex["float32"]["bytes"]
        summary["read_ckpt_per_s"] = meas["read_one_ckpt_per_s"]
        md += [
            "",
            md_table(
                ["export", "wall (s)", "size (MB)", "weights per checkpoint (kB)", "shards"],
                [
                    [
                        k,
                        f"{v['wall_s']:.1f}",
                        f"{v['bytes'] / 1e6:.1f}",
                        f"{v['bytes_per_checkpoint'] / 1e3:.1f}",
                        v["shards"],
                    ]
                    for k, v in ex.items()
                ],
            ),
            "",
            f"Read (float32 export): {meas['read_one_ckpt_per_s']:.0f} checkpoints/s one at a time (random order, "
            f"`ZooExport.weights`), {meas['read_batch_ckpt_per_s']:.0f}/s in batches (`iter_weights`); manifest "
            f"check of every file {meas['verify_s']:.1f} s. Peak RSS reading every checkpoint one at a time: "
            f"{meas['read_rss'].get('peak_rss_gb', float('nan')):.2f} GB.",
            "",
            "Neural-graph dataset of the whole zoo (`ZooGraphs`, the encoder's): "
            + (
                f"{meas['graphs']['graphs']} graphs in {meas['graphs']['wall_s']:.0f} s, peak RSS "
                f"{meas['graphs']['peak_rss_gb']:.2f} GB."
                if "graphs" in meas.get("graphs", {})
                else f"not built: {meas.get('graphs', {}).get('error', 'skipped')} "
                f"({meas.get('graphs', {}).get('cap_gb', '')} GB)."
            ),
        ]
    write_results(
        "zoo", {"summary": summary, "composition": comp, "build": build_runs, "measure": meas}, "\n".join(md), command
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", choices=["all", "build", "measure"], default="all")
    ap.add_argument("--work", default=str(WORK))
    ap.add_argument("--data-dir", default=os.environ.get("GNNZOO_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--sample", type=int, default=500, help="checkpoints read one at a time")
    ap.add_argument("--rss-cap-gb", type=float, default=12.0)
    ap.add_argument("--skip-graphs", action="store_true")
    ap.add_argument("overrides", nargs="*", help="extra overrides of the recipe (e.g. hydra.sweeper.n=8)")
    args = ap.parse_args()
    work = Path(args.work)
    if args.phase in ("all", "build"):
        info = build(work, args.data_dir, args.overrides)
        print(f"build: exit {info['rc']}, {info['wall_s'] / 60:.1f} min")
        if args.phase == "build":
            return
    build_runs = json.loads((work / "build.json").read_text()) if (work / "build.json").is_file() else []
    comp = composition(work)
    meas = export_and_read(work, args.sample)
    meas["graphs"] = {"error": "skipped"} if args.skip_graphs else graphs_rss(work, args.rss_cap_gb)
    report(build_runs, comp, meas, "python benchmarks/zoo.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
