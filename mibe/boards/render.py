"""A leaderboard as terminal text, markdown or CSV (HTML: html.py; figures: plot.py).

Only aggregates are written: no prompt, output or gold of any document, so a board of credentialed
tasks can be shared."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from mibe.boards.ranking import AVERAGE, Section, cluster_lines, general_lines
from mibe.boards.table import KEY_FIELDS, Board, Column, Row
from mibe.textout import md_escape, md_table, p_is, table, wrap

DASH = "—"


def describe(protocol: dict[str, Any]) -> str:
    """A protocol key in words: what a column's numbers were scored under."""
    limit = protocol["limit"]
    chat = protocol["chat_template"]
    system = protocol["system_prompt"]
    parts = [
        f"{protocol['task']} v{protocol['task_version']}",
        f"data {protocol['data']}",
        f"split {protocol['split']}",
        "all documents" if limit is None else f"first {limit} documents",
        f"{protocol['shots']}-shot",
        *([f"few-shot draws (seeds {protocol['fewshot_seeds']})"] if protocol.get("fewshot_seeds") else []),
        protocol["scoring"],
        f"parser {protocol['parser']}",
        "no chat template" if chat is None else f"chat template {chat}",
        "no system prompt" if system is None else f"system prompt {json.dumps(system)}",
    ]
    if protocol["max_new_tokens"] is not None:
        parts.append(f"max_new_tokens {protocol['max_new_tokens']}")
    if protocol["stop"] is not None:
        parts.append(f"stop {json.dumps(protocol['stop'])}")
    if protocol.get("jury") is not None:
        parts.append(f"jury {protocol['jury']} (judges and prompt in results.json)")
    for name in ("chat_template_kwargs", "reasoning", "extractor"):  # absent from older runs
        if protocol.get(name) is not None:
            parts.append(f"{name} {json.dumps(protocol[name], sort_keys=True)}")
    return "; ".join(parts)


def short(protocol: dict[str, Any]) -> str:
    """A protocol in a header's few words; the legend has the rest."""
    words = [f"{protocol['shots']}-shot"]
    if protocol.get("fewshot_seeds"):
        words.append(f"×{len(protocol['fewshot_seeds'])} draws")
    if protocol["scoring"] == "loglikelihood":
        words.append("loglik")
    else:
        words += [protocol["parser"], f"{protocol['max_new_tokens']}tok"]
    if protocol["chat_template"] is not None:
        words.append("chat")
    if protocol["limit"] is not None:
        words.append(f"limit {protocol['limit']}")
    if protocol.get("jury") is not None:
        words.append(f"jury {protocol['jury'][:6]}")
    return " ".join(words)


def number(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def cell_text(row: Row, column: Column) -> str:
    cell = row.cells.get(column)
    if cell is None or cell.value is None:
        return DASH
    spread = "" if cell.sd is None else f" ± {cell.sd:.3f}"  # over few-shot draws
    if cell.ci95 is None:
        return number(cell.value) + spread
    return f"{cell.value:.3f}{spread} [{cell.ci95[0]:.3f}, {cell.ci95[1]:.3f}]"


def reliability_bins(cal: dict[str, Any]) -> list[tuple[float, float, int, float, float]]:
    """The non-empty bins as numbers; a bin that isn't (a damaged or hand-edited file) is left out."""
    out = []
    for b in cal.get("reliability") or []:
        try:
            row = (
                float(b["lo"]),
                float(b["hi"]),
                int(b["count"]),
                float(b["confidence"]),
                float(b["accuracy"]),
            )
        except (TypeError, ValueError, KeyError):
            continue
        if row[2] > 0 and 0 <= row[0] < row[1] <= 1 and 0 <= row[4] <= 1:
            out.append(row)
    return out


def interval_text(value: Any) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("value"), int | float):
        return DASH
    ci = value.get("ci95")
    spread = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if isinstance(ci, list) and len(ci) == 2 else ""
    return f"{value['value']:.3f}{spread}"


def contamination_mark(row: Row) -> str:
    """The mark of a checkpoint whose training lineage records evaluation documents trained on."""
    tasks = row.lineage.get("contaminated")
    return f" [trained on test: {tasks}]" if tasks else ""


def row_name(row: Row) -> str:
    return row.label + (" [published]" if row.published else "") + contamination_mark(row)


def rank_text(ranked: Any) -> str:
    """A run's rank; a reference row beside runs is never ranked ("ref")."""
    if ranked.rank:
        return str(ranked.rank)
    return "ref" if ranked.row.reference else DASH


def lineage_text(row: Row) -> str:
    if row.published:
        return f"published: {row.lineage['source']}"
    keys = ("run", "base", "adapter", "training", "backend", "dtype", "rescored_from")
    return "; ".join(f"{k} {row.lineage[k]}" for k in keys if row.lineage.get(k))


