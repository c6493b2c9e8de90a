"""`--group NAME=RUN,RUN,...` (several runs as one row) and `--average NAME` (the average over a named
subset of tasks): how a board joins and averages rows (docs/leaderboard.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mibe.boards.table import Row
from mibe.types import MibeError


def parse_groups(given: Sequence[str]) -> dict[str, list[str]]:
    """`--group NAME=RUN,RUN,...` (repeatable) -> {name: [run, ...]}; a malformed one is one line."""
    out: dict[str, list[str]] = {}
    for item in given:
        name, sep, runs = item.partition("=")
        folders = [r.strip() for r in runs.split(",") if r.strip()]
        if not sep or not name.strip() or not folders:
            raise MibeError(f"--group {item[:80]}: write NAME=RUN,RUN,... (a row name, then its run folders)")
        if name.strip() in out:
            raise MibeError(f"--group {name.strip()}: given twice; give each group its own name")
        out[name.strip()] = folders
    return out


def _folder(value: str | Path) -> Path:
    path = Path(value).resolve()
    return path.parent if path.name == "results.json" else path


def group_rows(rows: list[Row], groups: Mapping[str, Sequence[str]]) -> list[Row]:
    """Each group's runs as one row named after the group: its cells are the union of theirs, each
    task from the run that scored it (two runs of the group scoring one column is an error)."""
    taken: dict[Path, str] = {}
    for name, folders in groups.items():
        for folder in map(_folder, folders):
            if folder in taken:
                raise MibeError(f"--group {name}: {folder} is already in --group {taken[folder]}")
            taken[folder] = name
    merged: dict[tuple[str, bool], Row] = {}
    out: list[Row] = []
    for row in rows:
        name = taken.get(row.run_dir.resolve()) if row.run_dir else None
        if name is None:
            out.append(row)
            continue
        into = merged.get((name, row.invented))
        if into is None:
            lineage = {**row.lineage, "run": f"--group {name}: " + ", ".join(map(str, groups[name]))}
            into = Row(name, False, row.invented, lineage, row.run_dir)
            merged[name, row.invented] = into
            out.append(into)
        for column, cell in row.cells.items():
            if column in into.cells:
                raise MibeError(
                    f"--group {name}: {column.task} {column.metric} is scored by two of its runs "
                    f"({into.task_runs[column.task]} and {row.run_dir}); give each task once"
                )
            into.cells[column] = cell
            into.task_runs[column.task] = row.run_dir  # type: ignore[assignment]
        into.calibration.update(row.calibration)
        into.general |= row.general
    missing = [
        f"{n}: {f}"
        for n, fs in groups.items()
        for f in fs
        if _folder(f) not in {r.run_dir.resolve() for r in rows if r.run_dir}
    ]
    if missing:
        raise MibeError(f"--group {missing[0]} is not one of the run folders given; pass it as a RUN_DIR too")
    return out


def average_subset(name: str | None) -> tuple[frozenset[str] | None, str | None]:
    """`--average public|all|T1,T2,...` -> (the tasks averaged over, the line said above the table)."""
    if name is None or name == "all":
        return None, None
    if name == "public":
        from mibe import tasks

        chosen = frozenset(t.name for t in tasks.public_tasks())
        what = "the public tasks (the built-ins that are not credentialed)"
    else:
        chosen = frozenset(x.strip() for x in name.split(",") if x.strip())
        if not chosen:
            raise MibeError(f"--average {name}: give public, all, or a comma list of task names")
        what = "the tasks named"
    return chosen, f"Average (and ranks) over {what}: {', '.join(sorted(chosen))} (--average {name})"
