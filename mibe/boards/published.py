"""The paper's published zero-shot rows (leaderboards/paper_zero_shot.csv) as leaderboard rows."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from mibe.boards.model import Cell, Column, Row, protocol_key, reference_key
from mibe.types import MibeError

PUBLISHED_FILE = "paper_zero_shot.csv"
# The models as Table 3 prints them (the CSV's column names), with the description its header gives
# each in parentheses (npj Digit. Med. 2025, Table 3).
AS_PRINTED = {
    "LLaMA2 13B": "backbone",
    "Me-LLaMA 13B": "backbone + pre-train only",
    "LLaMA2 13B-instruct": "backbone + instruction tuning only",
    "Me-LLaMA-13B-chat": "backbone + pre-train + instruction tuning",
    "LLaMA2 70B": "backbone",
    "Me-LLaMA 70B": "backbone + pre-train only",
    "LLaMA2 70B-instruct": "backbone + instruction tuning only",
    "Me-LLaMA-70B-chat": "backbone + pre-train + instruction tuning",
}
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
    rows = [
        Row(
            m,
            True,
            False,
            {"source": PUBLISHED_SOURCE, "protocol": "paper", "printed": AS_PRINTED.get(m)},
            None,
        )
        for m in models
    ]
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


def shipped_tables() -> dict[str, Path]:
    """The published tables mibe ships (leaderboards/*.csv), by name: the file's stem."""
    from mibe import resources

    return {path.stem: path for path in sorted(resources.shipped("leaderboards").glob("*.csv"))}


def table_rows(names: Sequence[str]) -> list[Row]:
    """The rows of the named shipped tables (`--published TABLE,...`); an unknown name is one line."""
    tables = shipped_tables()
    rows: list[Row] = []
    for name in names:
        if name not in tables:
            raise MibeError(
                f"--published {name}: no such table; use reference, none, or one of {', '.join(tables)}"
            )
        rows += published_rows(tables[name])
    return rows


def _source(data: object) -> str:
    if not isinstance(data, str):
        return "unknown data"
    if data.startswith("hub:"):
        base, _, revision = data[4:].partition("@")
        return f"hub {base}" + (f" at revision {revision}" if revision else " (no revision recorded)")
    if data.startswith("paper:"):
        return f"the paper's data ({data[6:]})"
    return f"a local copy ({data})"


def differences(run: Column, reference: Column, n: int | None) -> list[str]:
    """What a reference cell and the run's column do not share (everything else they do)."""
    mine, theirs = run.protocol, reference.protocol
    out = []
    if mine["data"] != theirs["data"]:
        out.append(f"source: runs read {_source(mine['data'])}, the paper {_source(theirs['data'])}")
    if mine["limit"] != theirs["limit"] or mine["limit"] is not None:
        scored = f"the first {mine['limit']}" if mine["limit"] is not None else "all"
        count = f" ({n} documents)" if n is not None else ""
        out.append(f"documents: runs scored {scored}{count}, the paper its full {theirs['split']} split")
    return out


def attach(
    section_columns: Sequence[Column], rows: Sequence[Row], scored: dict[Column, int | None]
) -> list[Row]:
    """Reference rows for a section of runs: each published row's numbers in the runs' columns that
    match every protocol key field but the data source and the limit (model.reference_key). A row
    with no such column is left out; each cell says what differs."""
    by_key: dict[tuple, dict[str, tuple[Column, Cell]]] = {}
    for row in rows:
        for column, cell in row.cells.items():
            by_key.setdefault(reference_key(column), {})[row.label] = (column, cell)
    out: dict[str, Row] = {}
    for column in section_columns:
        for label, (theirs, cell) in by_key.get(reference_key(column), {}).items():
            source = next(r for r in rows if r.label == label)
            row = out.setdefault(label, Row(label, True, False, source.lineage, None, reference=True))
            note = "; ".join([x for x in (cell.note, *differences(column, theirs, scored.get(column))) if x])
            row.cells[column] = Cell(cell.value, None, None, note or None)
    return list(out.values())