def parse_failure_lines(section: Section) -> list[str]:
    """Each run's parse failures per task, as its results.json (and summary, compare, audit) count them."""
    out = []
    for ranked in section.rows:
        counts = {c.task: cell.parse_failures for c, cell in ranked.row.cells.items() if c in section.columns}
        shown = ", ".join(f"{t} {n}" for t, n in counts.items() if n is not None)
        if shown and not ranked.row.published:
            out.append(f"{row_name(ranked.row)}: parse failures: {shown}")
    return out


def verdict_short(section: Section, key: Any) -> str:
    verdict = section.verdicts.get(key)
    if verdict is None:
        return ""
    if verdict.significant is None:
        return "n/t"
    if verdict.tied:  # a column: its tie group's size, and the closest row's Holm-adjusted p
        return f"{'alone' if verdict.significant else f'tie of {len(verdict.tied)}'} {p_is(verdict.p)}"
    return f"{'yes' if verdict.significant else 'no'} {p_is(verdict.p)}"


def verdict_groups(board: Board, section: Section) -> list[tuple[str, list[str]]]:
    """Verdicts with the same text said once, with the columns they hold for."""
    groups: dict[str, list[str]] = {}
    for key, verdict in section.verdicts.items():
        name = "average" if key == AVERAGE else f"{key.task} {key.metric} ({board.protocol_ids[key.key]})"
        groups.setdefault(verdict.text, []).append(name)
    return list(groups.items())


def _grid(board: Board, section: Section, bold: bool) -> list[list[str]]:
    """Header lines then body lines of one section, cells as text; best cells marked."""

    def mark(text: str, best: bool) -> str:
        if not best or text == DASH:
            return text
        return f"**{text}**" if bold else f"{text} *"

    head = [
        ["rank", "model", "average"] + [c.task for c in section.columns],
        ["", "", ""] + [c.metric for c in section.columns],
        ["", "", ""] + [f"{board.protocol_ids[c.key]} {short(c.protocol)}" for c in section.columns],
    ]
    body = []
    for i, ranked in enumerate(section.rows):
        line = [
            rank_text(ranked),
            row_name(ranked.row),
            mark(number(ranked.average), i in section.best.get(AVERAGE, ())),
        ]
        line += [mark(cell_text(ranked.row, c), i in section.best.get(c, ())) for c in section.columns]
        body.append(line)
    body.append(
        ["", SIGNIFICANCE, verdict_short(section, AVERAGE)]
        + [verdict_short(section, c) for c in section.columns]
    )
    return head + body


def _footer(board: Board, section: Section) -> list[tuple[str, list[str]]]:
    """Under a table: (heading, items) for its rows, protocols, significance and notes."""
    rows = [f"{row_name(r.row)}: {lineage_text(r.row)}" for r in section.rows if not r.row.published]
    published = [r.row for r in section.rows if r.row.published]
    for source in dict.fromkeys(lineage_text(r) for r in published):
        rows.append(f"[published]: {source}")
    described = [f"{r.label} ({r.lineage['printed']})" for r in published if r.lineage.get("printed")]
    if described:
        rows.append("[published] models as the paper's table names them: " + "; ".join(described))
    if any(r.reference for r in published):
        rows.append(f"ref: {REFERENCE_NOTE}")
    rows += parse_failure_lines(section)
    protocols: dict[Any, str] = {}
    for column in section.columns:
        protocols.setdefault(column.key, f"{board.protocol_ids[column.key]}: {describe(column.protocol)}")
    notes = sorted(
        {
            f"{c.task} {c.metric}: {r.row.cells[c].note}"
            for r in section.rows
            for c in section.columns
            if c in r.row.cells and r.row.cells[c].note and not r.row.published
        }
    )
    notes += sorted(
        {
            f"{c.task} {c.metric}, published rows: {r.row.cells[c].note}"
            for r in section.rows
            for c in section.columns
            if c in r.row.cells and r.row.cells[c].note and r.row.reference
        }
    )
    verdicts = [f"{text}: {', '.join(names)}" for text, names in verdict_groups(board, section)]
    parts = [("Rows", rows), ("Protocols", list(protocols.values()))]
    parts.append((SIGNIFICANCE_NOTE, verdicts))
    notes = general_lines(section) + cluster_lines(section) + notes
    return parts + ([("Notes", notes)] if notes else [])


LEGEND = (
    "Cells: value [bootstrap 95% interval]; value ± sd over few-shot draws, for runs scored over several "
    "draws. Published rows have no interval. {best}. "
    "Average: over the paper's metrics of each task (medical tasks; a task file's `domain: general` "
    "keeps its task out, with its own average in the notes), complete rows only; ranks by average."
)
REFERENCE_NOTE = (
    "the paper's published numbers in the columns of the same task, metric and protocol (any data "
    "source, any limit: what differs is noted per column); for reference only, never ranked or tested"
)
TIE_GROUP = "the best row and every row not significantly behind it (Holm-adjusted p >= 0.05)"
SIGNIFICANCE = "tie group / best ahead?"
SIGNIFICANCE_NOTE = (
    "Tie groups: each column's best row tested against every other row, Holm over the column, alpha "
    "0.05 (yes: the best row is ahead of all); average: the best row against the second"
)


