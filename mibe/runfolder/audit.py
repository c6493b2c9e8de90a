"""`mibe audit`: how much of a run's score is parsing; the paper's parser against the strict one.

Each saved output is read by both parsers (mibe.scoring.parsing); where they differ, the difference is put
into one kind (DISAGREEMENT_KINDS) so a reader sees which of the paper's flaws
(docs/parsing-audit.md) moved it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.backends.traces import answer_of
from mibe.runfolder import sharding
from mibe.types import Task

DISAGREEMENT_KINDS = (
    "substring inside a word",  # PubMedQA: "I cannot tell" reads as "no"
    "first-in-list",  # MTSample: "Neurosurgery" reads as "Surgery", listed first
    "stray capital letter",  # MedQA: "A 45-year-old ..." reads as answer A
    "two answers",  # "yes or no": the paper takes the first listed, strict says missing
    "case",  # MedQA "(c)", DDI "ddi-effect", HoC "Inducing angiogenesis": the paper finds nothing
    "character-set F1",  # emrQA: the paper's F1 is over sets of characters
    "other",
)
_EXAMPLE_CHARS = 160


def _found(out: str, answer_type: str, label: str, parser: str) -> bool:
    # One label alone: whether that parser's rule sees it anywhere in the output (list order aside).
    kind = "choice" if answer_type == "multi_label" else answer_type
    return parse_value(out, kind, (label,), parser) == label


def parse_value(out: str, answer_type: str, choices: tuple[str, ...], parser: str) -> Any:
    from mibe.scoring.kinds import parse

    return parse(out, answer_type, choices, parser).value


def _single_kind(
    out: str, answer_type: str, choices: tuple[str, ...], paper: str | None, strict: str | None
) -> str:
    named = {c for c in choices if _found(out, answer_type, c, "strict")}
    # The paper saw the strict answer too, but an earlier label in list order won: a label named
    # as a word ("no, not yes") or one inside the answer ("Surgery" in "Neurosurgery").
    inside = paper is not None and strict is not None and (paper in named or paper.lower() in strict.lower())
    if inside and _found(out, answer_type, str(strict), "paper"):
        return "first-in-list"
    if answer_type == "letter" and paper is not None and paper not in named:
        return "stray capital letter"  # a capital inside a word ("Answer") or the article "A"
    if len(named) >= 2:
        return "two answers"
    if paper is not None and paper not in named:
        return "substring inside a word"
    if paper is None and strict is not None and strict.lower() in out.lower():
        return "case"
    return "other"


def _multi_kind(out: str, choices: tuple[str, ...], paper: tuple, strict: tuple) -> str:
    for label in choices:
        if (label in paper) == (label in strict):
            continue
        if label in paper:  # a case-sensitive substring the word-bounded match rejects
            return "substring inside a word"
        return "case" if label.lower() in out.lower() else "other"
    return "other"


def _span_kind(paper: str, strict: str, gold: Any) -> str | None:
    from mibe.scoring.metrics import span_scores

    if paper != strict:
        return "other"  # the strict parser kept the first line or unwrapped quotes
    if span_scores(gold, paper, "paper") != span_scores(gold, strict, "strict"):
        return "character-set F1"  # one answer, two scores: only the F1 rule differs
    return None


def classify(text: str, task: Task, gold: Any = None) -> str | None:
    """The kind of disagreement between the paper and strict parsers on one output; None if none."""
    from mibe.scoring.kinds import parse_for

    paper, strict = (parse_for(task, text, p, gold).value for p in ("paper", "strict"))
    return _kind(text.strip(), task.answer_type, task.choices, gold, paper, strict)


def _kind(out: str, answer_type: str, choices: tuple, gold: Any, paper: Any, strict: Any) -> str | None:
    if answer_type == "span":
        return _span_kind(paper, strict, gold)
    if answer_type == "entities" and isinstance(paper, str) and paper.strip() == strict:
        return None  # the paper reads i2b2 outputs unstripped; the same text read the same
    if paper == strict:
        return None
    if answer_type == "multi_label":
        return _multi_kind(out, choices, paper, strict)
    if answer_type in ("choice", "letter"):
        return _single_kind(out, answer_type, choices, paper, strict)
    return "other"


def _shown(x: Any) -> str:
    if x is None:
        return "(no answer)"
    return ("; ".join(x) or "(none)") if isinstance(x, list | tuple) else str(x)


def audit_task(saved: Any, config: dict[str, Any], examples: int, show_credentialed: bool) -> dict[str, Any]:
    from mibe.runfolder.saved import credentialed, value
    from mibe.scoring import kinds

    task, entry = saved.task, saved.entry
    hidden = credentialed(saved.name, entry, task)  # from the run's record: not the task file's word alone
    report: dict[str, Any] = {
        "task": saved.name,
        "n": len(saved.rows),
        "run_parser": entry["protocol"].get("parser"),
        "credentialed": hidden,
        "differ": 0,
        "failure_differs": 0,  # documents one parser fails on and the other does not
        "parse_failures": {"paper": 0, "strict": 0},  # as summary, results.json and rescore count them
        "kinds": {},
        "metrics": {},
        "examples": {},
        "note": None,
        "draws": len(entry.get("fewshot_seeds") or []) or None,
        "model": model_vs_strict(saved.rows, examples, hide=hidden and not show_credentialed),
    }
    if entry["protocol"].get("scoring") == "loglikelihood":
        report["note"] = "scored by log-likelihood: no generated output to parse"
        return report
    if task.answer_type == "text":
        report["note"] = "both parsers read the stripped output: nothing can differ"
        return report
    golds = [value(r["gold"]) for r in saved.rows]
    preds: dict[str, list] = {"paper": [], "strict": []}
    for row, gold in zip(saved.rows, golds, strict=True):
        paper, strict = _read_row(report, task, row, gold, examples)
        preds["paper"].append(paper)
        preds["strict"].append(strict)
    report["kinds"] = {k: report["kinds"][k] for k in DISAGREEMENT_KINDS if k in report["kinds"]}
    names = [m for m in entry["metrics"] if kinds.fits(task.answer_type, m)]
    draw_of = [(r.get("draw"), r.get("permutation")) for r in saved.rows]  # mean over draws or orderings
    report["metrics"] = _parser_metrics(task, names, golds, preds, draw_of, config.get("seed", 1234))
    if hidden and not show_credentialed:
        report["examples"] = None  # DUA-covered text stays out unless asked for
    return report


def _read_row(report: dict[str, Any], task: Any, row: dict[str, Any], gold: Any, examples: int) -> tuple:
    """One document read by both parsers, counted into `report`; returns (paper, strict)."""
    from mibe.scoring import kinds

    text = answer_of(row) or ""  # the final answer; a truncated trace is never parsed
    read = {p: kinds.parse_for(task, text, p, gold) for p in ("paper", "strict")}
    paper, strict = read["paper"].value, read["strict"].value
    failed = {p: r.failed or bool(row.get("reasoning_truncated")) for p, r in read.items()}
    for parser, fails in failed.items():
        report["parse_failures"][parser] += fails
    report["failure_differs"] += failed["paper"] != failed["strict"]
    kind = _kind(text.strip(), task.answer_type, task.choices, gold, paper, strict)
    if kind is not None:
        report["differ"] += 1
        report["kinds"][kind] = report["kinds"].get(kind, 0) + 1
        shown = report["examples"].setdefault(kind, [])
        if len(shown) < examples:
            flat = " ".join(text.split())
            cut = flat[:_EXAMPLE_CHARS] + ("..." if len(flat) > _EXAMPLE_CHARS else "")
            shown.append({"id": row["id"], "output": cut, "paper": _shown(paper), "strict": _shown(strict)})
            shown[-1]["gold"] = _shown(gold)
    return paper, strict


def _parser_metrics(
    task: Any, names: list[str], golds: list, preds: dict[str, list], draw_of: list, seed: int
) -> dict[str, dict[str, Any]]:
    """Each metric under each parser, point values only (the audit compares parsers, not runs); a
    run of several shot draws gets the mean over its draws, as its results.json reports."""
    from mibe.scoring import kinds

    groups: dict[Any, list[int]] = {}
    for i, draw in enumerate(draw_of):
        groups.setdefault(draw, []).append(i)
    out: dict[str, dict[str, Any]] = {}
    for parser, values in preds.items():
        per = [
            kinds.score_task(
                task.answer_type, names, [golds[i] for i in idx], [values[i] for i in idx],
                task.choices, parser, seed=seed, n_boot=0,
            )["metrics"]
            for idx in groups.values()
        ]  # fmt: skip
        for m in names:
            got = [p[m]["value"] for p in per]
            out.setdefault(m, {})[parser] = None if None in got else sum(got) / len(got)
    return out


def model_vs_strict(rows: Sequence[dict[str, Any]], examples: int, hide: bool) -> dict[str, Any] | None:
    """Where the extractor (--parser model) and the strict parser read a run's answers differently;
    None for a run without model-parsed predictions."""
    read = [r for r in rows if "strict_prediction" in r]
    if not read:
        return None
    differ = [r for r in read if r["strict_prediction"] != r["prediction"]]
    shown = []
    for row in differ[:examples]:
        flat = " ".join(str(row.get("answer_text", row.get("raw_output", ""))).split())
        cut = flat[:_EXAMPLE_CHARS] + ("..." if len(flat) > _EXAMPLE_CHARS else "")
        shown.append(
            {"id": row["id"], "output": cut, "strict": _shown(row["strict_prediction"]),
             "model": _shown(row["prediction"]), "gold": _shown(row["gold"])}
        )  # fmt: skip
    right = {p: sum(1 for r in differ if r[k] == r["gold"]) for p, k in (("model", "prediction"),
             ("strict", "strict_prediction"))}  # fmt: skip
    # `hide`: credentialed text stays out unless asked for (--show-credentialed-examples).
    return {
        "n": len(read),
        "differ": len(differ),
        "right_when_differ": right,
        "examples": None if hide else shown,
    }


def _render_model(t: dict[str, Any], md: bool) -> list[str]:
    m = t.get("model")
    if not m:
        return []
    lines = [
        "",
        f"Extractor (--parser model) against strict: {m['differ']} of {m['n']} answers read differently; "
        f"where they differ the extractor is right {m['right_when_differ']['model']} times, strict "
        f"{m['right_when_differ']['strict']} times.",
    ]
    if m["examples"] is None:
        return [*lines, "Examples left out: credentialed data (--show-credentialed-examples shows them)."]
    for ex in m["examples"]:
        lines.append(
            f"- document {ex['id']}: model {ex['model']!r}, strict {ex['strict']!r}, gold {ex['gold']!r}: "
            f"{_code(ex['output'], md)}"
        )
    return lines


def audit(
    run_dir: str | Path,
    names: Sequence[str],
    examples: int = 3,
    show_credentialed: bool = False,
    trusted: dict | None = None,
) -> dict:
    """`trusted`: task files the user named with --tasks (a run folder's own task_file runs no hook)."""
    from mibe.runfolder.saved import pick, read_run, read_task

    run = read_run(run_dir)
    config = run.results.get("config") or {}
    saved = [read_task(run, name, trusted=trusted) for name in pick(run, names)]
    return {
        "run": str(run.path) + (f" ({part})" if (part := sharding.label(run.results)) else ""),
        "tasks": [audit_task(s, config, examples, show_credentialed) for s in saved],
    }


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def _table(rows: list[Sequence[str]], md: bool) -> list[str]:
    from mibe.textout import md_table, table

    return md_table(rows[0], rows[1:]) if md else table(rows, head=1, keep=1)


def _code(text: str, md: bool) -> str:
    return f"`{text.replace('`', chr(39))}`" if md else repr(text)


def render(report: dict[str, Any], md: bool) -> str:
    """The audit as markdown (`md`) or as plain text for a terminal."""
    head = "# Parsing audit" if md else "Parsing audit"
    lines = [f"{head}: {report['run']}", ""]
    lines.append(
        "Each output read by the paper's parser (Me-LLaMA's scoring scripts) and by mibe's strict "
        "parser; see docs/parsing-audit.md for the kinds."
    )
    summary = [("task", "n", "read differently", "metric", "paper", "strict", "paper - strict")]
    for t in report["tasks"]:
        # The paper's headline metric: Macro-F1 for every labelled task, F1 for emrQA.
        main = next((m for m in ("macro_f1", "f1", *t["metrics"]) if m in t["metrics"]), None)
        both = t["metrics"].get(main, {})
        share = f"{t['differ']} ({100 * t['differ'] / t['n']:.1f}%)" if t["n"] and not t["note"] else "-"
        diff = both["paper"] - both["strict"] if main and None not in both.values() else None
        gap = "-" if diff is None else f"{diff:+.3f}"
        summary.append(
            (
                t["task"],
                str(t["n"]),
                share,
                main or "-",
                _num(both.get("paper")),
                _num(both.get("strict")),
                gap,
            )
        )
    lines += ["", *_table(summary, md)]
    for t in report["tasks"]:
        lines += _render_task(t, md)
    return "\n".join(lines) + "\n"


def _render_task(t: dict[str, Any], md: bool) -> list[str]:
    lines: list[str] = []
    lines += ["", f"## {t['task']}" if md else f"== {t['task']} ==", ""]
    if t["note"]:
        lines.append(f"{t['task']}: {t['note']}.")
        lines += _render_model(t, md)
        return lines
    units = "documents"
    if t.get("draws"):
        units = f"outputs ({t['draws']} shot draws; metrics: mean over draws)"
    lines.append(
        f"{t['differ']} of {t['n']} {units} read differently (the run was scored with {t['run_parser']})."
    )
    pf = t["parse_failures"]
    lines.append(
        f"{t['failure_differs']} of {t['n']} {units} differ in parse-failure status (parse failures: "
        f"paper {pf['paper']}, strict {pf['strict']})."
    )
    rows = [("metric", "paper", "strict", "paper - strict")]
    for m, both in t["metrics"].items():
        gap = None if None in both.values() else both["paper"] - both["strict"]
        rows.append((m, _num(both["paper"]), _num(both["strict"]), "-" if gap is None else f"{gap:+.3f}"))
    lines += ["", *_table(rows, md), *_render_model(t, md)]
    if not t["kinds"]:
        return lines
    lines += ["", *_table([("kind of disagreement", "documents"), *map(_pair, t["kinds"].items())], md)]
    if t["examples"] is None:
        lines += ["", "Examples left out: credentialed data (--show-credentialed shows them)."]
        return lines
    lines += ["", "Examples:", ""]
    for kind, shown in t["examples"].items():
        for ex in shown:
            lines.append(
                f"- {kind}, document {ex['id']}: paper {ex['paper']!r}, strict {ex['strict']!r}, "
                f"gold {ex['gold']!r}: {_code(ex['output'], md)}"
            )
    return lines


def _pair(item: tuple[str, int]) -> tuple[str, str]:
    return item[0], str(item[1])
