"""The benchmark harness: machine info, result files (``benchmarks/results/<name>.json`` + ``.md``), config
composition, cached jobs, one worker pool, 95% intervals and paired-difference tables.

* :class:`JobCache` keys a job by a hash of everything that determines it: the benchmark script's source, the
  library's source (``src/gnnzoo``, ``src/hydra_plugins``, ``conf``) and the job's settings (every argument and
  method setting, passed as one JSON-able dict). The payload stores those settings and the code digest, and a
  lookup checks them, so a cached job can never be reused under other settings or other code.
* :func:`run_jobs` runs jobs in ``jobs`` spawned worker processes with the same number of torch threads each
  (compared sides always get the same thread budget); a job stops on its epoch/step budget, never on the clock.
* :func:`ci95`, :func:`paired` and :func:`paired_rows`: the one t-interval, the per-seed paired difference
  ``{"mean", "ci95", "holds_zero", "n"}`` and its table rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
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
    payload = {
        "benchmark": name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n")
    m = machine()
    header = (
        f"# {name}\n\nMeasured {payload['date']} on {m['processor']}, {m['cpus']} CPUs, torch "
        f"{m['torch']} ({m['torch_threads']} threads){', GPU ' + m['cuda'] if m['cuda'] else ''}. "
        f"Produced by `{command or f'python benchmarks/{name}.py'}`.\n\n"
    )
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


def train_py(args: Sequence[str], threads: int = 2) -> float:
    """``python train.py *args`` from the repository root with ``threads`` OpenMP threads; its wall time. A failed
    run stops the benchmark with the command and its stderr."""
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:])}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0


def train_multirun(
    overrides: Sequence[str], zoo: Path, work: Path, data_dir: str, tag: str, max_models: int = 180
) -> float:
    """``train.py -m hydra/launcher=batched`` with ``overrides`` into ``zoo`` (cache and sweep folders under
    ``work``); its wall time. A failed sweep stops the benchmark with the sweep's stderr."""
    return train_py(
        [
            "-m",
            "hydra/launcher=batched",
            f"hydra.launcher.max_models={max_models}",
            "hydra.launcher.progress=false",
            *overrides,
            f"paths.zoo_dir={zoo}",
            f"paths.data_dir={data_dir}",
            f"paths.cache_dir={work / 'cache'}",
            f"hydra.sweep.dir={work / 'sweeps' / tag}",
        ]
    )


# ------------------------------------------------------------------------------------------------ cached jobs
CODE_ROOTS = ("src/gnnzoo", "src/hydra_plugins", "conf")


@functools.lru_cache(maxsize=None)
def code_digest(script: str, exclude: tuple[str, ...] = ()) -> dict:
    """sha256 of the benchmark script and of every source/config file of the library (sorted by path), leaving out
    the library folders in ``exclude`` (paths relative to the repository: code that cannot change the job's result,
    e.g. the search loop for a table of trained runs)."""
    lib = hashlib.sha256()
    for root in CODE_ROOTS:
        for f in sorted((ROOT / root).rglob("*")):
            rel = f.relative_to(ROOT).as_posix()
            if any(rel == x or rel.startswith(x.rstrip("/") + "/") for x in exclude):
                continue
            if f.is_file() and f.suffix in (".py", ".yaml") and "__pycache__" not in f.parts:
                lib.update(str(f.relative_to(ROOT)).encode())
                lib.update(f.read_bytes())
    return {"script": hashlib.sha256(Path(script).read_bytes()).hexdigest()[:16], "library": lib.hexdigest()[:16]}


def _canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, default=_jsonable)


