"""Assemble the leaderboard: run rows, the paper's published rows, sections, ranks and verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mibe.boards.model import Board, Column, Key, Run, disambiguate, load_run, run_rows
from mibe.boards.published import adopt_published_keys, published_rows
from mibe.boards.ranking import sections as ranked_sections
from mibe.types import MibeError


def build(
    run_dirs: Sequence[str | Path],
    published: bool = True,
    all_metrics: bool = False,
    n_boot: int = 1000,
    seed: int = 1234,
) -> Board:
    """Run folders (and the paper's published rows) -> the board every format renders."""
    runs: dict[Path, Run] = {}
    for folder in run_dirs:  # the same folder named twice is one row
        run = load_run(folder)
        runs.setdefault(run.path.resolve(), run)
    rows = [row for run in runs.values() for row in run_rows(run)]
    disambiguate(rows)
    if published:
        rows += published_rows()
        adopt_published_keys(rows)
    if not rows:
        raise MibeError("nothing to show: pass run folders, or leave out --no-published")
    sections = ranked_sections(rows, all_metrics, n_boot, seed)
    protocol_ids: dict[Key, str] = {}
    column_ids: dict[tuple[int, Column], str] = {}
    for s, section in enumerate(sections):
        for column in section.columns:
            protocol_ids.setdefault(column.key, f"P{len(protocol_ids) + 1}")
            column_ids[s, column] = f"c{len(column_ids) + 1}"
    return Board(sections, protocol_ids, column_ids)
