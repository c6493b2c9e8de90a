"""Few-shot draws (`--fewshot-seeds 1,2,3`): one task scored once per shot draw, then summarised.

Each draw is the one-task pipeline run on a Plan whose `draw` is the shot seed: the same documents,
the same everything, only the shots differ. All draws append to the task's one samples file, each
row with its `draw`, so resume works per draw (done ids are per (draw, id)) and adding seeds to a
finished run scores only the new draws. The task's entry then gives, per metric, the mean and sd over
draws and the two-level interval of `mibe.scoring.draw_stats` (documents and draws both resampled).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.runfolder import folder
from mibe.runner import pipeline, task_plan
from mibe.scoring import calibration, draw_stats, kinds
from mibe.scoring.stats import clusters_of
from mibe.types import Backend, Doc, RunConfig

INTERVAL = "two-level bootstrap over documents and draws (docs/statistics.md)"


def evaluate(
    p: task_plan.Plan, backend: Backend, config: RunConfig, run_dir: Path, pool: Sequence[Doc]
) -> tuple[dict | None, dict]:
    """`pipeline.evaluate` once per draw, then one entry for the task (None off rank 0)."""
    scored: dict[int, pipeline.Scored | None] = {}
    timing: dict[str, Any] = {"wall_s": 0.0, "draws": {}}
    for seed in config.fewshot_seeds:
        scored[seed], timing["draws"][str(seed)] = pipeline.evaluate_scored(
            dataclasses.replace(p, draw=seed), backend, config, run_dir, pool
        )
        timing["wall_s"] = round(timing["wall_s"] + timing["draws"][str(seed)]["wall_s"], 3)
    if any(e is None for e in scored.values()):  # a data-parallel rank other than 0
        return None, timing
    return combine(p, config, folder.samples_path(run_dir, p.task.name), scored), timing  # type: ignore[arg-type]


def matrices(
    p: task_plan.Plan, drawn: Sequence[Sequence[dict]], config: RunConfig
) -> tuple[list[Any], dict[str, Any]]:
    """Each draw's per-document statistics matrix and the metrics as functions of its column sums."""
    parser = task_plan.score_parser(p)
    xs, stat_of = [], {}
    for rows in drawn:
        if not kinds.get(p.task.answer_type).labelled and any(folder.is_redacted(r) for r in rows):
            # --redact-samples: span, entity and text rows keep their statistics, not their text.
            kept = folder.redact_rows(list(rows), p.task, parser, config.bertscore_model)
            x, stat_of = kinds.stats_matrix(p.task.answer_type, p.task.metrics, [r["stats"] for r in kept])
            xs.append(x)
            continue
        golds = [_value(r["gold"]) for r in rows]
        preds = [_value(r["prediction"]) for r in rows]
        x, stat_of, _ = kinds.get(p.task.answer_type).stats(
            golds,
            preds,
            p.task.choices,
            parser,
            wanted=p.task.metrics,
            bertscore_model=config.bertscore_model,
        )
        xs.append(x)
    return xs, {m: stat_of[m] for m in p.task.metrics if m in stat_of}


def _value(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def combine(p: task_plan.Plan, config: RunConfig, path: Path, scored: dict[int, pipeline.Scored]) -> dict:
    """One results.json entry: the first draw's bookkeeping, each draw's metrics under `draws`, and
    per metric the mean over draws as `value`, the two-level interval as `ci95`, `sd` and `values`.
    Each draw's statistics are those its own entry was computed from, never computed again."""
    seeds = list(scored)
    entries = {seed: s.entry for seed, s in scored.items()}
    drawn = pipeline.plan_rows(p, path, "draw", seeds)
    xs = [scored[seed].x for seed in seeds]
    stat_of = {m: scored[seeds[0]].stat_of[m] for m in p.task.metrics if m in scored[seeds[0]].stat_of}
    clusters = clusters_of(drawn[0])
    summary = draw_stats.summarise_draws(xs, stat_of, config.bootstrap, config.seed, clusters)
    first = entries[seeds[0]]
    metrics = draw_stats.summary_metrics(first["metrics"], summary)
    keep = ("metrics", "per_class", "parse_failures", "truncated", "calibration")
    return {
        **first,
        "metrics": metrics,
        "per_class": None,
        "calibration": calibration.over_draws(drawn, p.task.choices, config.bootstrap, config.seed),
        "parse_failures": sum(e["parse_failures"] for e in entries.values()),
        "truncated": sum(e["truncated"] for e in entries.values()),
        "fewshot_seeds": seeds,
        "draw_interval": INTERVAL,
        "draws": {str(seed): {k: e.get(k) for k in keep} for seed, e in entries.items()},
    }
