"""The paper's published zero-shot rows (leaderboards/paper_zero_shot.csv) as leaderboard rows."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from mibe.boards.model import Cell, Column, Row, protocol_key
from mibe.types import MibeError

PUBLISHED_FILE = "paper_zero_shot.csv"
PUBLISHED_SOURCE = "Xie et al., npj Digit. Med. 2025, Table 3 (zero-shot)"
# The paper's scripts (leaderboards/README.md): greedy generation, 256 new tokens, no stop, paper
# parser, zero-shot, no chat template. Version 1 of mibe's task files reproduces its prompts.
PAPER_PROTOCOL = {
    "task_version": 1,
    "split": "test",
    "limit": None,
    "shots": 0,
    "scoring": "generate",
    "parser": "paper",
    "chat_template": None,
    "system_prompt": None,
    "max_new_tokens": 256,
    "stop": [],
}


def _published_data(text: str) -> str:
    return f"hub:{text}" if "/" in text and " " not in text else f"paper:{text}"


def _scorer(task: str) -> int:
    """The paper's numbers are matched by the scorer that reproduces its scripts today."""
    from mibe import tasks
    from mibe.scoring import kinds

    path = tasks.builtin_paths().get(task)
    return kinds.scorer_version(tasks.load_task(path).answer_type, "paper") if path else 1


def published_rows(path: Path | None = None) -> list[Row]:
    from mibe import resources

    file = path or resources.shipped("leaderboards") / PUBLISHED_FILE
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            table = list(csv.DictReader(handle))
    except OSError as exc:
        raise MibeError(f"{file}: cannot read the published rows ({exc}); reinstall mibe") from None
    fixed = ("task", "metric", "paper_dataset", "paper_metric", "data")
    models = [c for c in (table[0].keys() if table else ()) if c not in fixed]
    rows = [Row(m, True, False, {"source": PUBLISHED_SOURCE, "protocol": "paper"}, None) for m in models]
    for line in table:
        protocol = {
            **PAPER_PROTOCOL,
            "data": _published_data(line["data"]),
            "scorer_version": _scorer(line["task"]),
        }
        column = Column(line["task"], line["metric"], protocol_key(line["task"], protocol))
        note = f"published as {line['paper_dataset']} {line['paper_metric']}"
        for row in rows:
            try:
                row.cells[column] = Cell(float(line[row.label]), None, None, note)
            except (TypeError, ValueError):
                raise MibeError(
                    f"{file}: {line['task']} {line['metric']} {row.label}: not a number"
                ) from None
    return rows


def adopt_published_keys(rows: Sequence[Row]) -> None:
    """The paper records no hub revision: a run that read the same hub dataset at any revision, under
    the paper's protocol otherwise, shares the published column (its revision kept in the cell note)."""
    published = {c.key for r in rows if r.published for c in r.cells}
    for row in (r for r in rows if not r.published):
        for column in list(row.cells):
            data = column.protocol["data"]
            if not (isinstance(data, str) and data.startswith("hub:") and "@" in data):
                continue
            base, revision = data.rsplit("@", 1)
            key = tuple((k, json.dumps(base) if k == "data" else v) for k, v in column.key)
            if key in published:
                cell = row.cells.pop(column)
                note = f"hub revision {revision} (the paper records none)"
                row.cells[Column(column.task, column.metric, key)] = Cell(
                    cell.value, cell.ci95, cell.n, "; ".join(x for x in (cell.note, note) if x), cell.sd
                )
