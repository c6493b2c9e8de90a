"""The forgetting view (`--delta-vs-base`) as terminal text, markdown, CSV or HTML (aggregates only)."""

from __future__ import annotations

import csv
import io
from typing import Any

from mibe.boards import pages
from mibe.textout import md_escape, md_table, p_text, table, wrap

DASH = "—"
HEAD = ("task", "domain", "metric", "checkpoint", "base", "diff", "95% CI", "p", "test", "note")


def _num(value: float | None, sign: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _ci(ci: list[float] | None) -> str:
    return DASH if not ci else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _lines(pair: dict[str, Any]) -> list[list[str]]:
    out = []
    for r in pair["tasks"]:
        out.append(
            [
                r["task"],
                r["domain"],
                r["metric"] or DASH,
                _num(r.get("checkpoint")),
                _num(r.get("base")),
                _num(r.get("diff"), sign=True),
                _ci(r.get("ci95")),
                p_text(r.get("p")),
                r.get("test") or DASH,
                "; ".join(x for x in [r.get("note"), *r.get("protocol_differences", [])] if x) or "",
            ]
        )
    for name, avg in pair["averages"].items():
        if avg is not None:
            p = p_text(avg["p"])
            label = f"{name} average ({avg['n_tasks']} tasks)"
            out.append([label, name, "main", "", "", _num(avg["diff"], True), _ci(avg["ci95"]), p, "", ""])
    return out


def _title(pair: dict[str, Any]) -> str:
    c, b = pair["checkpoint"], pair["base"]
    return f"{c['label']} - {b['label']} (base found by {pair['found_by']})"


def _notes(report: dict[str, Any], pair: dict[str, Any]) -> list[str]:
    notes = [
        f"checkpoint: {pair['checkpoint']['run']}; base: {pair['base']['run']}",
        "diff: checkpoint - base on each task's main metric (the first of the paper's metrics; a user "
        "task's first listed), on the documents both runs scored; p: McNemar's exact test for accuracy "
        f"and exact match, else the paired bootstrap ({report['bootstrap']} resamples, seed "
        f"{report['seed']}). Averages: unweighted over the domain's tasks, interval and p from averaging "
        "the tasks' bootstrap differences resample by resample.",
    ]
    if pair["only_in_one"]:
        notes.append("tasks in only one of the runs (left out): " + ", ".join(pair["only_in_one"]))
    return notes


def text(report: dict[str, Any]) -> str:
    out = []
    for pair in report["pairs"]:
        out += wrap(f"== {_title(pair)}")
        out += table([list(HEAD), *_lines(pair)], head=1, keep=3)
        out += [line for note in _notes(report, pair) for line in wrap(note)] + [""]
    return "\n".join(out)


def markdown(report: dict[str, Any]) -> str:
    out = []
    for pair in report["pairs"]:
        out += [f"### {md_escape(_title(pair))}", "", *md_table(HEAD, _lines(pair))]
        out += ["", *(f"- {md_escape(n)}" for n in _notes(report, pair)), ""]
    return "\n".join(out)


def csv_text(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["checkpoint", "base", "found_by", *HEAD])
    for pair in report["pairs"]:
        for line in _lines(pair):
            writer.writerow([pair["checkpoint"]["run"], pair["base"]["run"], pair["found_by"], *line])
    return buffer.getvalue()


def html(report: dict[str, Any]) -> str:
    pairs = [
        {"title": _title(pair), "lines": _lines(pair), "notes": _notes(report, pair)}
        for pair in report["pairs"]
    ]
    return pages.render("delta.html", head=HEAD, pairs=pairs)


def render(report: dict[str, Any], fmt: str) -> str:
    return {"table": text, "md": markdown, "csv": csv_text, "html": html}[fmt](report)
