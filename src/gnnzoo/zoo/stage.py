"""One helper for every stage whose result is a zoo entry: hash the stage's inputs into its id, skip it when the
zoo has it completed, otherwise compute it and write it atomically (:meth:`Zoo.write`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from gnnzoo.utils.logging import console
from gnnzoo.zoo.ids import hash_id
from gnnzoo.zoo.store import Zoo, ZooEntry


@dataclass
class StageOutput:
    """What a stage computed: its record (status ``completed``), its weights and its extra tensor files."""

    record: dict
    weights: dict[str, torch.Tensor] | None = None
    files: dict[str, dict[str, torch.Tensor]] | None = None


@dataclass
class Stage:
    """A stage's zoo entry, its id, and whether it was already in the zoo (skipped)."""

    entry: ZooEntry
    run_id: str
    skipped: bool


def stage_id(key: dict) -> str:
    """The id of a stage: a hash of everything that determines it (``key``, JSON-able)."""
    return hash_id(key)


def cached_stage(zoo: Zoo, key: dict, compute: Callable[[str], StageOutput], what: str, skip: bool = True) -> Stage:
    """``compute(run_id)`` written to ``zoo`` under ``stage_id(key)``, or the completed entry already there (a
    re-run skips it; ``skip=False`` recomputes). ``what`` names the stage in the console."""
    rid = stage_id(key)
    done = zoo.completed(rid) if skip else None
    if done is not None:
        console.print(f"[yellow]skip[/] {what} {rid}: already completed in {zoo.root}")
        return Stage(done, rid, True)
    out = compute(rid)
    zoo.write(out.record, out.weights, out.files)
    return Stage(zoo[rid], rid, False)
