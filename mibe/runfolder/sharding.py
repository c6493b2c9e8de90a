"""Document shards (`mibe run --shard I/N`, `mibe merge`): the one rule that assigns a document to a
shard, and what a shard's run folder records about it (docs/scale-out.md).

A shard is one of N independent jobs (a SLURM array task, another machine) scoring a part of each
task's documents into its own run folder; `mibe merge` turns the N folders into one ordinary run.
The rule is stable across machines and Python processes (sha256, never Python's salted `hash()`)
and versioned: its name is recorded, and a merge refuses shards cut by different rules. The ranks
of a data-parallel launcher (mibe/runner/parallel.py) split one shard's documents further.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from mibe.types import MibeError

RULE = "sha256(task + NUL + id) mod N, v1"
FIX = "merge the shards first: mibe merge SHARD_RUN... --output-dir RUN (docs/scale-out.md)"


def parse(spec: str) -> tuple[int, int]:
    """`I/N` -> (I, N), with 0 <= I < N; anything else one line."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec or "")
    if not found or int(found[2]) < 1 or int(found[1]) >= int(found[2]):
        raise MibeError(
            f"--shard {spec}: give I/N with N >= 1 shards and I from 0 to N-1 (e.g. --shard 0/4; "
            "under a SLURM array, --shard $SLURM_ARRAY_TASK_ID/N)"
        )
    return int(found[1]), int(found[2])


def assigned(task: str, doc_id: str, n: int) -> int:
    """The shard holding `doc_id` of `task` among `n` (RULE)."""
    digest = hashlib.sha256(f"{task}\0{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def mine(spec: str | None, task: str, doc_id: str) -> bool:
    """Whether this run scores the document: always without --shard."""
    if not spec:
        return True
    index, n = parse(spec)
    return assigned(task, doc_id, n) == index


def record(spec: str, expected: dict[str, list[str]]) -> dict[str, Any]:
    """run.json's and results.json's `shard`: which shard, by which rule, and every task's document ids
    the shard must hold (in the data's order), so `mibe merge --status` needs no data."""
    index, n = parse(spec)
    return {"index": index, "of": n, "rule": RULE, "expected": expected}


def of(results: dict[str, Any]) -> dict[str, Any] | None:
    shard = results.get("shard")
    return shard if isinstance(shard, dict) else None


def label(results: dict[str, Any]) -> str | None:
    """`shard I/N` for a shard's folder (view and audit say it), None for an ordinary run."""
    shard = of(results)
    return f"shard {shard.get('index')}/{shard.get('of')}" if shard else None


def refuse(path: str | Path, results: dict[str, Any], command: str) -> None:
    """leaderboard, compare, rescore and judge read whole runs: a shard holds a part of each task."""
    shown = label(results)
    if shown:
        raise MibeError(f"{path}: {shown}, a part of a run; `mibe {command}` reads whole runs: {FIX}")
