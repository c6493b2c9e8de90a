"""Rows -> sections: rows linked by shared columns are ranked together; each section gets averages over
complete rows, ranks, the best cell per column, and whether that best row is significantly ahead."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mibe.boards.compare import ALPHA, paired_metric
from mibe.boards.table import LOWER_IS_BETTER, Column, Row, Run, averaged, column_order, load_run, shown
from mibe.scoring import multiplicity
from mibe.scoring.stats import MIN_BOOTSTRAP_N, mean_of
from mibe.textout import p_is

AVERAGE = "average"


@dataclass(frozen=True)
class Verdict:
    """Per column: is the best row ahead of every other row after Holm over the column (its tie group
    is then the best row alone)? On the average: is the best row ahead of the second? None when it
    can't be told (and `text` says why)."""

    significant: bool | None
    text: str
    p: float | None = None  # columns: the largest Holm-adjusted p against the best (the closest row)
    test: str | None = None
    n: int | None = None
    tied: tuple[str, ...] = ()  # columns: the tie group's rows, the best first


@dataclass
class Ranked:
    row: Row
    average: float | None
    rank: int | None


@dataclass
class Section:
    title: str
    invented: bool
    columns: list[Column]
    averaged: list[Column]  # the columns the average is over
    rows: list[Ranked]
    # column -> the tie group's row indices (once judged; before, the best value's); AVERAGE -> rank 1
    best: dict[Any, set[int]] = field(default_factory=dict)
    verdicts: dict[Any, Verdict] = field(default_factory=dict)
    top: dict[Any, int] = field(default_factory=dict)  # column -> the best row (the first on a tie)
    ties: dict[Any, multiplicity.TieGroup] = field(default_factory=dict)  # column -> its tie group
    # General-domain tasks (`domain: general`) stay out of the average, which is then the medical one;
    # their own average is kept apart: the columns, and each ranked row's value (None: incomplete).
    general: list[Column] = field(default_factory=list)
    general_average: list[float | None] = field(default_factory=list)


