"""`mibe view`: one run's samples, or two runs' differences, as one self-contained HTML page.

The page is rendered from templates/view.html with autoescape on; its stylesheet and script are
inlined, and the samples are embedded once as JSON (view_data.py decides what they hold) and drawn by
the script a page of rows at a time, with `textContent` only, so a model output holding `<script>`
shows as text and runs nothing. Here: which documents two runs disagree on (paired as `mibe compare`
pairs them, pairing.py), each task's paired test (compare's own report, Holm adjustment included),
and the static parts of the page as plain values for the template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mibe.boards import pages
from mibe.boards.pairing import pair_rows
from mibe.boards.view_data import (
    LABEL_TYPES,
    PAGE_ROWS,
    SINGLE_LABEL,
    ViewRun,
    confusion,
    normal,
    page_data,
    row_key,
    task_meta,
)
from mibe.textout import p_text
from mibe.types import MibeError

SCORE_TOLERANCE = 1e-9
"""Two scores closer than this are the same score (floating-point noise of a re-run metric)."""


@dataclass(frozen=True)
class TaskDiff:
    """Two runs on one task: the documents they share and the ones they disagree on."""

    task: str
    answer_type: str
    rule: str  # what "disagree" means for this task, in words
    shared: int  # documents with the same id (and the same gold) in both runs
    gold_mismatch: int  # same id, different gold: different data, left out
    differing: tuple[str, ...]  # row keys (pairing.py), in run A's order
    # The task's main metric as `mibe compare` reports it (its metric entry: A, B, A - B, raw p, the
    # Holm-adjusted p); None for runs not read from folders.
    tested: Mapping[str, Any] | None = None
    metric: str | None = None
    note: str | None = None  # why it can't be tested
    family: int | None = None  # the number of tests compare's Holm adjustment ran over


# ---------------------------------------------------------------------------------------------------
# Pairing two runs


def _disagree(answer_type: str, ra: Mapping[str, Any], rb: Mapping[str, Any]) -> bool:
    # Label tasks: the predictions differ. Free-text tasks: the per-document scores differ (two
    # wordings of one answer are not a difference worth reading). Rows without predictions (redacted
    # samples) fall back to scores.
    if answer_type in LABEL_TYPES and "prediction" in ra and "prediction" in rb:
        return normal(ra["prediction"], answer_type) != normal(rb["prediction"], answer_type)
    sa, sb = ra.get("score"), rb.get("score")
    if sa is None or sb is None:
        return (sa is None) != (sb is None)
    return abs(float(sa) - float(sb)) > SCORE_TOLERANCE


def _rule(answer_type: str) -> str:
    if answer_type in LABEL_TYPES:
        return "predicted labels differ"
    return f"per-document scores differ by more than {SCORE_TOLERANCE:g}"


def diff_task(
    task: str, answer_type: str, rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]]
) -> TaskDiff:
    """Pair one task's documents as compare does (id and gold; a run of several draws: draw with draw)
    and list those the runs disagree on."""
    pairs, mismatched = pair_rows(rows_a, rows_b, key=row_key)
    differing = tuple(row_key(a) for a, b in pairs if _disagree(answer_type, a, b))
    return TaskDiff(task, answer_type, _rule(answer_type), len(pairs), mismatched, differing)


def _main_metric(task: str, metrics: Sequence[str]) -> str | None:
    """The metric a task's paired test is shown for: the paper's first, else the task's first."""
    from mibe.boards.table import LOWER_IS_BETTER, PAPER_METRICS, is_judge

    for metric in (*PAPER_METRICS.get(task, ()), *metrics):
        if metric in metrics and metric not in LOWER_IS_BETTER and not is_judge(metric):
            return metric
    return None


def _tested(a: ViewRun, diffs: list[TaskDiff], report: Mapping[str, Any]) -> list[TaskDiff]:
    """Each task's main metric from compare's report: the same numbers and p-values it prints."""
    entries = {t["task"]: {m["metric"]: m for m in t["metrics"]} for t in report["tasks"]}
    size = report["family"]["size"]
    out = []
    for d in diffs:
        metric = _main_metric(d.task, list((a.results["tasks"].get(d.task) or {}).get("metrics") or {}))
        if not d.shared or metric is None:
            out.append(d)
            continue
        entry = entries.get(d.task, {}).get(metric)
        if entry is None:
            why = report["skipped"].get(d.task) or f"{metric} is not scored by both runs"
            out.append(replace(d, metric=metric, note=why, family=size))
        else:
            out.append(replace(d, tested=entry, metric=metric, note=entry.get("note"), family=size))
    return out


