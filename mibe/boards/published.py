"""Reference tables (the paper's published rows, leaderboards/*.csv, and `--reference FILE`) as
leaderboard rows: one documented layout, a protocol block per table (docs/leaderboard.md)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe.boards.table import Cell, Column, Row, protocol_key, reference_key
from mibe.types import MibeError

PUBLISHED_FILE = "paper_zero_shot.csv"
# A reference table (docs/leaderboard.md, "Reference tables"): `# key: value` lines (the protocol
# block), then a CSV whose fixed columns are these and whose other columns are models, as printed.
REQUIRED = (
    "setting",
    "shots",
    "scoring",
    "parser",
    "chat_template",
    "max_new_tokens",
    "source",
    "paper_version",
    "table",
)
OPTIONAL = ("stop", "system_prompt", "split", "task_version")
FIXED = ("task", "metric", "paper_dataset", "paper_metric", "data", "source")
_NONE = ("none", "null", "")


@dataclass(frozen=True)
class Table:
    path: Path
    block: dict[str, str]  # the protocol block as written
    footnotes: dict[str, str]  # model -> its footnote (`# model NAME: text`)
    models: list[str]
    lines: list[dict[str, str]]

    @property
    def protocol(self) -> dict[str, Any]:
        """The block as protocol-key values: the paper's scripts' defaults where a key is left out."""
        b = self.block
        generated = b["scoring"] != "loglikelihood"  # scored by log-likelihood: no generation settings
        return {
            "task_version": _int(self, "task_version", b.get("task_version", "1")),
            "split": b.get("split", "test"),
            "limit": None,
            "shots": _int(self, "shots", b["shots"]),
            "scoring": b["scoring"],
            "parser": b["parser"],
            "chat_template": None if b["chat_template"].lower() in _NONE else b["chat_template"],
            "system_prompt": None if b.get("system_prompt", "none").lower() in _NONE else b["system_prompt"],
            "max_new_tokens": _int(self, "max_new_tokens", b["max_new_tokens"]) if generated else None,
            "stop": (b["stop"].split("|") if b.get("stop", "none").lower() not in _NONE else [])
            if generated
            else None,
        }


def _int(table: Table, key: str, value: str) -> int:
    if not value.strip().isdigit():
        raise MibeError(f"{table.path}: protocol block '{key}: {value}' should be a whole number")
    return int(value)


def read_table(file: Path) -> Table:
    """A reference table: its protocol block (every key of REQUIRED), then the CSV; one line per fault."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MibeError(f"{file}: cannot read the reference table ({exc})") from None
    lines = text.splitlines()
    block: dict[str, str] = {}
    footnotes: dict[str, str] = {}
    while lines and lines[0].startswith("#"):
        key, sep, value = lines.pop(0).lstrip("#").partition(":")
        key = key.strip()
        if not key:
            continue
        if not sep:
            raise MibeError(f"{file}: protocol block line '# {key[:60]}' should be '# key: value'")
        if key.startswith("model "):
            footnotes[key[6:].strip()] = value.strip()
        elif key in REQUIRED + OPTIONAL:
            block[key] = value.strip()
        else:
            raise MibeError(
                f"{file}: protocol block key '{key[:60]}' is unknown; keys: {', '.join(REQUIRED + OPTIONAL)}"
            )
    missing = [k for k in REQUIRED if k not in block]
    if missing:
        raise MibeError(
            f"{file}: the protocol block lacks {', '.join(missing)}; "
            "write '# key: value' lines above the CSV header (docs/leaderboard.md, Reference tables)"
        )
    rows = list(csv.DictReader(lines))
    header = list(rows[0].keys()) if rows else []
    absent = [c for c in FIXED if c not in header]
    if absent or len(header) == len(FIXED):
        raise MibeError(
            f"{file}: the CSV needs the columns {', '.join(FIXED)} and one column per model"
            + (f"; missing {', '.join(absent)}" if absent else "")
        )
    table = Table(file, block, footnotes, [c for c in header if c not in FIXED], rows)
    table.protocol  # noqa: B018 -- checks the block's numbers now, with the file's name
    return table


def _published_data(text: str) -> str:
    return f"hub:{text}" if "/" in text and " " not in text else f"paper:{text}"


def _scorer(task: str, parser: str) -> int:
    """The paper's numbers are matched by the scorer that reproduces its scripts today."""
    from mibe import tasks
    from mibe.scoring import kinds

    path = tasks.builtin_paths().get(task)
    return kinds.scorer_version(tasks.load_task(path).answer_type, parser) if path else 1


def published_rows(path: Path | None = None) -> list[Row]:
    """A reference table's rows (the shipped Table 3 by default), one per model column."""
    from mibe import resources

    table = read_table(path or resources.shipped("leaderboards") / PUBLISHED_FILE)
    block = table.block
    where = f"{block['paper_version']}, Table {block['table']}"
    rows = []
    for model in table.models:
        lineage = {"source": f"{block['source']}, {where} ({block['setting']})", "protocol": block["setting"]}
        if model in table.footnotes:
            lineage["printed"] = table.footnotes[model]
        rows.append(Row(model, True, False, lineage, None))
    for line in table.lines:
        protocol = {
            **table.protocol,
            "data": _published_data(line["data"]),
            "scorer_version": _scorer(line["task"], block["parser"]),
        }
        column = Column(line["task"], line["metric"], protocol_key(line["task"], protocol))
        if not line["source"].strip():
            raise MibeError(f"{table.path}: {line['task']} {line['metric']}: the source column is empty")
        note = f"published as {line['paper_dataset']} {line['paper_metric']} ({line['source']})"
        for row in rows:
            value = (line.get(row.label) or "").strip()
            if value.lower() in ("", "-", "n/a", "not reported"):
                continue  # a cell the paper does not report
            try:
                row.cells[column] = Cell(float(value), None, None, note)
            except ValueError:
                where = f"{table.path}: {line['task']} {line['metric']} {row.label}"
                raise MibeError(f"{where}: '{value[:20]}' is not a number") from None
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


def reference_rows(files: Sequence[str]) -> list[Row]:
    """`--reference FILE`: a user's reference tables, in the shipped layout; always shown."""
    rows: list[Row] = []
    for file in files:
        path = Path(file).expanduser()
        if not path.is_file():
            raise MibeError(f"--reference {file}: no such file; give a reference table (docs/leaderboard.md)")
        for row in published_rows(path):
            row.reference = True
            rows.append(row)
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
