"""Shared helpers: machine info, result files (benchmarks/results/<name>.json + .md), config composition."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def compose(overrides: Sequence[str] = ()):
    from hydra import compose as _compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return _compose("train", overrides=list(overrides))


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_results(name: str, payload: dict, markdown: str, command: str | None = None) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n")
    m = machine()
    header = (f"# {name}\n\nMeasured {payload['date']} on {m['processor']}, {m['cpus']} CPUs, torch "
              f"{m['torch']} ({m['torch_threads']} threads){', GPU ' + m['cuda'] if m['cuda'] else ''}. "
              f"Produced by `{command or f'python benchmarks/{name}.py'}`.\n\n")
    (RESULTS / f"{name}.md").write_text(header + markdown.rstrip() + "\n")
    print(header + markdown)


def _jsonable(o):
    """numpy / torch scalars and anything else json cannot write."""
    return o.item() if hasattr(o, "item") else str(o)


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    import statistics

    xs = [x for x in xs if x == x]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def ci95(xs: Sequence[float]) -> float:
    """Half-width of the 95% t-interval of the mean of ``xs`` (nan with fewer than two values)."""
    import statistics

    from scipy.stats import t

    xs = [x for x in xs if x == x]
    if len(xs) < 2:
        return float("nan")
    return float(t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / len(xs) ** 0.5)


def train_multirun(overrides: Sequence[str], zoo: Path, work: Path, data_dir: str, tag: str, max_models: int = 180) -> float:
    """``train.py -m hydra/launcher=batched`` with ``overrides`` into ``zoo`` (cache and sweep folders under
    ``work``); its wall time. A failed sweep stops the benchmark with the sweep's stderr."""
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=batched", f"hydra.launcher.max_models={max_models}",
           "hydra.launcher.progress=false", *overrides, f"paths.zoo_dir={zoo}", f"paths.data_dir={data_dir}",
           f"paths.cache_dir={work / 'cache'}", f"hydra.sweep.dir={work / 'sweeps' / tag}"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:])}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0