def diff_runs(a: ViewRun, b: ViewRun) -> list[TaskDiff]:
    """Every task both runs hold, paired by document id; refused when they share no document."""
    from mibe.boards.compare import compare_runs

    diffs = [
        diff_task(t, a.tasks[t]["answer_type"], a.samples[t], b.samples[t])
        for t in a.samples
        if t in b.samples
    ]
    if not any(d.shared for d in diffs):
        raise MibeError(
            f"{b.label}: shares no document with {a.label} (same task and id, same gold; runs of several "
            "shot draws pair draw with draw); compare runs of the same tasks, data and --fewshot-seeds, "
            "or view each run alone"
        )
    if a.run is None or b.run is None:
        return diffs
    return _tested(a, diffs, compare_runs(a.run, b.run))


def protocol_differences(a: ViewRun, b: ViewRun) -> dict[str, list[tuple[str, Any, Any]]]:
    """Per task both runs scored: (field, A's value, B's value) of each protocol field that differs."""
    out: dict[str, list[tuple[str, Any, Any]]] = {}
    tasks_a, tasks_b = a.results.get("tasks") or {}, b.results.get("tasks") or {}
    for task in tasks_a:
        if task not in tasks_b:
            continue
        pa, pb = tasks_a[task].get("protocol") or {}, tasks_b[task].get("protocol") or {}
        fields = [k for k in {**pa, **pb} if pa.get(k) != pb.get(k)]
        if fields:
            out[task] = [(k, pa.get(k), pb.get(k)) for k in fields]
    return out


# ---------------------------------------------------------------------------------------------------
# The static parts of the page, as plain values for templates/view.html


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _metrics(entry: Mapping[str, Any]) -> dict[str, Any]:
    items = []
    for name, metric in (entry.get("metrics") or {}).items():
        ci = metric.get("ci95")
        why = metric.get("unavailable") if metric.get("value") is None else None
        items.append(
            {
                "name": name,
                "value": _num(metric.get("value")),
                "interval": f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else "",
                "why": str(why) if why else None,
            }
        )
    counts = {k: entry.get(k, "—") for k in ("n", "parse_failures", "truncated")}
    protocol = [(str(k), json.dumps(v, ensure_ascii=False)) for k, v in (entry.get("protocol") or {}).items()]
    return {"metrics": items, "counts": counts, "protocol": protocol}


