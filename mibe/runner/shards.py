"""One task of a shard (`mibe run --shard I/N`): its documents scored into samples (under every few-shot
draw and every ordering of the options), counted, never summarised. Statistics need every document,
so `mibe merge` computes them (mibe/runner/merge.py); a shard's results.json entry holds counts only
and an empty `metrics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.runfolder import folder, sharding
from mibe.runner import permutations, pipeline, task_plan
from mibe.types import Backend, Doc, RunConfig


def expected(p: task_plan.Plan, spec: str) -> list[str]:
    """The task's document ids this shard holds, in the data's order."""
    return [d.id for d in p.docs if sharding.mine(spec, p.task.name, d.id)]


def evaluate(
    p: task_plan.Plan, backend: Backend, config: RunConfig, run_dir: Path, pool: Sequence[Doc]
) -> tuple[dict | None, dict]:
    """The pipeline once per few-shot draw and ordering of the options (or once), then the task's
    count-only entry (None off rank 0)."""
    timing: dict[str, Any] = {"wall_s": 0.0, "tokens_per_s": 0.0}
    gathered = True
    for seed in config.fewshot_seeds or (None,):
        for k in permutations.orderings(p.protocol):
            plan = dataclasses.replace(p, draw=seed) if k is None else permutations.ordering(p, k)
            entry, took = pipeline.evaluate(plan, backend, config, run_dir, pool)
            gathered = gathered and entry is not None
            timing["wall_s"] = round(timing["wall_s"] + took["wall_s"], 3)
    if not gathered:
        return None, timing
    rows = folder.read_samples(folder.samples_path(run_dir, p.task.name))
    mine = set(expected(p, config.shard or ""))
    rows = [r for r in rows if r["id"] in mine]
    entry = {
        "protocol": p.protocol,
        "answer_type": p.task.answer_type,
        "n": len({r["id"] for r in rows}),
        "n_skipped_rows": p.docset.n_skipped,
        "first_skipped_row": p.docset.first_problem,
        "parse_failures": sum(1 for r in rows if r.get("parse_failed")),
        "truncated": sum(1 for r in rows if r.get("truncated_tokens")),
        "invented": any(d.invented for d in p.docs),
        "partial": config.limit is not None and config.limit < len(p.docset.docs),
        "task_file": str(p.task.path),
        "domain": p.task.domain,
        "metrics": {},  # computed by `mibe merge`, over every shard's documents
    }
    if config.fewshot_seeds:
        entry["fewshot_seeds"] = list(config.fewshot_seeds)
    if p.protocol.get("choice_permutations"):
        entry["choice_permutations"] = p.protocol["choice_permutations"]
    return entry, timing