class JobCache:
    """``JobCache(work, __file__).run(settings, fn)``: ``fn()``'s JSON result, cached under
    ``<work>/jobs/<hash>.json`` where the hash covers the script, the library (less ``exclude``, see
    :func:`code_digest`) and ``settings``."""

    def __init__(self, work: str | Path, script: str | Path, exclude: tuple[str, ...] = ()):
        self.dir = Path(work) / "jobs"
        self.script = str(Path(script).resolve())
        self.exclude = tuple(exclude)

    def key(self, settings: dict) -> str:
        code = code_digest(self.script, self.exclude)
        blob = _canonical({"script": Path(self.script).name, "code": code, "settings": settings})
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def path(self, settings: dict) -> Path:
        return self.dir / f"{self.key(settings)}.json"

    def get(self, settings: dict) -> dict | None:
        f = self.path(settings)
        if not f.is_file():
            return None
        payload = json.loads(f.read_text())
        if _canonical(payload.get("settings")) != _canonical(json.loads(_canonical(settings))) or payload.get(
            "code"
        ) != code_digest(self.script, self.exclude):
            raise SystemExit(f"cached job {f} was stored under other settings or code; delete it")
        return payload

    def stored(self, settings: dict) -> dict | None:
        """The payload cached under exactly ``settings`` by *any* version of the code (None if there is none); its
        ``code`` field says which. For re-reporting finished jobs after the code moved on, with the code versions in
        the report (``benchmarks/encoder.py --stored``), never for silent reuse."""
        want = _canonical(json.loads(_canonical(settings)))
        for f in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            payload = json.loads(f.read_text())
            if _canonical(payload.get("settings")) == want:
                return payload
        return None

    def run(self, settings: dict, fn: Callable[[], dict]) -> dict:
        """The cached payload ``{"key", "settings", "code", "result", "job_wall_s"}`` (computed now if missing)."""
        hit = self.get(settings)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        result = fn()
        payload = {
            "key": self.key(settings),
            "settings": json.loads(_canonical(settings)),
            "code": code_digest(self.script, self.exclude),
            "job_wall_s": time.perf_counter() - t0,
            "result": result,
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(settings).with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, default=_jsonable))
        tmp.replace(self.path(settings))
        return payload


# ------------------------------------------------------------------------------------------------ worker pool
def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def run_jobs(
    fn: Callable[[Any], dict],
    items: Iterable[Any],
    jobs: int = 2,
    threads: int = 1,
    label: Callable[[Any, dict], str] | None = None,
) -> list[dict]:
    """``fn(item)`` for every item in ``jobs`` spawned worker processes with ``threads`` torch threads each (the
    same for every job, so compared sides get the same thread budget); results in completion order, a progress
    line per job. ``jobs=1`` runs in this process (same thread setting)."""
    items = list(items)
    out: list[dict] = []
    t0 = time.perf_counter()

    def note(item, res):
        out.append(res)
        what = label(item, res) if label else ""
        print(f"[{time.perf_counter() - t0:7.0f}s] {len(out)}/{len(items)} {what}", flush=True)

    if jobs <= 1:
        _init_worker(threads)
        for item in items:
            note(item, fn(item))
        return out
    import multiprocessing as mp
    import signal

    with mp.get_context("spawn").Pool(jobs, initializer=_init_worker, initargs=(threads,)) as pool:
        # a SIGTERM to the benchmark (kill, pkill) takes its workers with it: orphaned workers would finish their
        # jobs beside the next run and skew its timings
        previous = signal.signal(signal.SIGTERM, lambda *_: (pool.terminate(), sys.exit(128 + signal.SIGTERM)))
        try:
            for item, res in pool.imap_unordered(_tagged(fn), [(i, it) for i, it in enumerate(items)]):
                note(items[item], res)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return out


class _tagged:
    """``fn`` wrapped to return its item's index with the result (picklable for the pool)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, pair):
        i, item = pair
        return i, self.fn(item)


# ------------------------------------------------------------------------------------------------ statistics
def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """The paired difference ``a - b`` (per seed): ``{"mean", "ci95", "holds_zero", "n"}`` (nan-pairs dropped)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples of different lengths ({len(a)} vs {len(b)})")
    d = [x - y for x, y in zip(a, b) if x == x and y == y]
    mu, h = mean_std(d)[0], ci95(d)
    return {"mean": mu, "ci95": h, "holds_zero": bool(h != h or abs(mu) <= h), "n": len(d)}


def paired_rows(comparisons: Iterable[tuple[Sequence[str], dict]], digits: int = 2) -> list[list[str]]:
    """Rows ``[*labels, "mean ± ci", "yes/no"]`` of a paired-difference table (header: labels + "mean ± 95% CI",
    "interval holds 0")."""
    rows = []
    for labels, d in comparisons:
        ci = "n/a" if d["ci95"] != d["ci95"] else f"{d['ci95']:.{digits}f}"
        rows.append([*labels, f"{d['mean']:+.{digits}f} ± {ci}", "yes" if d["holds_zero"] else "no"])
    return rows