def _groups(rows: Sequence[Row]) -> list[list[Row]]:
    """Connected components of 'shares a protocol key', invented and real never mixed."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[bool, Any], int] = {}
    for i, row in enumerate(rows):
        for column in row.cells:
            j = owner.setdefault((row.invented, column.key), i)
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(rows)):
        groups.setdefault(find(i), []).append(i)
    # Real runs first, then the published rows on their own, then invented data.
    order = sorted(
        groups.values(), key=lambda g: (rows[g[0]].invented, all(rows[i].published for i in g), g[0])
    )
    return [[rows[i] for i in g] for g in order]


def _title(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    if all(r.published for r in rows):
        head = "Published rows (no samples: intervals and significance not available)"
    elif rows[0].invented:
        head = "Invented data (demo documents and fixtures: not comparable with real scores)"
    else:
        head = "Runs" + (" and published rows" if any(r.published for r in rows) else "")
    common = []
    for name, phrase in (
        ("shots", "{}-shot"),
        ("scoring", "{}"),
        ("parser", "parser {}"),
        ("chat_template", "chat template {}"),
        ("limit", "limit {}"),
    ):
        values = {json.dumps(c.protocol[name]) for c in columns}
        if len(values) == 1:
            value = columns[0].protocol[name]
            if name == "chat_template":
                common.append("no chat template" if value is None else phrase.format(value))
            elif name != "limit" or value is not None:
                common.append(phrase.format(value))
    return head + (": " + ", ".join(common) if common else "")


def _better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


def _ranks(averages: Sequence[float | None]) -> list[int | None]:
    # Competition ranking (1, 2, 2, 4) over complete rows only.
    present = [a for a in averages if a is not None]
    return [None if a is None else 1 + sum(1 for b in present if b > a + 1e-12) for a in averages]


def _average(row: Row, over: Sequence[Column]) -> float | None:
    """The mean over `over`, complete rows only."""
    values = [row.cells[c].value for c in over if c in row.cells]
    if not over or len(values) < len(over) or any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def general_lines(section: Section) -> list[str]:
    """The general-domain average of each row, for the notes under a table (none without such tasks)."""
    if not section.general:
        return []
    over = ", ".join(sorted({f"{c.task} {c.metric}" for c in section.general}))
    values = [
        f"{x.row.label} {'n/a (incomplete)' if v is None else f'{v:.3f}'}"
        for x, v in zip(section.rows, section.general_average, strict=True)
    ]
    return [
        f"General-domain average (over {over}; not in the average, which is medical): " + "; ".join(values)
    ]


def cluster_lines(section: Section) -> list[str]:
    """Per task whose intervals resampled clusters in some row: each row's cluster count, and the rows
    whose documents were resampled one by one (runs scored before clusters). Nothing otherwise."""
    out = []
    for task in dict.fromkeys(c.task for c in section.columns):
        said: dict[str, list[str]] = {}
        for x in section.rows:
            cells = [cell for c, cell in x.row.cells.items() if c.task == task and c in section.columns]
            if not cells or x.row.published:
                continue
            found = cells[0].clusters
            what = "documents resampled" if found is None else f"{found[0]} clusters ({found[1]})"
            said.setdefault(what, []).append(x.row.label)
        if any(what != "documents resampled" for what in said):
            parts = [f"{what}: {', '.join(labels)}" for what, labels in said.items()]
            out.append(f"{task} intervals and tests resample clusters of documents: " + "; ".join(parts))
    return out


def build_section(rows: Sequence[Row], all_metrics: bool, subset: frozenset[str] | None = None) -> Section:
    columns = sorted({c for r in rows for c in r.cells if shown(c, all_metrics)}, key=column_order)
    # A column nobody has a number for (BERTScore offline, say) can't make a row incomplete.
    valued = [c for c in columns if any(r.cells.get(c, None) and r.cells[c].value is not None for r in rows)]
    general_tasks = {t for r in rows for t in r.general}
    # --average NAME: the average (and the ranks) over that subset of tasks only
    over = [
        c
        for c in valued
        if averaged(c) and c.task not in general_tasks and (subset is None or c.task in subset)
    ]
    general = [c for c in valued if averaged(c) and c.task in general_tasks]
    averages = [_average(r, over) for r in rows]
    ranked = [Ranked(r, a, k) for r, a, k in zip(rows, averages, _ranks(averages), strict=True)]
    ranked.sort(key=lambda x: (x.rank is None, x.rank or 0))
    section = Section(_title(rows, columns), rows[0].invented, columns, over, ranked)
    section.general = general
    section.general_average = [_average(x.row, general) for x in ranked]
    for column in valued:
        values = [(i, x.row.cells[column].value) for i, x in enumerate(ranked) if column in x.row.cells]
        values = [(i, v) for i, v in values if v is not None]
        top = values[0][1]
        for _, v in values:
            top = v if _better(column.metric, v, top) else top
        best = {i for i, v in values if abs(v - top) < 1e-12}
        if len(values) > len(best):  # one row alone, or all rows equal: nothing is best
            section.best[column] = best
    top_avg = [i for i, x in enumerate(ranked) if x.rank == 1]
    if 0 < len(top_avg) < sum(1 for x in ranked if x.rank is not None):
        section.best[AVERAGE] = set(top_avg)
    return section


def tie(section: Section, column: Column, run: Any, n_boot: int, seed: int) -> Verdict:
    """The column's tie group: the best row, tested against every other row with a value (the test
    `mibe compare` uses), Holm over those tests; the rows with adjusted p >= 0.05 join the best."""
    values = {
        i: x.row.cells[column].value
        for i, x in enumerate(section.rows)
        if column in x.row.cells and x.row.cells[column].value is not None
    }
    if len(values) < 2:
        return Verdict(None, "only one row")
    best = multiplicity.best_row(values, lower_is_better=column.metric in LOWER_IS_BETTER)
    section.top[column] = best
    if len(set(values.values())) == 1:  # every row has the same value: nothing to test or mark
        section.best.pop(column, None)
        return Verdict(None, "tied: every row has the same value")
    p_vs_best: dict[int, float | None] = {}
    tests: dict[int, tuple[str, int | None, str | None]] = {}
    for i in values:
        if i == best:
            continue
        blocked = _untestable(section.rows[best].row, section.rows[i].row)
        if blocked:
            p_vs_best[i], tests[i] = None, ("", None, blocked.text.removeprefix("not testable: "))
            continue
        outcome = paired_metric(
            run(best, column.task), run(i, column.task), column.task, column.metric, n_boot, seed
        )
        p, test, why = outcome.decisive()
        p_vs_best[i], tests[i] = p, (test, outcome.paired.n if outcome.paired else None, why)
    group = multiplicity.tie_group(values, best, p_vs_best, ALPHA)
    # A row with the best value itself is tied with it, tested or not (too few clusters, no samples).
    level = {i for i, v in values.items() if abs(v - values[best]) < 1e-12}
    group = replace(group, members=group.members | level, untested=group.untested - level)
    section.ties[column], section.best[column] = group, set(group.members)
    return _tie_verdict(section, group, tests)


def _tie_verdict(section: Section, group: multiplicity.TieGroup, tests: dict) -> Verdict:
    label = lambda i: section.rows[i].row.label  # noqa: E731
    if not group.adjusted:  # nothing could be tested against the best row
        return Verdict(None, f"not testable: {next(iter(tests.values()))[2]}")
    closest = max(group.adjusted, key=lambda i: group.adjusted[i])
    p, (test, n, _) = group.adjusted[closest], tests[closest]
    members = (group.best, *sorted(group.members - {group.best}))
    alone = members == (group.best,)
    text = f"{'yes' if alone else 'no'} ({p_is(p)} Holm over {len(group.adjusted)}, {test}, n={n})"
    text += f"; tie group: {', '.join(label(i) for i in members)}"
    if group.untested:
        text += f"; untested: {', '.join(sorted(label(i) for i in group.untested))}"
    return Verdict(alone, text, p, test, n, tuple(label(i) for i in members))


def _verdict(p: float | None, test: str, why: str | None, n: int | None, alpha: float) -> Verdict:
    if why:
        return Verdict(None, f"not testable: {why}", test=test or None, n=n)
    assert p is not None
    answer = "yes" if p < alpha else "no"
    return Verdict(p < alpha, f"{answer} ({p_is(p)}, {test}, n={n})", p, test, n)


def _untestable(a: Row, b: Row) -> Verdict | None:
    if a.published or b.published:
        return Verdict(None, "not testable: published rows have no samples")
    return None


def judge(section: Section, n_boot: int, seed: int) -> None:
    """Fill section.verdicts: the best row against the second, per column and on the average."""
    runs: dict[Any, Run] = {}

    def run(i: int, task: str) -> Run:
        row = section.rows[i].row
        folder = row.task_runs.get(task, row.run_dir)  # --group: each task from its own run
        if folder not in runs:
            runs[folder] = load_run(folder)  # type: ignore[arg-type]
        return runs[folder]

    for column in section.columns:
        if any(x.row.cells.get(column) and x.row.cells[column].value is not None for x in section.rows):
            section.verdicts[column] = tie(section, column, run, n_boot, seed)
    ranked = [i for i, x in enumerate(section.rows) if x.rank is not None]
    if len(ranked) < 2:
        section.verdicts[AVERAGE] = Verdict(None, "fewer than two complete rows")
        return
    if len(section.best.get(AVERAGE, ())) != 1:
        section.verdicts[AVERAGE] = Verdict(None, "tied")
        return
    i, j = ranked[0], ranked[1]
    blocked = _untestable(section.rows[i].row, section.rows[j].row)
    if blocked:
        section.verdicts[AVERAGE] = blocked
        return
    parts = []
    for column in section.averaged:
        outcome = paired_metric(
            run(i, column.task), run(j, column.task), column.task, column.metric, n_boot, seed
        )
        if outcome.paired is None:
            section.verdicts[AVERAGE] = Verdict(None, f"not testable: {column.task} {outcome.reason}")
            return
        parts.append(outcome.paired)
    joint = mean_of(parts)
    n = min(p.units for p in parts)  # clusters where a task resampled clusters
    why = (
        None
        if n >= MIN_BOOTSTRAP_N
        else f"{n} shared documents or clusters (a bootstrap test needs {MIN_BOOTSTRAP_N})"
    )
    section.verdicts[AVERAGE] = _verdict(joint.p, "paired bootstrap over tasks", why, n, ALPHA)


def sections(
    rows: Sequence[Row], all_metrics: bool, n_boot: int, seed: int, subset: frozenset[str] | None = None
) -> list[Section]:
    out = []
    for group in _groups(rows):
        section = build_section(group, all_metrics, subset)
        if section.columns:
            judge(section, n_boot, seed)
            out.append(section)
    return out
