"""The plain-text table printed at the end of a run."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any


def _cell(metric: dict[str, Any]) -> str:
    if metric.get("value") is None:
        return "n/a (note below)" if metric.get("unavailable") else "n/a"
    lo, hi = metric.get("ci95") or (None, None)
    interval = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
    spread = f" ± {metric['sd']:.3f}" if metric.get("sd") is not None else ""  # over few-shot draws
    return f"{metric['value']:.3f}{spread}{interval}"


def table(results: dict[str, Any]) -> str:
    rows = [("task", "n", "scoring", "parse fail", "metrics (95% CI)")]
    for name, entry in results.get("tasks", {}).items():
        protocol = entry["protocol"]
        scores = "  ".join(f"{k}={_cell(v)}" for k, v in entry["metrics"].items())
        flags = " (invented data)" if entry.get("invented") else ""
        rows.append(
            (
                name,
                str(entry["n"]),
                protocol["scoring"],
                str(entry.get("parse_failures", "-")),
                scores + flags,
            )
        )
    for name, why in results.get("skipped", {}).items():
        rows.append((name, "-", "skipped", "-", why))
    from mibe.textout import table

    return "\n".join(table(rows, head=1, keep=1) + notes(results))


def notes(results: dict[str, Any]) -> list[str]:
    """Under the table: each task's warnings and why a metric is n/a (otherwise only in results.json)."""
    out = []
    for name, entry in results.get("tasks", {}).items():
        out += [f"warning: {name}: {line}" for line in entry.get("warnings") or ()]
        for metric, value in entry["metrics"].items():
            why = value.get("unavailable")
            if why:
                fix = "; pass --bertscore-model PATH (a local BERT folder)" if "bertscore" in metric else ""
                out.append(f"note: {name}: {metric} n/a: {why}{fix}")
    return out


def next_commands(run_dir: Path, shard: str | None = None) -> str:
    """What to do with a finished run: the commands a new user reaches for next. A shard (`--shard
    I/N`) is a part of a run: the next step is the merge."""
    run = shlex.quote(str(run_dir))
    if shard:
        index, n = shard.split("/")
        return (
            f"next: this is shard {index}/{n}; with the folders of all {n} shards:\n"
            f"  mibe merge --status {run} SHARD_RUN...                 # what each shard still lacks\n"
            f"  mibe merge {run} SHARD_RUN... --output-dir MERGED_RUN  # one run: metrics, leaderboard"
        )
    page = shlex.quote(f"{run_dir.name}.html")
    return (
        "next:\n"
        f"  mibe view {run} -o {page}        # read every answer, filter, see the confusion matrices\n"
        f"  mibe leaderboard {run} OTHER_RUN...   # side by side (the paper's rows for reference)\n"
        f"  mibe audit {run}                      # how much of the score is parsing"
    )
