"""The checkpoints of a zoo: every run's best-val weights and snapshots, each with its trajectory and weight digest,
identical weights kept once.

A **trajectory** is the set of runs that share weights: one configuration trained to different lengths (or with
another patience) follows one path of weights, so its runs are one trajectory (``gnnzoo.zoo.ids.trajectory_id``).
An entry made from its parents' weights (a soup, a ticket, a generated model) joins their trajectories. Anything
that learns from the zoo splits by trajectory (``gnnzoo.zoo.splits``), never by run or checkpoint.

**Duplicates.** A run's best-val weights and its snapshot of the same epoch are one checkpoint (both flags set);
a checkpoint whose weights equal one listed before (a twin run's snapshot) is dropped and counted. Digests come
from the records (written since gnnzoo 0.2) or, for older zoos, from reading the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from gnnzoo.zoo.ids import hash_id, tensors_digest, trajectory_id
from gnnzoo.zoo.record import record_engine
from gnnzoo.zoo.store import Zoo, ZooEntry, load_weights

# kinds whose weights are made from their parents' weights (mixed, masked, sampled near them): one trajectory with
# them. An encoder or a generator learns *from* its parents; its own weights are not theirs.
WEIGHT_DERIVED = ("soup", "pruned", "generated")


@dataclass(frozen=True)
class ZooCheckpoint:
    """One checkpoint: the weights of run ``run_id`` after ``epoch`` epochs (1-based)."""

    id: str
    run_id: str
    trajectory: str
    epoch: int
    best: bool  # the run's best-val weights
    snapshot: bool  # a snapshot (zoo.snapshot_every)
    file: str  # relative to the entry folder
    digest: str
    dataset: str
    backbone: str


@dataclass
class CheckpointList:
    items: list[ZooCheckpoint]
    duplicates: int = 0  # checkpoints dropped because their weights equal a listed one
    entries: dict[str, ZooEntry] = field(default_factory=dict)  # run id -> entry, for every listed run


def base_trajectory(rec: dict) -> str:
    """A record's own trajectory: the stored one, else computed from its config (zoos written before trajectories
    existed); a derived entry starts as its own trajectory and joins its parents' in :func:`trajectories`."""
    if rec.get("trajectory"):
        return rec["trajectory"]
    if rec.get("kind", "run") == "run" and isinstance(rec.get("config"), dict):
        return trajectory_id(rec["config"], record_engine(rec))
    return hash_id({"entry": rec["run_id"]})


def trajectories(records: Iterable[dict]) -> dict[str, str]:
    """run id -> trajectory, derived entries merged with their parents (union-find; the smallest key names it)."""
    records = list(records)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    own = {r["run_id"]: base_trajectory(r) for r in records}
    for r in records:
        if r.get("kind", "run") not in WEIGHT_DERIVED:
            continue
        for p in r.get("parents") or r.get("ingredients") or []:
            union(own[r["run_id"]], own.get(p, hash_id({"entry": p})))
    return {rid: find(t) for rid, t in own.items()}


def record_field(rec: dict, key: str) -> Any:
    """A record field, or a dotted config key (``optimizer.lr``) read from the record's config."""
    if "." not in key:
        return rec.get(key)
    tree: Any = rec.get("config") or {}
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _matches(rec: dict, where: dict[str, Any]) -> bool:
    for key, want in where.items():
        have = record_field(rec, key)
        if isinstance(want, (list, tuple, set)):
            if have not in want and str(have) not in {str(w) for w in want}:
                return False
        elif have != want and str(have) != str(want):
            return False
    return True


def list_checkpoints(
    zoo: Zoo,
    kinds: Sequence[str] = ("run",),
    where: dict[str, Any] | None = None,
    snapshots: bool = True,
    dedupe: bool = True,
) -> CheckpointList:
    """The completed entries' checkpoints (``kinds``, and record fields equal to ``where``: e.g.
    ``{"dataset": ["cora", "citeseer"], "backbone": "gcn"}``), sorted by run and epoch, duplicates dropped."""
    where = dict(where or {})
    entries = [e for e in zoo.entries() if e.status == "completed"]
    traj = trajectories(e.record for e in entries)
    chosen = [e for e in entries if e.record.get("kind", "run") in kinds and _matches(e.record, where)]
    out: list[ZooCheckpoint] = []
    seen: dict[str, int] = {}  # digest -> index in out
    dropped = 0
    for e in sorted(chosen, key=lambda e: e.run_id):
        rec = e.record
        cands: list[tuple[int, bool, str, str | None]] = []  # epoch, best, file, digest
        if rec.get("best_epoch") is not None:
            cands.append(
                (int(rec["best_epoch"]) + 1, True, e.weights_path().name, (rec.get("weights") or {}).get("sha256"))
            )
        if snapshots:
            cands += [(int(s["epoch"]), False, s["file"], s.get("sha256")) for s in rec.get("snapshots") or []]
        for epoch, best, rel, digest in sorted(cands, key=lambda c: (c[0], not c[1])):
            digest = digest or tensors_digest(load_weights(e.path / rel))
            k = seen.get(digest)
            if k is not None and dedupe:
                prev = out[k]
                if prev.run_id == e.run_id and prev.epoch == epoch:  # best-val weights = that epoch's snapshot
                    out[k] = ZooCheckpoint(**{**prev.__dict__, "best": prev.best or best, "snapshot": True})
                else:
                    dropped += 1
                continue
            seen[digest] = len(out)
            out.append(
                ZooCheckpoint(
                    id=f"{e.run_id}-{epoch:04d}"
                    + ("" if best or not any(c[0] == epoch and c[1] for c in cands) else "s"),
                    run_id=e.run_id,
                    trajectory=traj[e.run_id],
                    epoch=epoch,
                    best=best,
                    snapshot=not best,
                    file=rel,
                    digest=digest,
                    dataset=str(rec.get("dataset")),
                    backbone=str(rec.get("backbone")),
                )
            )
    return CheckpointList(out, dropped, {e.run_id: e for e in chosen})
