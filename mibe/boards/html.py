"""A leaderboard as one self-contained HTML page: inline CSS, inline JS, inline SVG; no network.

Rendered from templates/board.html with autoescape on (boards/pages.py), so a model name, task or
protocol holding `<script>` shows as text and runs nothing; no data is put inside the script.
Sorting: click a header (again to reverse), or open the page with `#sort=c3` (`#sort=c3:asc`) to
sort on load. Here: each table, chart and note as plain values (numbers already formatted).
"""

from __future__ import annotations

import json
from typing import Any

from mibe.boards import pages
from mibe.boards.ranking import AVERAGE, Section, cluster_lines, general_lines
from mibe.boards.render import (
    DASH,
    SIGNIFICANCE,
    SIGNIFICANCE_NOTE,
    TIE_GROUP,
    contamination_mark,
    describe,
    interval_text,
    lineage_text,
    number,
    rank_text,
    reliability_bins,
    row_name,
    short,
    verdict_groups,
    verdict_short,
)
from mibe.boards.table import KEY_FIELDS, Board, Column, Row
from mibe.version import __version__

COMPACT = 10  # more task columns than this: intervals move into the cells' hover text to fit 1,400 px


def _header(board: Board, s: int, section: Section) -> list[dict[str, str]]:
    out = []
    for column in section.columns:
        pid = board.protocol_ids[column.key]
        out.append(
            {
                "col": board.column_ids[s, column],
                "title": pid + ": " + describe(column.protocol),
                "task": column.task,
                "metric": column.metric,
                "protocol": f"{pid} {short(column.protocol)}",
            }
        )
    return out


def _cell(row: Row, column: Column, best: bool) -> dict[str, Any]:
    """One cell: its sort key, class, hover text and shown text (value ± sd, interval)."""
    cell = row.cells.get(column)
    if cell is None or cell.value is None:
        note = cell.note if cell is not None and cell.note else ""
        return {"sort": "", "best": False, "title": note, "text": DASH, "interval": ""}
    interval = "" if cell.ci95 is None else f"[{cell.ci95[0]:.3f}, {cell.ci95[1]:.3f}]"
    hover = "; ".join(x for x in (interval and f"95% interval {interval}", cell.note) if x)
    sd = "" if cell.sd is None else f" ± {cell.sd:.3f}"  # over few-shot draws
    return {"sort": repr(cell.value), "best": best, "title": hover, "text": f"{cell.value:.3f}{sd}",
            "interval": interval}  # fmt: skip


def _body(section: Section) -> list[dict[str, Any]]:
    lines = []
    for i, ranked in enumerate(section.rows):
        row = ranked.row
        tags = ["reference" if row.reference else "published"] if row.published else []
        if contamination_mark(row):
            tags.append(contamination_mark(row).strip(" []"))
        lines.append(
            {
                "published": row.published,
                "rank_sort": ranked.rank or "",
                "rank": rank_text(ranked),
                "label": row.label,
                "tags": tags,
                # Published rows share one source, said once under the table; runs show their lineage.
                "lineage": "" if row.published else lineage_text(row),
                "average_sort": "" if ranked.average is None else repr(ranked.average),
                "average_best": i in section.best.get(AVERAGE, ()),
                "average": number(ranked.average),
                "cells": [_cell(row, c, i in section.best.get(c, ())) for c in section.columns],
            }
        )
    return lines


def _foot(section: Section) -> list[tuple[str, str] | None]:
    def cell(key: Any) -> tuple[str, str] | None:
        verdict = section.verdicts.get(key)
        return None if verdict is None else (verdict.text, verdict_short(section, key))

    return [cell(AVERAGE), *(cell(c) for c in section.columns)]


def _chart(board: Board, s: int, section: Section, column: Column) -> dict[str, Any] | None:
    """Horizontal bars with 95% interval whiskers, one per row that has a value."""
    rows = [(i, x.row, x.row.cells[column]) for i, x in enumerate(section.rows) if column in x.row.cells]
    rows = [(i, r, c) for i, r, c in rows if c.value is not None]
    if not rows:
        return None
    left, width, line = 170, 200, 18
    top = max([1.0, *(c.ci95[1] if c.ci95 else c.value for _, _, c in rows)])
    scale = width / top
    bars = []
    for k, (i, row, cell) in enumerate(rows):
        y = 4 + k * line
        end = left + (cell.ci95[1] if cell.ci95 else cell.value) * scale
        whisker = None
        if cell.ci95 is not None:
            lo, hi = f"{left + cell.ci95[0] * scale:.1f}", f"{left + cell.ci95[1] * scale:.1f}"
            mid = y + line / 2 - 1
            whisker = {"lo": lo, "hi": hi, "mid": mid, "top": mid - 4, "bottom": mid + 4}
        bars.append(
            {
                "y_text": y + 12,
                "y_bar": y + 2,
                "name": row_name(row),
                "label": row.label if len(row.label) <= 26 else row.label[:25] + "…",
                "width": f"{cell.value * scale:.1f}",
                "colour": "#9aa5b1" if row.published else "#3b6fb6",
                "best": i in section.best.get(column, ()),
                "whisker": whisker,
                "x_value": f"{end + 4:.1f}",
                "value": f"{cell.value:.3f}",
            }
        )
    pid = board.protocol_ids[column.key]
    return {"col": board.column_ids[s, column], "caption": f"{column.task} · {column.metric} · {pid}",
            "left": left, "label_x": left - 6, "bar_height": line - 6, "width": left + width + 50,
            "height": 8 + len(rows) * line, "bars": bars}  # fmt: skip