def _sideways(board: Board, section: Section) -> list[list[str]]:
    """The section turned on its side for a terminal: a line per column, a column per row; a cell's
    interval under its value, so that four rows fit beside the column names in 100 columns."""
    grid = _grid(board, section, bold=False)
    names = [f"#{r.rank} {row_name(r.row)}" if r.rank else row_name(r.row) for r in section.rows]
    out = [["column", *names, SIGNIFICANCE]]
    body, verdicts = grid[3:-1], grid[-1]
    out.append(["average", *(line[2] for line in body), verdicts[2]])
    for k in range(len(section.columns)):
        head = f"{grid[0][3 + k]} {grid[1][3 + k]}\n{grid[2][3 + k]}"
        out.append([head, *(line[3 + k].replace(" [", "\n[") for line in body), verdicts[3 + k]])
    return out


def text(board: Board) -> str:
    out = [line for said in board.heading for line in wrap(said)]
    for section in board.sections:
        out += wrap(f"== {section.title}")
        out += table(_sideways(board, section), head=1, keep=1)
        for heading, items in _footer(board, section):
            out += wrap(f"{heading}:")
            for item in items:
                out += wrap(item, indent="  ")
        out.append("")
    out += [line for note in board.notes for line in wrap(note)]
    out += wrap(LEGEND.format(best=f"* in its column's tie group: {TIE_GROUP}"))
    return "\n".join(out) + "\n"


def csv_safe(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row a spreadsheet shows as text: a cell starting with = + - @ (or a tab or CR) would be read
    as a formula (CSV injection), so such text cells get a leading apostrophe. Numbers are left alone."""
    return {k: f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA) else v for k, v in row.items()}


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def markdown(board: Board) -> str:
    out = [md_escape(said) + "\n" for said in board.heading]
    for section in board.sections:
        grid = _grid(board, section, bold=True)
        head = [" ".join(x for x in col if x) for col in zip(*grid[:3], strict=True)]
        out.append(f"### {md_escape(section.title)}\n")
        out += md_table(head, grid[3:])
        out.append("")
        for heading, items in _footer(board, section):
            out += [f"- {heading}:", *(f"  - {md_escape(item)}" for item in items)]
        out.append("")
    out += [md_escape(note) + "\n" for note in board.notes]
    out.append(md_escape(LEGEND.format(best=f"Bold: in its column's tie group: {TIE_GROUP}")))
    return "\n".join(out) + "\n"


CSV_FIELDS = (
    "section",
    "rank",
    "row",
    "published",
    "invented",
    "average",
    "task",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "best",
    "best_ahead_of_second",
    "p",
    "test",
    "note",
    "protocol_id",
    *(f for f in KEY_FIELDS if f != "task"),
    "run",
    "base",
    "adapter",
    "training",
    "n_clusters",
    "parse_failures",
    "top",
    "tie_group",
    "p_holm_vs_best",
    "sd",
)


def _tie_fields(section: Section, column: Column, i: int) -> dict[str, Any]:
    group = section.ties.get(column)
    return {
        "top": section.top.get(column) == i,
        "tie_group": None if group is None else i in group.members,
        "p_holm_vs_best": None if group is None else group.adjusted.get(i),
    }


def csv_text(board: Board) -> str:
    """One line per row and column (every cell with its protocol and interval): a pivot gives the table."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for section in board.sections:
        for i, ranked in enumerate(section.rows):
            row = ranked.row
            for column in section.columns:
                cell = row.cells.get(column)
                best = i in section.best.get(column, ())
                verdict = section.verdicts.get(column) if best else None
                protocol = column.protocol
                writer.writerow(
                    csv_safe(
                        {
                            "section": section.title,
                            "rank": ranked.rank,
                            "row": row.label,
                            "published": row.published,
                            "invented": row.invented,
                            "average": ranked.average,
                            "task": column.task,
                            "metric": column.metric,
                            "value": None if cell is None else cell.value,
                            "ci_low": cell.ci95[0] if cell and cell.ci95 else None,
                            "ci_high": cell.ci95[1] if cell and cell.ci95 else None,
                            "n": None if cell is None else cell.n,
                            "best": best,
                            "best_ahead_of_second": None if verdict is None else verdict.significant,
                            "p": None if verdict is None else verdict.p,
                            "test": None if verdict is None else verdict.text,
                            "note": None if cell is None else cell.note,
                            "protocol_id": board.protocol_ids[column.key],
                            **{
                                f: json.dumps(protocol[f])
                                if isinstance(protocol[f], list | dict)
                                else protocol[f]
                                for f in KEY_FIELDS
                                if f != "task"
                            },
                            "run": row.lineage.get("run"),
                            "base": row.lineage.get("base"),
                            "adapter": row.lineage.get("adapter"),
                            "training": row.lineage.get("training"),
                            **_tie_fields(section, column, i),
                            "sd": None if cell is None else cell.sd,
                            "n_clusters": cell.clusters[0] if cell and cell.clusters else None,
                            "parse_failures": None if cell is None else cell.parse_failures,
                        }
                    )
                )
    return buffer.getvalue()
