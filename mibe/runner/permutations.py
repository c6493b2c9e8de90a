"""Answer-order sensitivity (`--choice-permutations K`): a letter task scored once per ordering of its
options, then summarised.

Ordering k is the cyclic rotation by k (k = 0 is the identity, the prompts of a run without the flag
byte for byte): position i shows the option that was at (i + k) mod n, and the gold letter follows its
option (`mibe.prompts.permute`). Each ordering is the one-task pipeline run on a Plan whose `docs`
are the rotated documents; all orderings append to the task's one samples file, each row with its
`permutation` and `option_order`, so resume works per ordering. The task's entry gives, per metric,
each ordering's value, their mean ± sd and the two-level interval over documents and orderings (the
few-shot draws' method, `mibe.scoring.draw_stats`), plus consistency and position bias
(`mibe.scoring.positions`). Combinations: `--scoring loglikelihood`, `--num-fewshot`, data-parallel
ranks and `--shard I/N` (each shard scores its documents under every ordering; `mibe merge` combines
them here) are allowed; `--fewshot-seeds` is refused by the CLI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe import prompts
from mibe.runfolder import folder
from mibe.runner import pipeline, shot_draws, task_plan
from mibe.scoring import calibration, draw_stats, positions
from mibe.scoring.stats import clusters_of
from mibe.types import Backend, Doc, RunConfig

INTERVAL = "two-level bootstrap over documents and option orderings (docs/statistics.md)"


def evaluate(
    p: task_plan.Plan, backend: Backend, config: RunConfig, run_dir: Path, pool: Sequence[Doc]
) -> tuple[dict | None, dict]:
    """`pipeline.evaluate` once per ordering, then one entry for the task (None off rank 0)."""
    entries: dict[int, dict | None] = {}
    timing: dict[str, Any] = {"wall_s": 0.0, "permutations": {}}
    for k in range(p.protocol["choice_permutations"]):
        entries[k], timing["permutations"][str(k)] = pipeline.evaluate(
            ordering(p, k), backend, config, run_dir, pool
        )
        timing["wall_s"] = round(timing["wall_s"] + timing["permutations"][str(k)]["wall_s"], 3)
    if any(e is None for e in entries.values()):  # a data-parallel rank other than 0
        return None, timing
    return combine(p, config, folder.samples_path(run_dir, p.task.name), entries), timing  # type: ignore[arg-type]


def ordering(p: task_plan.Plan, k: int) -> task_plan.Plan:
    """The plan of ordering k: the documents with their options rotated by k (k = 0: unchanged)."""
    return dataclasses.replace(p, permutation=k, docs=[prompts.permute(d, k, p.task.choices) for d in p.docs])


def orderings(protocol: dict) -> list[int | None]:
    """The orderings a task's protocol scores: 0..K-1 under --choice-permutations K, else [None]."""
    k = protocol.get("choice_permutations")
    return list(range(k)) if k else [None]


def combine(p: task_plan.Plan, config: RunConfig, path: Path, entries: dict[int, dict]) -> dict:
    """One results.json entry: the identity's bookkeeping, each ordering's metrics under
    `permutations`, per metric the mean over orderings as `value` with `sd`, `values` and the
    two-level interval as `ci95`, and `consistency` and `position_bias`."""
    ks = list(entries)
    ordered = pipeline.plan_rows(p, path, "permutation", ks)
    xs, stat_of = shot_draws.matrices(p, ordered, config)
    summary = draw_stats.summarise_draws(xs, stat_of, config.bootstrap, config.seed, clusters_of(ordered[0]))
    first = entries[ks[0]]
    keep = ("metrics", "per_class", "parse_failures", "truncated", "calibration")
    letters = list(p.task.choices)
    return {
        **first,
        "metrics": draw_stats.summary_metrics(first["metrics"], summary),
        "per_class": None,
        "calibration": calibration.over_draws(ordered, p.task.choices, config.bootstrap, config.seed),
        "parse_failures": sum(e["parse_failures"] for e in entries.values()),
        "truncated": sum(e["truncated"] for e in entries.values()),
        "choice_permutations": len(ks),
        "permutation_interval": INTERVAL,
        "consistency": positions.consistency(ordered, letters),
        "position_bias": positions.position_bias([r for rows in ordered for r in rows], letters),
        "permutations": {str(k): {key: e.get(key) for key in keep} for k, e in entries.items()},
    }
