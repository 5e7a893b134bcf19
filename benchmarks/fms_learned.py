"""Learned weight features for the FMS benchmark (issue 32; used by ``benchmarks/fms.py`` for ``fms_learned``).

Per searched cell (dataset/backbone) one neural-graph encoder (``encoder=ng_gnn``, the encoder benchmark's budget:
30 epochs, patience 8, ~500 training checkpoints per epoch, 4 per validation trajectory) is trained with the
README's ``train.py encoder=...`` on the tables of the *other* datasets of the same backbone (never the searched
dataset: for pubmed/gcn, the cora/gcn and citeseer/gcn tables), in a zoo that links their runs. Its embedding
(``TrainedEncoder.embed``) of every snapshot of the searched table and of the reference table replaces their
``stat`` features; the searched dataset's input basis is computed from its data, as the sweeper does for an
encoder trained on other datasets. The search itself is ``fms`` unchanged (k = 4 principal directions of the
reference table's features, the guard).

Cached under the settings (the training tables' settings included), this module and the library less the search
code (which cannot change an encoder or its embeddings).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from _common import JobCache, compose, train_py
from fms_tables import NOT_IN_TABLE, table_settings

ENCODER = [
    "encoder=ng_gnn",
    "encoder.epochs=30",
    "encoder.patience=8",
    "encoder.batch_size=16",
    "encoder.val_per_trajectory=4",
    "logger=none",
    "extras.print_config=false",
    "trainer.enable_progress_bar=false",
]
GRAPHS_PER_EPOCH = 500  # training checkpoints per epoch: per_trajectory = round(500 / training trajectories)
DATASETS = ("cora", "citeseer", "pubmed")


def training_cells(cell: str, available: tuple[str, ...] = DATASETS) -> list[str]:
    """The tables an encoder for ``cell`` learns from: the same backbone on every other dataset."""
    ds, bb = cell.split("/")
    return [f"{d}/{bb}" for d in available if d != ds]


def learned_settings(cell: str, reference: str, epochs: int, smoke: bool) -> dict:
    train = training_cells(cell)
    return {
        "kind": "learned_features",
        "cell": cell,
        "reference": reference,
        "train_tables": [table_settings(c, epochs, smoke) for c in train],
        "read_tables": [table_settings(c, epochs, smoke) for c in dict.fromkeys([cell, reference])],
        "encoder": ENCODER,
        "graphs_per_epoch": GRAPHS_PER_EPOCH,
        "train_split": {"by": "random", "fractions": [0.7, 0.15, 0.15], "seed": 0},
    }


def learned_features(settings: dict, tables: dict, work: Path, data_dir: str) -> dict:
    """The cached result of :func:`_compute` (``tables``: cell -> table, for every cell the settings name)."""
    cache = JobCache(work, __file__, NOT_IN_TABLE)
    return cache.run(settings, lambda: _compute(settings, tables, work, data_dir))["result"]


def stored_learned_features(settings: dict, work: Path) -> dict:
    """The learned features cached under exactly ``settings`` by any version of the code (``--from-cache``), with
    that version's digest as ``code``; stops if there are none."""
    payload = JobCache(work, __file__, NOT_IN_TABLE).stored(settings)
    if payload is None:
        raise SystemExit(f"--from-cache: no cached learned features for {settings['cell']}; run without --from-cache")
    return {**payload["result"], "code": payload["code"]}


def _compute(settings: dict, tables: dict, work: Path, data_dir: str) -> dict:
    import torch
    from omegaconf import OmegaConf

    from gnnzoo.weightspace.encoder import TrainedEncoder
    from gnnzoo.zoo import Zoo

    cell, bb = settings["cell"], settings["cell"].split("/")[1]
    train = [t["cell"] for t in settings["train_tables"]]
    if not data_dir:
        raise SystemExit("learned features need the datasets (--data-dir) to train the encoder")
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    root = work / "learned" / f"{cell.replace('/', '_')}_{tag}"
    zoo_dir = root / "zoo"
    zoo_dir.mkdir(parents=True, exist_ok=True)
    trajectories = 0
    for c in train:  # the training tables' runs, linked (read-only) into the encoder's zoo
        for r in tables[c]["runs"].values():
            link = zoo_dir / r["run_id"]
            if not link.exists():
                link.symlink_to(Path(tables[c]["zoo"]) / r["run_id"], target_is_directory=True)
            trajectories += 1
    split = settings["train_split"]
    per_trajectory = max(1, round(settings["graphs_per_epoch"] / (split["fractions"][0] * trajectories)))
    cmd = [
        *settings["encoder"],
        f"encoder.zoo.backbones=[{bb}]",
        f"encoder.split.by={split['by']}",
        f"encoder.split.fractions=[{','.join(map(str, split['fractions']))}]",
        f"encoder.split.seed={split['seed']}",
        f"encoder.per_trajectory={per_trajectory}",
        f"paths.zoo_dir={zoo_dir}",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={work / 'cache'}",
        f"hydra.run.dir={root / 'run'}",
    ]
    print(f"  encoder for {cell} on {', '.join(train)} ({trajectories} trajectories) ...", flush=True)
    train_wall = train_py(cmd)
    zoo = Zoo(zoo_dir)
    (rid,) = zoo.df(kind="encoder", status="completed").run_id.tolist()
    rec = zoo[rid].record
    # the searched dataset, never trained on: its input basis from its data (as the sweeper does)
    ds = cell.split("/")[0]
    cfg = compose([f"dataset={ds}", f"paths.data_dir={data_dir}", f"paths.cache_dir={work / 'cache'}"])
    enc = TrainedEncoder.from_zoo(zoo, rid, {ds: OmegaConf.to_container(cfg.dataset, resolve=True)}, cfg.paths)
    t0 = time.perf_counter()
    feats = {}
    for c in dict.fromkeys([cell, settings["reference"]]):
        z = Zoo(tables[c]["zoo"])
        feats[c] = {}
        for key, r in tables[c]["runs"].items():
            e = z.get(r["run_id"])
            epochs = list(r["feats"])
            with torch.no_grad():
                emb = enc.embed([e.snapshot(int(s)) for s in epochs], bb)
            feats[c][key] = {s: v.tolist() for s, v in zip(epochs, emb)}
    metrics = rec.get("metrics") or {}
    return {
        "cell": cell,
        "trained_on": train,
        "encoder_run_id": rid,
        "encoder_zoo": str(zoo_dir),
        "per_trajectory": per_trajectory,
        "encoder_val_tau": metrics.get("encoder/val_tau"),
        "encoder_test_tau": metrics.get("encoder/test_tau"),
        "encoder_epochs_run": metrics.get("epochs_run"),
        "encoder_best_epoch": metrics.get("best_epoch"),
        "encoder_train_wall_s": train_wall,
        "embed_wall_s": time.perf_counter() - t0,
        "embed_dim": int(enc.model.embed_dim),
        "feats": feats,
    }


def with_features(table: dict, feats: dict) -> dict:
    """``table`` with its runs' snapshot features replaced by ``feats`` (key -> epoch -> vector)."""
    return {**table, "runs": {k: {**r, "feats": feats[k]} for k, r in table["runs"].items()}}