def _reliability(label: str, task: str, cal: dict[str, Any]) -> dict[str, Any]:
    """One reliability diagram: a bar per bin (narrower with fewer documents) under the diagonal."""
    size, pad = 150, 22
    bins = reliability_bins(cal)
    most = max([1, *(count for _, _, count, _, _ in bins)])
    bars = []
    for lo, hi, count, confidence, accuracy in bins:
        x0, width = pad + lo * size, (hi - lo) * size
        height, shrink = accuracy * size, width * 0.7 * (1 - count / most) / 2  # fewer documents: thinner
        bars.append(
            {
                "x": f"{x0 + shrink:.1f}",
                "y": f"{pad + size - height:.1f}",
                "width": f"{width - 2 * shrink:.1f}",
                "height": f"{height:.1f}",
                "title": f"{lo:.1f}-{hi:.1f}: {count} documents, confidence {confidence:.3f}, "
                f"accuracy {accuracy:.3f}",
            }
        )
    caption = (
        f"{label} · {task} · ECE {interval_text(cal.get('ece'))} · Brier {interval_text(cal.get('brier'))}"
    )
    return {"caption": caption, "size": size, "pad": pad, "edge": pad + size, "outer": size + 2 * pad,
            "middle": pad + size / 2, "bars": bars}  # fmt: skip


def _reliabilities(section: Section) -> list[dict[str, Any]]:
    """Reliability diagrams of the section's log-likelihood-scored tasks (results.json's bins)."""
    tasks = list(dict.fromkeys(c.task for c in section.columns))
    return [
        _reliability(x.row.label, task, x.row.calibration[task])
        for x in section.rows
        for task in tasks
        if task in x.row.calibration
    ]


def _protocols(board: Board) -> tuple[list[str], list[list[str]]]:
    fields = [f for f in KEY_FIELDS if f != "task"]
    lines, seen = [], set()
    for section in board.sections:
        for column in section.columns:
            if column.key in seen:
                continue
            seen.add(column.key)
            p = column.protocol
            values = [board.protocol_ids[column.key], p["task"], *(p[f] for f in fields)]
            lines.append([v if isinstance(v, str) else json.dumps(v) for v in values])
    return ["id", "task", *fields], lines


def _notes(board: Board, section: Section) -> list[str]:
    items = []
    published = [x.row for x in section.rows if x.row.published]
    if published:
        items.append(f"published rows: {lineage_text(published[0])}")
    items.append(SIGNIFICANCE_NOTE)
    items += general_lines(section) + cluster_lines(section)
    for text, names in verdict_groups(board, section):
        items.append(f"{SIGNIFICANCE}: {text}: {', '.join(names)}")
    for ranked in section.rows:
        for column in section.columns:
            cell = ranked.row.cells.get(column)
            if cell is not None and cell.note and not ranked.row.published:
                items.append(f"{ranked.row.label}, {column.task} {column.metric}: {cell.note}")
    return items


def html(board: Board, title: str = "mibe leaderboard") -> str:
    sections = []
    for s, section in enumerate(board.sections):
        charts = [_chart(board, s, section, c) for c in section.columns]
        sections.append(
            {
                "title": section.title,
                "compact": len(section.columns) > COMPACT,
                "header": _header(board, s, section),
                "rows": _body(section),
                "foot": _foot(section),
                "notes": _notes(board, section),
                "charts": [c for c in charts if c is not None],
                "reliability": _reliabilities(section),
            }
        )
    head, protocols = _protocols(board)
    return pages.render(
        "board.html",
        title=title,
        version=__version__,
        tie_group=TIE_GROUP,
        significance=SIGNIFICANCE,
        heading=board.heading,
        sections=sections,
        notes=board.notes,
        protocol_head=head,
        protocols=protocols,
    )
