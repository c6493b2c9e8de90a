"""A `mibe compare` report as terminal text, markdown, CSV or JSON (aggregates only)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from mibe.boards.render import csv_safe
from mibe.textout import md_escape, md_table, p_text, table, wrap

DASH = "—"
HEAD = (
    "task",
    "metric",
    "n",
    "A",
    "B",
    "A-B",
    "95% CI",
    "p boot",
    "McNemar A|B p",
    "p Holm",
    "sig.",
    "agree",
)


def _num(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


_p = p_text


def _n(task: dict[str, Any]) -> str:
    """Shared documents, and the clusters they were resampled as (when they were)."""
    clusters = task.get("n_clusters")
    return str(task["n_shared"]) + ("" if clusters is None else f" ({clusters} clusters)")


def _lines(report: dict[str, Any]) -> list[list[str]]:
    out = []
    for task in report["tasks"]:
        for m in task["metrics"]:
            ci = m.get("ci95")
            mc = m.get("mcnemar")
            sig = {True: "yes", False: "no", None: "n/t"}[m["significant"]]
            if m["significant"] is None and m.get("note"):  # not testable: no interval, no p
                ci = mc = None
                m = {**m, "p_bootstrap": None, "p_holm": None}
            out.append(
                [
                    task["task"] + (" (invented)" if task["invented"] else ""),
                    m["metric"],
                    _n(task),
                    _num(m["a"]),
                    _num(m["b"]),
                    DASH if m["diff"] is None else f"{m['diff']:+.3f}",
                    DASH if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]",
                    _p(m.get("p_bootstrap")),
                    DASH if mc is None else f"{mc['a_only']}|{mc['b_only']} {_p(mc['p'])}",
                    _p(m.get("p_holm")),
                    sig,
                    _num(task["agreement"]),
                ]
            )
    return out


def _notes(report: dict[str, Any]) -> list[str]:
    a, b = report["a"], report["b"]
    notes = [
        f"A: {a['label']} ({a['run']})",
        f"B: {b['label']} ({b['run']})",
        f"Over the documents both runs scored. Paired bootstrap: {report['bootstrap']} resamples, "
        f"seed {report['seed']}. The deciding test is McNemar's exact test (accuracy, exact_match: "
        "A|B = documents only A, only B got right), else the paired bootstrap. p Holm: its p adjusted "
        f"by Holm's step-down method over the {_family(report)}; sig.: p Holm < {report['alpha']} "
        "(missing rates: raw p). agree: share of shared documents with the same prediction.",
    ]
    for task in report["tasks"]:
        if task["redacted"]:
            detail = ["samples redacted (--redact-samples): paired on per-document scores, no agreement"]
        else:
            detail = [f"identical raw outputs {task['output_agreement']:.3f}"]
        if task.get("draws"):
            detail.append(_draws_note(task["draws"]))
        if task["protocol_differences"]:
            detail.append("protocols differ: " + "; ".join(task["protocol_differences"]))
        if task["gold_mismatch"]:
            detail.append(f"{task['gold_mismatch']} shared ids with different golds left out")
        failures = task.get("parse_failures") or {}
        if failures.get("a") is not None or failures.get("b") is not None:
            detail.append(f"parse failures A {failures.get('a', DASH)}, B {failures.get('b', DASH)}")
        if task["n_shared"] < max(task["n_a"], task["n_b"]):
            detail.append(f"A scored {task['n_a']}, B {task['n_b']}")
        notes.append(f"{task['task']}: " + "; ".join(detail))
        if task.get("n_clusters") is not None:  # else documents were resampled one by one, as always
            notes.append(f"{task['task']}: {_cluster_note(task)}")
        untestable: dict[str, list[str]] = {}  # one line per reason, not per metric
        for m in task["metrics"]:
            if m.get("note"):
                untestable.setdefault(m["note"], []).append(m["metric"])
        notes += [f"{task['task']} {', '.join(ms)}: not testable: {why}" for why, ms in untestable.items()]
        notes += [
            f"{task['task']} {m['metric']}: {m['recomputed']}" for m in task["metrics"] if m.get("recomputed")
        ]
    notes += [f"{task}: skipped: {why}" for task, why in report["skipped"].items()]
    return notes


def _draws_note(draws: dict[str, list[Any]]) -> str:
    """How a run of several shot draws was compared (docs/statistics.md says why)."""

    def side(seeds: list[Any]) -> str:
        if seeds and all(str(s).startswith("ordering ") for s in seeds):
            return "mean over option orderings " + ", ".join(str(s).removeprefix("ordering ") for s in seeds)
        return "mean over shot draws " + ", ".join(map(str, seeds)) if seeds else "one run"

    pairing = "draw for draw" if draws["a"] == draws["b"] else "every draw of A against every draw of B"
    return (
        f"A: {side(draws['a'])}; B: {side(draws['b'])}; documents resampled once for all draws "
        f"(paired bootstrap, no McNemar); agreement {pairing}"
    )


def _cluster_note(task: dict[str, Any]) -> str:
    return (
        f"{task['n_clusters']} clusters of documents made together, resampled whole; right/wrong metrics "
        "by the clustered McNemar test (Durkalski 2003) instead of the exact one"
    )


def _family(report: dict[str, Any]) -> str:
    family = report.get("family") or {}
    return f"{family.get('size', 0)} tests of this comparison (every tested task x metric but missing rates)"


def text(report: dict[str, Any]) -> str:
    rows = table([list(HEAD), *_lines(report)], head=1, keep=2)
    notes = [line for note in _notes(report) for line in wrap(note)]
    return "\n".join([*rows, "", *notes]) + "\n"


def markdown(report: dict[str, Any]) -> str:
    out = md_table(HEAD, _lines(report))
    return "\n".join([*out, "", *(f"- {md_escape(n)}" for n in _notes(report))]) + "\n"


CSV_FIELDS = (
    "task",
    "metric",
    "n_shared",
    "n_clusters",
    "a",
    "b",
    "diff",
    "ci_low",
    "ci_high",
    "p_bootstrap",
    "mcnemar_a_only",
    "mcnemar_b_only",
    "mcnemar_p",
    "p_holm",
    "significant",
    "test",
    "note",
    "agreement",
    "output_agreement",
    "invented",
    "protocol_differences",
)


def csv_text(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for task in report["tasks"]:
        for m in task["metrics"]:
            ci, mc = m.get("ci95") or (None, None), m.get("mcnemar") or {}
            writer.writerow(
                csv_safe(
                    {
                        "task": task["task"],
                        "metric": m["metric"],
                        "n_shared": task["n_shared"],
                        "n_clusters": task.get("n_clusters"),
                        "a": m["a"],
                        "b": m["b"],
                        "diff": m["diff"],
                        "ci_low": ci[0],
                        "ci_high": ci[1],
                        "p_bootstrap": m.get("p_bootstrap"),
                        "mcnemar_a_only": mc.get("a_only"),
                        "mcnemar_b_only": mc.get("b_only"),
                        "mcnemar_p": mc.get("p"),
                        "p_holm": m.get("p_holm"),
                        "significant": m["significant"],
                        "test": m["test"],
                        "note": m["note"],
                        "agreement": task["agreement"],
                        "output_agreement": task["output_agreement"],
                        "invented": task["invented"],
                        "protocol_differences": "; ".join(task["protocol_differences"]),
                    }
                )
            )
    return buffer.getvalue()


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    return {"table": text, "md": markdown, "csv": csv_text}[fmt](report)
