"""Assemble the leaderboard: the user's runs first (sections, ranks, verdicts), then the paper's
published rows as unranked reference rows beside the columns they share (docs/leaderboard.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mibe.boards.grouping import average_subset, group_rows
from mibe.boards.published import attach, published_rows, reference_rows, table_rows
from mibe.boards.ranking import Ranked, Section
from mibe.boards.ranking import sections as ranked_sections
from mibe.boards.table import (
    Board,
    Column,
    Key,
    Row,
    Run,
    across_fields,
    disambiguate,
    load_run,
    relax_rows,
    run_rows,
)
from mibe.types import MibeError

REFERENCE, NONE = "reference", "none"
NO_REAL = (
    "Invented data (the demo, fixtures) gets no reference rows: the paper's numbers are never shown "
    "beside it."
)
NO_SHARED = (
    "The paper's published rows share no column with these runs (the same task, metric and protocol, "
    "whatever the data source and limit), so none is shown; --published paper_zero_shot shows the table."
)


def published_choice(value: str | bool) -> tuple[str, list[str]]:
    """`--published reference|none|TABLE,...` -> (mode, tables). True/False: reference/none."""
    if isinstance(value, bool):
        return (REFERENCE if value else NONE), []
    names = [x.strip() for x in value.split(",") if x.strip()]
    if names in ([REFERENCE], [NONE]):
        return names[0], []
    if not names or REFERENCE in names or NONE in names:
        raise MibeError(f"--published {value}: give reference, none, or a comma list of table names")
    return "tables", names


def _labelled(runs: dict[Path, Run], labels: Mapping[str, str]) -> dict[Path, str]:
    """`--label RUN=NAME`: the folder must be one of the runs given; two runs never share a name."""
    out: dict[Path, str] = {}
    for folder, name in labels.items():
        path = Path(folder).resolve()
        path = path.parent if path.name == "results.json" else path
        if path not in runs:
            raise MibeError(f"--label {folder}={name}: {folder} is not one of the run folders given")
        if not name.strip():
            raise MibeError(f"--label {folder}=: give a name after '='")
        out[path] = name.strip()
    if len(set(out.values())) < len(out):
        raise MibeError("--label: two runs got the same name; give each run its own")
    return out


def build(
    run_dirs: Sequence[str | Path],
    published: str | bool = REFERENCE,
    all_metrics: bool = False,
    n_boot: int = 1000,
    seed: int = 1234,
    labels: Mapping[str, str] | None = None,
    references: Sequence[str] = (),
    groups: Mapping[str, Sequence[str]] | None = None,
    average: str | None = None,
    compare_across: Sequence[str] = (),
) -> Board:
    """Run folders (and reference rows: the paper's, `--reference` tables) -> the board every format
    renders. `groups`: rows made of several runs; `average`: the tasks averaged; `compare_across`:
    protocol fields that stop separating columns (said above the table)."""
    mode, tables = published_choice(published)
    runs: dict[Path, Run] = {}
    for folder in run_dirs:  # the same folder named twice is one row
        run = load_run(folder)
        runs.setdefault(run.path.resolve(), run)
    names = _labelled(runs, labels or {})
    rows = group_rows([row for run in runs.values() for row in run_rows(run)], groups or {})
    grouped = {r.label for r in rows if r.task_runs}
    disambiguate(
        [
            r
            for r in rows
            if r.label not in grouped and (r.run_dir is None or r.run_dir.resolve() not in names)
        ]
    )
    for row in rows:
        if row.label not in grouped and row.run_dir:
            row.label = names.get(row.run_dir.resolve(), row.label)
    reference = [] if mode == NONE else (table_rows(tables) if tables else published_rows())
    given = reference_rows(references)
    subset, said = average_subset(average)
    heading = [said] if said else []
    fields = across_fields(compare_across)
    if fields:
        heading += relax_rows([*rows, *reference, *given], fields)
    if not rows and not reference and not given:
        raise MibeError("nothing to show: pass run folders, or leave out --published none")
    sections = ranked_sections(rows, all_metrics, n_boot, seed, subset) if rows else []
    shown = _with_references(sections, reference + given)
    notes = []
    if reference and (not rows or (mode == "tables" and not shown)):
        # No runs, or tables named that share no column: the table itself, after the runs.
        sections += ranked_sections(reference, all_metrics, n_boot, seed, subset)
    elif reference and not shown:
        notes.append(NO_REAL if all(x.invented for x in sections) else NO_SHARED)
    apart = [r for r in given if not any(r.label in {x.row.label for x in s.rows} for s in sections)]
    if apart:  # --reference rows are always shown: in a reference section when they share no column
        sections += _reference_sections(apart, all_metrics, subset)
    board = _board(sections)
    board.notes, board.heading = notes, heading
    return board


def _reference_sections(rows: list[Row], all_metrics: bool, subset: frozenset[str] | None) -> list[Section]:
    """`--reference` rows that share no column with a run: their own section, marked, never ranked."""
    from mibe.boards.ranking import build_section

    section = build_section(rows, all_metrics, subset)
    section.title = "Reference rows (--reference; no samples: never ranked or tested)"
    section.rows = [Ranked(x.row, x.average, None) for x in section.rows]
    section.best = {}
    return [section]


def _with_references(sections: list[Section], reference: list[Row]) -> bool:
    """Append reference rows (unranked, untested) to each section of real runs; True if any joined."""
    joined = False
    for section in sections:
        if section.invented:  # invented data gets no reference rows
            continue
        scored = {c: _n(section, c) for c in section.columns}
        rows = attach(section.columns, reference, scored)
        section.rows += [Ranked(row, _reference_average(row, section), None) for row in rows]
        if rows:
            section.title = section.title.replace("Runs", "Runs, with published rows for reference", 1)
            joined = True
    return joined


def _n(section: Section, column: Column) -> int | None:
    counts = {x.row.cells[column].n for x in section.rows if column in x.row.cells}
    return counts.pop() if len(counts) == 1 else None


def _reference_average(row: Row, section: Section) -> float | None:
    values = [row.cells[c].value for c in section.averaged if c in row.cells]
    if not section.averaged or len(values) < len(section.averaged) or None in values:
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def _board(sections: list[Section]) -> Board:
    protocol_ids: dict[Key, str] = {}
    column_ids: dict[tuple[int, Column], str] = {}
    for s, section in enumerate(sections):
        for column in section.columns:
            protocol_ids.setdefault(column.key, f"P{len(protocol_ids) + 1}")
            column_ids[s, column] = f"c{len(column_ids) + 1}"
    return Board(sections, protocol_ids, column_ids)