def _confusion(run: int, task: str, choices: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict:
    """A single-label task's confusion matrix: rows gold, columns predicted, no answer (None) last."""
    counts = confusion(rows)
    seen = set(counts) | {p for row in counts.values() for p in row if p is not None}
    labels = [c for c in choices if c in seen] + sorted(seen - set(choices))
    # No answer is its own last column: out of band, so it never merges with a label of that name.
    axis = [*labels, None] if any(None in row for row in counts.values()) else labels
    golds = [x for x in labels if x in counts or x in choices]
    body = [(gold, [(pred, counts.get(gold, {}).get(pred, 0)) for pred in axis]) for gold in golds]
    return {"run": run, "task": task, "axis": axis, "rows": body}


def _runs(runs: Sequence[ViewRun]) -> list[dict[str, Any]]:
    """Each run's tasks: metrics, protocol and (single-label tasks) the confusion matrix."""
    out = []
    for r, run in enumerate(runs):
        entries = run.results.get("tasks") or {}
        tasks = []
        for task, samples in run.samples.items():
            meta = task_meta(run, task)
            entry = entries.get(task)
            single = meta["answer_type"] in SINGLE_LABEL and samples
            tasks.append(
                {
                    "name": task,
                    "answer_type": meta["answer_type"],
                    "n": len(samples),
                    "credentialed": bool(meta.get("credentialed")),
                    "entry": _metrics(entry) if entry else None,
                    "confusion": _confusion(r, task, meta.get("choices") or (), samples) if single else None,
                }
            )
        title = f"{run.label}" if len(runs) == 1 else f"Run {'AB'[r]}: {run.label}"
        out.append({"title": title, "tasks": tasks})
    return out


def _test_cells(d: TaskDiff) -> list[str]:
    """metric, A, B, A − B [95% CI], raw p of the bootstrap, McNemar, Holm-adjusted p (compare's)."""
    m = d.tested
    if m is None or m.get("a") is None:
        why = d.note or ("read from folders only" if d.metric is None else "")
        return [d.metric or "—", "—", "—", "—", "—", why, "—"]
    untestable = m.get("note") is not None  # compare's verdict: where it prints no p, neither does the page
    mcnemar = "n/a (metric not right/wrong per document)"
    if m.get("mcnemar") is not None:
        mc = m["mcnemar"]
        mcnemar = f"A only {mc['a_only']}, B only {mc['b_only']}, p {p_text(mc['p'])}"
        if m.get("n_clusters") is not None:
            mcnemar += f" ({mc['test']}, {m['n_clusters']} clusters)"
    interval = "" if untestable else f" [{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]"
    return [
        d.metric or "",
        _num(m["a"]),
        _num(m["b"]),
        f"{m['diff']:+.3f}{interval}",
        "—" if untestable else p_text(m.get("p_bootstrap")),
        mcnemar + (" " + m["note"] if untestable else ""),
        "—" if untestable else p_text(m.get("p_holm")),
    ]


def _tests(diffs: Sequence[TaskDiff]) -> list[list[str]]:
    rows = []
    for d in diffs:
        note = f" ({d.gold_mismatch} shared ids with another gold left out)" if d.gold_mismatch else ""
        rows.append([d.task, f"{d.shared}{note}", str(len(d.differing)), d.rule, *_test_cells(d)])
    return rows


def _protocol_notes(a: ViewRun, b: ViewRun) -> list[str]:
    items = []
    for task, fields in protocol_differences(a, b).items():
        said = "; ".join(
            f"{k}: A {json.dumps(x, ensure_ascii=False)}, B {json.dumps(y, ensure_ascii=False)}"
            for k, x, y in fields
        )
        items.append(f"{task}: {said}")
    return items


def _filters(data: Mapping[str, Any]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(id, label, options) of each filter's <select>."""
    runs, rows = data["runs"], data["rows"]
    golds = sorted({x for r in rows for x in r.get("gold_labels", ())})
    preds = sorted({x for r in rows for x in r.get("predicted_labels", ())})
    yes_no = [("", "any"), ("yes", "yes"), ("no", "no")]
    out = []
    if len(runs) > 1:
        out.append(
            ("f-run", "run", [("", "both"), *((str(i), f"{'AB'[i]}: {x}") for i, x in enumerate(runs))])
        )
    out += [
        ("f-task", "task", [("", "all"), *((t, t) for t in data["tasks"])]),
        ("f-outcome", "outcome", [("", "any"), ("right", "full score"), ("wrong", "below full score")]),
        ("f-pf", "parse failure", yes_no),
        ("f-tr", "prompt truncated", yes_no),
        ("f-em", "empty output", yes_no),
    ]
    if data["reasoning_flag"]:
        out.append(("f-rt", "reasoning truncated", yes_no))
    out += [
        ("f-gold", "gold label", [("", "any"), *((x, x) for x in golds)]),
        ("f-pred", "predicted label", [("", "any"), *((x, x) for x in preds)]),
    ]
    return out


def render_view(runs: Sequence[ViewRun], show_credentialed: bool = False) -> str:
    """The page for one run (its samples) or two (their samples and their differences)."""
    if len(runs) not in (1, 2):
        raise ValueError(f"render_view: one or two runs, not {len(runs)}")
    diffs = diff_runs(runs[0], runs[1]) if len(runs) == 2 else []
    data = page_data(runs, diffs, show_credentialed)
    return pages.render(
        "view.html",
        title="mibe view: " + " vs ".join(run.label for run in runs),
        labels=[run.label for run in runs],
        credentialed=[t for t, meta in data["tasks"].items() if meta["credentialed"]],
        show=show_credentialed,
        protocol_notes=_protocol_notes(runs[0], runs[1]) if diffs else [],
        tests=_tests(diffs),
        family=_family(diffs),
        diff_options=[("", "all"), *((d.task, d.task) for d in diffs if d.differing)],
        runs=_runs(runs),
        filters=_filters(data),
        heads=(["run"] if len(runs) > 1 else []) + ["task", "id", "score", "predicted", "gold", "flags"],
        diff_heads=("task", "id", "A predicted", "A score", "B predicted", "B score"),
        page_rows=PAGE_ROWS,
        data=pages.embed(data),
    )


def _family(diffs: Sequence[TaskDiff]) -> int | None:
    """How many tests compare's Holm adjustment ran over (None: the runs were not read from folders)."""
    sizes = {d.family for d in diffs if d.family is not None}
    return sizes.pop() if sizes else None
