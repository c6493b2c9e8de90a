"""`mibe view`: one run's samples, or two runs' differences, as one self-contained HTML page.

The page works offline from a file: inline CSS and JS, no fetch. The samples are embedded once as JSON
in a `<script type="application/json">` block and drawn by the page's script a page of rows at a time,
with `textContent` only, so a model output holding `<script>` shows as text and runs nothing. Every
static part (labels, metrics, protocols, the paired tests) is built here and goes through `escape`.

What is decided here, in Python, and not in the page:
- credentialed tasks are cut down before the JSON is written (ids, scores, flags, and the labels of
  label tasks), so their text is absent from the file, not hidden in it;
- long texts are clipped (head and tail kept, with the count of characters cut);
- where the output names the prediction (highlighted), and how both parsers read the output;
- which documents two runs disagree on, and the paired test of each task.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from mibe.scoring import stats
from mibe.scoring.kinds import parse
from mibe.types import MibeError

LABEL_TYPES = ("choice", "letter", "multi_label")
SINGLE_LABEL = ("choice", "letter")
SCORE_TOLERANCE = 1e-9
"""Two scores closer than this are the same score (floating-point noise of a re-run metric)."""
PROMPT_LIMIT = 4_000  # characters of a prompt kept: half from the head, half from the tail
TEXT_LIMIT = 6_000  # the same for outputs, reasoning, and the golds and predictions of text tasks
N_BOOT, SEED = 1000, 1234  # mibe compare's defaults: the page shows the p-values compare prints
PAGE_ROWS = 100  # rows drawn at once: the DOM stays small whatever the number of samples


@dataclass(frozen=True)
class ViewRun:
    """One run as the page reads it.

    `samples`: task -> rows as in samples/<task>.jsonl. `tasks`: task -> {"answer_type", "choices",
    "credentialed"}, for every task in `samples`."""

    label: str
    results: Mapping[str, Any]
    samples: Mapping[str, Sequence[Mapping[str, Any]]]
    tasks: Mapping[str, Mapping[str, Any]]
    run: Any = None  # the run folder as read (mibe.runfolder.saved.SavedRun): the paired tests need it


@dataclass(frozen=True)
class TaskDiff:
    """Two runs on one task: the documents they share and the ones they disagree on."""

    task: str
    answer_type: str
    rule: str  # what "disagree" means for this task, in words
    shared: int  # documents with the same id (and the same gold) in both runs
    gold_mismatch: int  # same id, different gold: different data, left out
    differing: tuple[str, ...]  # ids, in run A's order
    # The task's main metric, A - B with `mibe compare`'s test (one pairing, one seed rule: the same
    # p-values on both surfaces); None for runs not read from folders.
    paired: stats.Paired | None = None
    mcnemar: stats.McNemar | None = None  # metrics right or wrong per document (accuracy)
    metric: str | None = None
    note: str | None = None  # why it can't be tested


# ---------------------------------------------------------------------------------------------------
# Pairing two runs


def _norm(value: Any, answer_type: str) -> Any:
    if answer_type == "multi_label":
        return tuple(sorted(value or ()))
    return tuple(value) if isinstance(value, list) else value


def _disagree(answer_type: str, ra: Mapping[str, Any], rb: Mapping[str, Any]) -> bool:
    # Label tasks: the predictions differ. Free-text tasks: the per-document scores differ (two
    # wordings of one answer are not a difference worth reading). Rows without predictions (redacted
    # samples) fall back to scores.
    if answer_type in LABEL_TYPES and "prediction" in ra and "prediction" in rb:
        return _norm(ra["prediction"], answer_type) != _norm(rb["prediction"], answer_type)
    sa, sb = ra.get("score"), rb.get("score")
    if sa is None or sb is None:
        return (sa is None) != (sb is None)
    return abs(float(sa) - float(sb)) > SCORE_TOLERANCE


def _rule(answer_type: str) -> str:
    if answer_type in LABEL_TYPES:
        return "predicted labels differ"
    return f"per-document scores differ by more than {SCORE_TOLERANCE:g}"


def row_key(row: Mapping[str, Any]) -> str:
    """A row's name on the page: its document id, and its shot draw in a run of several draws or its
    ordering of the options under --choice-permutations (a document appears once per draw or ordering
    there, so the id alone would name several rows; the page lists them together, in index order)."""
    ident = str(row.get("id"))
    if row.get("permutation") is not None:
        order = "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i] for i in row.get("option_order") or [])
        return f"{ident} (ordering {row['permutation']}: options {order or '?'} shown as A, B, ...)"
    return ident if row.get("draw") is None else f"{ident} (draw {row['draw']})"


def diff_task(
    task: str, answer_type: str, rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]]
) -> TaskDiff:
    """Pair one task's documents by id (and shot draw: draw with draw) and test A - B on the shared ones."""
    by_id = {row_key(r): r for r in rows_b}
    differing, shared, mismatch = [], 0, 0
    for ra in rows_a:
        rb = by_id.get(row_key(ra))
        if rb is None:
            continue
        if "gold" in ra and "gold" in rb and _norm(ra["gold"], answer_type) != _norm(rb["gold"], answer_type):
            mismatch += 1
            continue
        shared += 1
        if _disagree(answer_type, ra, rb):
            differing.append(row_key(ra))
    return TaskDiff(task, answer_type, _rule(answer_type), shared, mismatch, tuple(differing))


def _main_metric(task: str, metrics: Sequence[str]) -> str | None:
    """The metric a task's paired test is shown for: the paper's first, else the task's first."""
    from mibe.boards.table import LOWER_IS_BETTER, PAPER_METRICS, is_judge

    for metric in (*PAPER_METRICS.get(task, ()), *metrics):
        if metric in metrics and metric not in LOWER_IS_BETTER and not is_judge(metric):
            return metric
    return None


def _tested(a: ViewRun, b: ViewRun, d: TaskDiff) -> TaskDiff:
    from dataclasses import replace

    from mibe.boards.compare import paired_metric

    if a.run is None or b.run is None:
        return d
    metric = _main_metric(d.task, list((a.results["tasks"].get(d.task) or {}).get("metrics") or {}))
    if metric is None:
        return d
    outcome = paired_metric(a.run, b.run, d.task, metric, N_BOOT, SEED)
    _, _, why = outcome.decisive()  # compare's verdict: where it prints no p, neither does the page
    return replace(d, paired=outcome.paired, mcnemar=outcome.mcnemar, metric=metric, note=why)


def diff_runs(a: ViewRun, b: ViewRun) -> list[TaskDiff]:
    """Every task both runs hold, paired by document id; refused when they share no document."""
    diffs = [
        diff_task(t, a.tasks[t]["answer_type"], a.samples[t], b.samples[t])
        for t in a.samples
        if t in b.samples
    ]
    diffs = [_tested(a, b, d) if d.shared else d for d in diffs]
    if not any(d.shared for d in diffs):
        raise MibeError(
            f"{b.label}: shares no document with {a.label} (same task and id, same gold; runs of several "
            "shot draws pair draw with draw); compare runs of the same tasks, data and --fewshot-seeds, "
            "or view each run alone"
        )
    return diffs


def protocol_differences(a: ViewRun, b: ViewRun) -> dict[str, list[tuple[str, Any, Any]]]:
    """Per task both runs scored: (field, A's value, B's value) of each protocol field that differs."""
    out: dict[str, list[tuple[str, Any, Any]]] = {}
    tasks_a, tasks_b = a.results.get("tasks") or {}, b.results.get("tasks") or {}
    for task in tasks_a:
        if task not in tasks_b:
            continue
        pa, pb = tasks_a[task].get("protocol") or {}, tasks_b[task].get("protocol") or {}
        fields = [k for k in {**pa, **pb} if pa.get(k) != pb.get(k)]
        if fields:
            out[task] = [(k, pa.get(k), pb.get(k)) for k in fields]
    return out


# ---------------------------------------------------------------------------------------------------
# Texts: highlight, clip


def _find(text: str, needle: str, whole_word: bool) -> tuple[int, int] | None:
    if not needle:
        return None
    pattern = re.escape(needle)
    word = re.search(r"(?<!\w)" + pattern + r"(?!\w)", text, re.IGNORECASE)
    if word or whole_word:
        return (word.start(), word.end()) if word else None
    m = re.search(pattern, text, re.IGNORECASE)
    return (m.start(), m.end()) if m else None


def highlight(raw: str, answer_type: str, prediction: Any) -> list[tuple[int, int]]:
    """Where the output names the prediction: the first case-insensitive occurrence of each predicted
    label (standing as a word where it does; a letter only as a word), or of a text prediction. It
    shows where the label appears, which need not be where the parser read it."""
    if answer_type in SINGLE_LABEL:
        labels = [] if prediction in (None, "") else [str(prediction)]
    elif answer_type == "multi_label":
        labels = [str(x) for x in prediction or ()]
    else:
        # A prediction that is the whole output (text tasks, the paper's parser) is not marked: a
        # highlight over everything says nothing.
        whole = _text(prediction).strip() == raw.strip()
        labels = [] if whole else [_text(prediction).strip()]
    found = [_find(raw, x, whole_word=answer_type == "letter") for x in labels]
    spans = sorted(s for s in found if s is not None)
    merged: list[tuple[int, int]] = []
    for start, end in spans:  # multi-label names may overlap ("cell death" in "resisting cell death")
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def clip(text: str, limit: int, marks: Sequence[tuple[int, int]] = ()) -> Any:
    """The page's form of a text: a string, or a list of pieces (a string; [string] marked; an int,
    the number of characters cut between head and tail)."""
    pieces: list[tuple[str, bool]] = []
    at = 0
    for start, end in marks:
        pieces += [(text[at:start], False), (text[start:end], True)]
        at = end
    pieces.append((text[at:], False))
    if len(text) > limit:
        head, tail = limit // 2, limit - limit // 2
        pieces = [*_take(pieces, head), ("", len(text) - head - tail), *_take(pieces, tail, from_end=True)]
    out: list[Any] = []
    for piece, kind in pieces:
        if kind is True:
            out.append([piece])
        elif kind is not False:
            out.append(kind)
        elif piece:
            out.append(piece)
    if len(out) == 1 and isinstance(out[0], str):
        return out[0]
    return out or ""


def _take(pieces: list[tuple[str, Any]], n: int, from_end: bool = False) -> list[tuple[str, Any]]:
    out, left = [], n
    for piece, marked in reversed(pieces) if from_end else pieces:
        if left <= 0:
            break
        part = piece[len(piece) - left :] if from_end and len(piece) > left else piece[:left]
        out.append((part, marked))
        left -= len(part)
    return out[::-1] if from_end else out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(x) for x in value)
    return str(value)


def _labels(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(x) for x in value] if isinstance(value, (list, tuple)) else [str(value)]


def _reading(raw: str, answer_type: str, choices: tuple[str, ...], parser: str, match: str = "first") -> str:
    got = parse(raw, answer_type, choices, parser, match)
    value = _text(got.value) if answer_type != "multi_label" else ", ".join(got.value) or "(no label)"
    value = "(no answer)" if got.value is None else value
    shown = value if len(value) <= 300 else value[:300] + f"… ({len(value)} characters)"
    return shown + (" (parse failure)" if got.failed else "")


# ---------------------------------------------------------------------------------------------------
# The embedded data


def _flags(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if row.get("parse_failed"):
        out["pf"] = 1
    if row.get("truncated_tokens"):
        out["tr"] = int(row["truncated_tokens"])
    if "raw_output" in row and not _text(row["raw_output"]).strip():
        out["em"] = 1
    if "reasoning_truncated" in row:
        out["rt"] = 1 if row["reasoning_truncated"] else 0
    return out


def _row(
    run: int, task: str, meta: Mapping[str, Any], row: Mapping[str, Any], show: bool, prompts: Any
) -> dict:
    """One sample as the page holds it. A credentialed task without `show` keeps ids, scores, flags and
    (label tasks only) the labels: nothing here can carry the documents' text."""
    kind = meta["answer_type"]
    out: dict[str, Any] = {"r": run, "t": task, "id": row_key(row), "s": _score(row.get("score"))}
    if row.get("index") is not None:
        out["i"] = row["index"]
    out.update(_flags(row))
    if kind in LABEL_TYPES:
        if "prediction" in row:
            out["pl"] = _labels(row["prediction"])
        if "gold" in row:
            out["gl"] = _labels(row["gold"])
    if meta.get("credentialed") and not show:
        out["x"] = 1
        return out
    if kind not in LABEL_TYPES:
        if "prediction" in row:
            pred = _text(row["prediction"])
            if "raw_output" in row and pred.strip() == _text(row["raw_output"]).strip():
                out["po"] = 1  # the prediction is the output: stored once
            else:
                out["p"] = clip(pred, TEXT_LIMIT)
        if "gold" in row:
            out["g"] = clip(_text(row["gold"]), TEXT_LIMIT)
    if "prompt" in row:
        out["pr"] = prompts(_text(row["prompt"]))
    if "raw_output" in row:
        raw = _text(row["raw_output"])
        out["o"] = clip(raw, TEXT_LIMIT, highlight(raw, kind, row.get("prediction")))
        if row.get("logprobs") is not None:
            out["lp"] = [_logprob(x) for x in row["logprobs"]]
        else:
            choices = tuple(meta.get("choices") or ())
            out["pp"] = _reading(raw, kind, choices, "paper", meta.get("paper_match", "first"))
            out["ps"] = _reading(raw, kind, choices, "strict")
    for key, short in (("reasoning", "rs"), ("answer_text", "at")):
        if row.get(key) is not None:
            out[short] = clip(_text(row[key]), TEXT_LIMIT)
    return out


def _logprob(value: float) -> float | str:
    # A choice the model gives no probability has a log-prob of -inf (mibe run accepts it); JSON has no
    # -inf, so the page shows it as the word.
    return round(float(value), 4) if math.isfinite(value) else str(float(value))


def _score(value: Any) -> float | None:
    # JSON has no NaN: a score that is not a number is shown as none.
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _order(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    # Samples are written longest prompt first; the page lists them in the documents' order.
    return sorted(rows, key=lambda r: (r.get("index") is None, r.get("index") or 0))


def page_data(runs: Sequence[ViewRun], diffs: Sequence[TaskDiff], show: bool) -> dict[str, Any]:
    """Everything the page's script reads, with credentialed text already left out."""
    prompts: list[Any] = []
    seen: dict[str, int] = {}

    def prompt_index(text: str) -> int:
        # Both runs of a comparison usually hold the same prompts: each is stored once.
        if text not in seen:
            seen[text] = len(prompts)
            prompts.append(clip(text, PROMPT_LIMIT))
        return seen[text]

    rows: list[dict[str, Any]] = []
    where: dict[tuple[int, str, str], int] = {}
    tasks: dict[str, Any] = {}
    for r, run in enumerate(runs):
        for task, samples in run.samples.items():
            meta = _meta(run, task)
            tasks[task] = {
                "type": meta["answer_type"],
                "choices": list(meta.get("choices") or ()),
                "cred": bool(meta.get("credentialed")),
            }
            for row in _order(samples):
                where[r, task, row_key(row)] = len(rows)
                rows.append(_row(r, task, meta, row, show, prompt_index))
    pairs = [
        {"t": d.task, "a": where[0, d.task, i], "b": where[1, d.task, i]} for d in diffs for i in d.differing
    ]
    return {
        "runs": [run.label for run in runs],
        "tasks": tasks,
        "prompts": prompts,
        "rows": rows,
        "diffs": pairs,
        "reasoning_flag": any("rt" in row for row in rows),
        "page": PAGE_ROWS,
    }


def _meta(run: ViewRun, task: str) -> Mapping[str, Any]:
    meta = run.tasks.get(task)
    if meta is None or meta.get("answer_type") not in (*LABEL_TYPES, "span", "entities", "text"):
        raise ValueError(f"view: task {task!r} of {run.label!r} needs answer_type, choices and credentialed")
    return meta


def embed(data: Any) -> str:
    """JSON safe inside a <script> element: no `<` at all (so neither `</script>` nor `<!--` can end or
    confuse the element), and U+2028/U+2029 escaped for older JavaScript parsers."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---------------------------------------------------------------------------------------------------
# The static parts of the page


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _metrics(entry: Mapping[str, Any]) -> str:
    items = []
    for name, metric in (entry.get("metrics") or {}).items():
        ci = metric.get("ci95")
        interval = f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
        why = metric.get("unavailable") if metric.get("value") is None else None
        reason = f' <span class="note">unavailable: {escape(str(why))}</span>' if why else ""
        items.append(f"<li>{escape(name)} <b>{_num(metric.get('value'))}</b>{interval}{reason}</li>")
    counts = (
        f"<li>n {entry.get('n', '—')}, parse failures {entry.get('parse_failures', '—')}, "
        f"truncated prompts {entry.get('truncated', '—')}</li>"
    )
    return f'<ul class="metrics">{"".join(items)}{counts}</ul>'


def _protocol(protocol: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(json.dumps(v, ensure_ascii=False))}</td></tr>"
        for k, v in protocol.items()
    )
    table = f'<div class="scroll"><table class="kv">{rows}</table></div>'
    return f"<details><summary>protocol</summary>{table}</details>"


def confusion(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str | None, int]]:
    """gold -> predicted -> count of a single-label task's samples (predicted None: no answer)."""
    counts: dict[str, dict[str | None, int]] = {}
    for row in rows:
        if "gold" in row and "prediction" in row:
            gold = _text(row["gold"])
            pred = None if row["prediction"] is None else _text(row["prediction"])
            counts.setdefault(gold, {}).setdefault(pred, 0)
            counts[gold][pred] += 1
    return counts


def _confusion_table(run: int, task: str, choices: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    counts = confusion(rows)
    seen = set(counts) | {p for row in counts.values() for p in row if p is not None}
    labels = [c for c in choices if c in seen] + sorted(seen - set(choices))
    # No answer is its own last column: out of band, so it never merges with a label of that name.
    axis = [*labels, None] if any(None in row for row in counts.values()) else labels
    head = "".join(f'<th scope="col">{_axis_name(x)}</th>' for x in axis)
    body = []
    for gold in [x for x in labels if x in counts or x in choices]:
        cells = []
        for pred in axis:
            n = counts.get(gold, {}).get(pred, 0)
            klass = "hit" if gold == pred else "miss"
            # No answer is listed by the parse-failure filter (a label task fails exactly there).
            picks = 'data-pred="" data-pf="yes"' if pred is None else f'data-pred="{escape(pred)}"'
            if n:
                cells.append(
                    f'<td class="cm {klass}" tabindex="0" role="button" data-run="{run}" '
                    f'data-task="{escape(task)}" data-gold="{escape(gold)}" {picks} '
                    f'title="gold {escape(gold)}, predicted {_axis_name(pred)}: list them">{n}</td>'
                )
            else:
                cells.append('<td class="zero">0</td>')
        body.append(f'<tr><th scope="row">{escape(gold)}</th>{"".join(cells)}</tr>')
    return (
        '<p class="note">Rows: gold; columns: predicted. Click a count (or press Enter on it) to list those '
        f'documents.</p><div class="scroll"><table class="confusion"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _axis_name(label: str | None) -> str:
    return "<i>no answer</i>" if label is None else escape(label)


def _task_sections(runs: Sequence[ViewRun]) -> str:
    parts = []
    for r, run in enumerate(runs):
        entries = run.results.get("tasks") or {}
        title = f"{run.label}" if len(runs) == 1 else f"Run {'AB'[r]}: {run.label}"
        parts.append(f'<h2>{escape(title)}</h2><div class="tasks">')
        for task, samples in run.samples.items():
            meta = _meta(run, task)
            entry = entries.get(task)
            tag = ' <span class="tag">credentialed</span>' if meta.get("credentialed") else ""
            body = _metrics(entry) + _protocol(entry.get("protocol") or {}) if entry else "<p>not scored</p>"
            if meta["answer_type"] in SINGLE_LABEL and samples:
                body += _confusion_table(r, task, meta.get("choices") or (), samples)
            parts.append(
                f'<section class="task"><h3>{escape(task)} <small>{escape(meta["answer_type"])}, '
                f"{len(samples)} samples</small>{tag}</h3>{body}</section>"
            )
        parts.append("</div>")
    return "".join(parts)


def _test_cell(d: TaskDiff) -> str:
    from mibe.textout import p_text

    if d.paired is None:
        why = d.note or ("read from folders only" if d.metric is None else "")
        return f"<td>{escape(d.metric or '—')}</td>" + "<td>—</td>" * 4 + f"<td>{escape(why)}</td>"
    p = d.paired
    mcnemar = "n/a (metric not right/wrong per document)"
    if d.mcnemar is not None:
        mcnemar = f"A only {d.mcnemar.a_only}, B only {d.mcnemar.b_only}, p {p_text(d.mcnemar.p)}"
        if d.mcnemar.n_clusters is not None:
            mcnemar += f" ({d.mcnemar.test}, {d.mcnemar.n_clusters} clusters)"
    shown_p = "—" if d.note else p_text(p.p)  # not testable: no p, no interval
    interval = "" if d.note else f" [{p.ci95[0]:+.3f}, {p.ci95[1]:+.3f}]"
    return (
        f"<td>{escape(d.metric or '')}</td><td>{_num(p.a)}</td><td>{_num(p.b)}</td>"
        f"<td>{p.diff:+.3f}{interval}</td><td>{escape(shown_p)}</td>"
        f"<td>{escape(mcnemar)}{escape(' ' + d.note if d.note else '')}</td>"
    )


def _tests_table(diffs: Sequence[TaskDiff]) -> str:
    head = (
        "<tr><th>task</th><th>shared</th><th>differing</th><th>differing means</th><th>metric</th><th>A</th>"
        "<th>B</th><th>A − B [95% CI]</th><th>bootstrap p (raw)</th><th>McNemar exact (raw p)</th></tr>"
    )
    rows = []
    for d in diffs:
        note = f" ({d.gold_mismatch} shared ids with another gold left out)" if d.gold_mismatch else ""
        rows.append(
            f"<tr><td>{escape(d.task)}</td><td>{d.shared}{escape(note)}</td><td>{len(d.differing)}</td>"
            f"<td>{escape(d.rule)}</td>{_test_cell(d)}</tr>"
        )
    return (
        f'<div class="scroll"><table class="tests" id="tests"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _protocol_notes(differences: Mapping[str, list[tuple[str, Any, Any]]]) -> str:
    if not differences:
        return ""
    items = []
    for task, fields in differences.items():
        said = "; ".join(
            f"{k}: A {json.dumps(a, ensure_ascii=False)}, B {json.dumps(b, ensure_ascii=False)}"
            for k, a, b in fields
        )
        items.append(f"<li>{escape(task)}: {escape(said)}</li>")
    return (
        '<div class="warn" id="protocol-differences"><b>The two runs were scored under different protocols'
        " on these tasks</b>; differences there may come from the protocol, not the model:"
        f"<ul>{''.join(items)}</ul></div>"
    )


def _select(ident: str, label: str, options: Sequence[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(text)}</option>' for v, text in options)
    return f'<label>{escape(label)} <select id="{ident}">{opts}</select></label>'


YES_NO = (("", "any"), ("yes", "yes"), ("no", "no"))
DIFF_HEADS = ("task", "id", "A predicted", "A score", "B predicted", "B score")


def _filters(data: Mapping[str, Any]) -> str:
    runs, rows = data["runs"], data["rows"]
    golds = sorted({x for r in rows for x in r.get("gl", ())})
    preds = sorted({x for r in rows for x in r.get("pl", ())})
    parts = []
    if len(runs) > 1:
        parts.append(
            _select(
                "f-run", "run", [("", "both"), *((str(i), f"{'AB'[i]}: {x}") for i, x in enumerate(runs))]
            )
        )
    parts += [
        _select("f-task", "task", [("", "all"), *((t, t) for t in data["tasks"])]),
        _select(
            "f-outcome", "outcome", [("", "any"), ("right", "full score"), ("wrong", "below full score")]
        ),
        _select("f-pf", "parse failure", YES_NO),
        _select("f-tr", "prompt truncated", YES_NO),
        _select("f-em", "empty output", YES_NO),
    ]
    if data["reasoning_flag"]:
        parts.append(_select("f-rt", "reasoning truncated", YES_NO))
    parts += [
        _select("f-gold", "gold label", [("", "any"), *((x, x) for x in golds)]),
        _select("f-pred", "predicted label", [("", "any"), *((x, x) for x in preds)]),
        '<label>search <input id="f-q" type="search" placeholder="ids, prompts, outputs…" size="28"></label>',
        '<button type="button" id="reset">clear filters</button>',
        '<button type="button" id="export">export ids (CSV)</button>',
    ]
    return f'<div class="filters" role="search">{"".join(parts)}</div>'


def _table(ident: str, heads: Sequence[str], pager: str) -> str:
    cells = "".join(f'<th scope="col">{escape(h)}</th>' for h in heads)
    return (
        f'<p class="status" id="{ident}-status" aria-live="polite"></p>'
        f'<div class="scroll"><table class="rows" id="{ident}"><thead><tr>{cells}</tr></thead><tbody></tbody>'
        "</table></div>"
        f'<div class="pager"><button type="button" id="{pager}-prev">previous {PAGE_ROWS}</button> '
        f'<span id="{pager}-info"></span> '
        f'<button type="button" id="{pager}-next">next {PAGE_ROWS}</button></div>'
    )


def _banner(data: Mapping[str, Any], show: bool) -> str:
    cred = [t for t, meta in data["tasks"].items() if meta["cred"]]
    if not cred:
        return ""
    names = escape(", ".join(cred))
    if show:
        return (
            f'<div class="banner cred" id="credentialed">This page holds credentialed text (prompts, outputs,'
            f" predictions and golds of {names}). Share it only as those datasets' data use agreements allow."
            "</div>"
        )
    return (
        f'<div class="banner" id="credentialed">Credentialed tasks ({names}): this page holds only their '
        "document ids, scores, flags and, for label tasks, predicted and gold labels. Their prompts, "
        "outputs and texts are not in the file.</div>"
    )


def _differences(runs: Sequence[ViewRun], diffs: Sequence[TaskDiff]) -> str:
    options = [("", "all"), *((d.task, d.task) for d in diffs if d.differing)]
    return (
        f'<section id="differences"><h2>A: {escape(runs[0].label)} vs B: {escape(runs[1].label)}</h2>'
        f"{_protocol_notes(protocol_differences(runs[0], runs[1]))}"
        "<p>Documents are paired by task and id (and the same gold). Tests: each task's main metric, "
        "A − B over every shared document, with <code>mibe compare</code>'s paired bootstrap (its "
        "seed rule, 1,000 resamples) and McNemar's exact test: the same raw p-values compare prints "
        "(compare also shows them Holm-adjusted over its tests). The list below holds only the "
        "documents the runs disagree on.</p>"
        f"{_tests_table(diffs)}"
        f'<div class="filters">{_select("d-task", "task", options)}</div>'
        f"{_table('diffs', DIFF_HEADS, 'd')}</section>"
    )


def render_view(runs: Sequence[ViewRun], show_credentialed: bool = False) -> str:
    """The page for one run (its samples) or two (their samples and their differences)."""
    if len(runs) not in (1, 2):
        raise ValueError(f"render_view: one or two runs, not {len(runs)}")
    diffs = diff_runs(runs[0], runs[1]) if len(runs) == 2 else []
    data = page_data(runs, diffs, show_credentialed)
    title = "mibe view: " + " vs ".join(run.label for run in runs)
    heads = (["run"] if len(runs) > 1 else []) + ["task", "id", "score", "predicted", "gold", "flags"]
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _banner(data, show_credentialed),
        f'<p class="intro">{INTRO}</p>',
        _differences(runs, diffs) if diffs else "",
        _task_sections(runs),
        f'<section id="samples"><h2>Samples</h2>{_filters(data)}{_table("rows", heads, "p")}</section>',
        f'<script type="application/json" id="mibe-data">{embed(data)}</script>',
        f"<script>{JS}</script></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


INTRO = (
    "Per task: the metrics with their 95% bootstrap intervals, the protocol, and for single-label tasks "
    "the confusion matrix (click or press Enter on a count to list those documents). Below, every "
    "sample: filter, search, and click or press Enter on a row to read the prompt, the raw output, and "
    "how the paper's and the strict parser read it. In the output, the first case-insensitive occurrence "
    "of the predicted label is highlighted: where the label appears, not necessarily where the parser "
    "read it. Long texts are cut in the middle, with the number of characters cut. A row's link opens "
    "that document alone; the export button saves the ids of the filtered rows."
)


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2430;background:#fff}
h1{font-size:21px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px}h3{font-size:15px;margin:14px 0 4px}
h3 small{font-weight:400;color:#5b6778}.intro{max-width:920px;color:#3d4756}
.tag{font-size:11px;padding:0 5px;border-radius:3px;background:#f3d9a4;margin-left:4px;font-weight:400}
.banner{border:1px solid #c9d3df;background:#eef3f9;padding:8px 10px;margin:8px 0;max-width:920px}
.banner.cred,.warn{border:2px solid #b44b00;background:#fff1e5;padding:8px 10px;margin:8px 0;max-width:920px}
ul.metrics{margin:2px 0;padding-left:18px}details{margin:2px 0 6px}summary{cursor:pointer;color:#3b5f95}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{border:1px solid #d5dbe3;padding:3px 6px;text-align:left;vertical-align:top}
thead th{background:#eef2f7}table.kv th{font-weight:400;color:#4a5566;background:#fafbfc}
table.kv td{font-family:ui-monospace,monospace;font-size:12px;overflow-wrap:anywhere;max-width:700px}
.tasks{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
section.task{border:1px solid #e1e6ec;padding:4px 10px 8px;min-width:min(260px,100%);max-width:640px;
box-sizing:border-box}.scroll{overflow-x:auto;max-width:100%}
.confusion thead th{max-width:7em;overflow-wrap:anywhere;font-size:11px;font-weight:600}
h1,h2,h3,p,li,dd,summary{overflow-wrap:anywhere}.rows td{overflow-wrap:anywhere}
section.task h3{margin-top:4px}.confusion{margin:4px 0}
.confusion td{text-align:right;min-width:34px}.confusion td.cm{cursor:pointer}
.confusion td.hit{background:#e3f1e3}.confusion td.miss{background:#fbe7e4}.confusion td.zero{color:#a9b2bd}
.filters{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin:6px 0}
.rows{width:100%;max-width:1400px}.rows tr.row{cursor:pointer}.rows tr.row:hover{background:#f4f7fb}
.rows tr.open{background:#eaf1fb}.rows td.detail{background:#fbfcfe}
.status{margin:6px 0;color:#3d4756}.pager{margin:6px 0}
:focus-visible{outline:3px solid #1f6feb;outline-offset:1px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 10px;margin:6px 0}dt{color:#4a5566}dd{margin:0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font:12px/1.45 ui-monospace,monospace;
background:#f6f8fa;border:1px solid #e1e6ec;padding:6px;max-height:420px;overflow:auto}
mark{background:#ffe066;outline:1px solid #c9a400}.cut{color:#8a4b00;font-style:italic;background:#fff1e5}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(300px,100%),1fr));gap:12px}
@media (max-width:600px){body{margin:10px}}.cred{color:#8a4b00}
.note{font-size:12px;color:#5b6778}
"""

JS = r"""
(function(){
'use strict';
var D=JSON.parse(document.getElementById('mibe-data').textContent);
var rows=D.rows,two=D.runs.length>1,PAGE=D.page,pin=null;
function $(id){return document.getElementById(id);}
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;
  if(text!==undefined&&text!==null)e.textContent=String(text);return e;}
// A text from Python: a string, or pieces (string; [string] highlighted; number of characters cut).
function put(parent,v){if(v===undefined||v===null)return;if(!Array.isArray(v))v=[v];
  v.forEach(function(x){if(typeof x==='string')parent.appendChild(document.createTextNode(x));
    else if(typeof x==='number')
      parent.appendChild(el('span','cut',' … '+x.toLocaleString('en')+' characters cut … '));
    else parent.appendChild(el('mark',null,x[0]));});}
function plain(v){if(v===undefined||v===null)return '';if(!Array.isArray(v))return v;
  return v.map(function(x){return typeof x==='string'?x:typeof x==='number'?' ':x[0];}).join('');}
function pred(r){return r.pl?(r.pl.join(', ')||'(no label)'):r.x?'(not in this page)':plain(r.po?r.o:r.p);}
function gold(r){return r.gl?r.gl.join(', '):r.x?'(not in this page)':plain(r.g);}
function short(s){return s.length>80?s.slice(0,79)+'…':s;}
function score(r){return r.s===null||r.s===undefined?'—':Number(r.s).toFixed(3);}
function flags(r){var f=[];if(r.pf)f.push('parse failure');if(r.tr)f.push('prompt cut by '+r.tr+' tokens');
  if(r.em)f.push('empty output');if(r.rt)f.push('reasoning truncated');return f.join('; ');}
function link(r){
  return '#doc='+encodeURIComponent(r.t)+'/'+encodeURIComponent(r.id)+(r.r?'&run='+(r.r+1):'');}
function field(dl,name,fill){dl.appendChild(el('dt',null,name));var dd=el('dd');fill(dd);dl.appendChild(dd);}
function pre(v){var p=el('pre');put(p,v);return p;}
function detail(r,withPrompt){
  var box=el('div'),a=el('a','permalink','link to this document');a.href=link(r);box.appendChild(a);
  if(two)box.appendChild(el('span','note',' run '+'AB'[r.r]+': '+D.runs[r.r]));
  if(r.x)box.appendChild(el('p','cred','Credentialed task: this page was written without its text '+
    '(ids, scores, flags and labels only).'));
  var dl=el('dl'),task=D.tasks[r.t];
  field(dl,'score',function(dd){dd.textContent=score(r);});
  if(r.pl||r.p!==undefined)field(dl,'prediction',function(dd){
    dd.appendChild(r.pl?el('span',null,pred(r)):pre(r.p));});
  if(r.po)field(dl,'prediction',function(dd){dd.textContent='the raw output (below), whole';});
  if(r.gl||r.g!==undefined)field(dl,'gold',function(dd){dd.appendChild(r.gl?el('span',null,gold(r)):pre(r.g));});
  if(flags(r))field(dl,'flags',function(dd){dd.textContent=flags(r);});
  if(r.pp!==undefined)field(dl,'parsers',function(dd){dd.textContent='paper: '+r.pp+'  ·  strict: '+r.ps;});
  if(r.lp)field(dl,'log-likelihoods',function(dd){dd.textContent=r.lp.map(function(x,i){
    return (task.choices[i]===undefined?i:task.choices[i])+' '+x;}).join('  ·  ');});
  if(r.o!==undefined)field(dl,'raw output',function(dd){dd.appendChild(pre(r.o));
    if(r.pl)dd.appendChild(el('div','note',
      'highlighted: the first case-insensitive occurrence of the predicted label'));});
  if(r.rs!==undefined)field(dl,'reasoning',function(dd){dd.appendChild(pre(r.rs));});
  if(r.at!==undefined)field(dl,'answer text',function(dd){dd.appendChild(pre(r.at));});
  if(withPrompt&&r.pr!==undefined)field(dl,'prompt',function(dd){dd.appendChild(pre(D.prompts[r.pr]));});
  box.appendChild(dl);return box;}
function cells(tr,values){values.forEach(function(v){tr.appendChild(el('td',null,v));});}
// A table drawn a page at a time: only PAGE rows are in the DOM, whatever the number of samples.
function Table(id,pager,make,open){
  var t={items:[],page:0,opened:{},table:$(id),body:$(id).tBodies[0]};
  var cols=t.table.tHead.rows[0].cells.length;
  function expand(tr){var d=el('tr','more'),td=el('td','detail');td.colSpan=cols;
    td.appendChild(open(+tr.dataset.k));d.appendChild(td);tr.after(d);tr.classList.add('open');
    tr.setAttribute('aria-expanded','true');t.opened[tr.dataset.k]=true;}
  t.toggle=function(tr){var next=tr.nextElementSibling;
    if(next&&next.classList.contains('more')){next.remove();tr.classList.remove('open');
      tr.setAttribute('aria-expanded','false');delete t.opened[tr.dataset.k];}else expand(tr);};
  t.draw=function(){t.body.textContent='';var start=t.page*PAGE,end=Math.min(t.items.length,start+PAGE);
    for(var i=start;i<end;i++){var tr=make(t.items[i]);
      tr.className='row';tr.tabIndex=0;tr.dataset.k=t.items[i];
      tr.setAttribute('aria-expanded','false');t.body.appendChild(tr);if(t.opened[t.items[i]])expand(tr);}
    $(pager+'-info').textContent=t.items.length?'rows '+(start+1)+'–'+end+' of '+t.items.length:'no rows';
    $(pager+'-prev').disabled=t.page===0;$(pager+'-next').disabled=end>=t.items.length;
    t.table.dataset.count=t.items.length;};
  t.show=function(items){t.items=items;t.page=0;t.draw();};
  $(pager+'-prev').addEventListener('click',function(){t.page--;t.draw();});
  $(pager+'-next').addEventListener('click',function(){t.page++;t.draw();});
  t.body.addEventListener('click',function(e){if(e.target.closest('a'))return;
    var tr=e.target.closest('tr.row');if(tr)t.toggle(tr);});
  t.body.addEventListener('keydown',function(e){var tr=e.target;
    if(tr.classList.contains('row')&&(e.key==='Enter'||e.key===' ')){e.preventDefault();t.toggle(tr);}});
  return t;}
var samples=Table('rows','p',function(k){var r=rows[k],tr=el('tr');tr.dataset.id=r.id;tr.dataset.task=r.t;
  tr.dataset.run=r.r;cells(tr,(two?['AB'[r.r]]:[]).concat([r.t,r.id,score(r),short(pred(r)),short(gold(r)),flags(r)]));
  return tr;},function(k){return detail(rows[k],true);});
var F={},IDS=['f-run','f-task','f-outcome','f-pf','f-tr','f-em','f-rt','f-gold','f-pred','f-q'];
function val(id){var e=$(id);return e?e.value:'';}
function yes(v,want){return want===''||(want==='yes')===!!v;}
function hay(r){if(r._h===undefined)r._h=[r.id,r.t,(r.pl||[]).join(', '),(r.gl||[]).join(', '),
  plain(r.p),plain(r.g),r.pr===undefined?'':plain(D.prompts[r.pr]),
  plain(r.o),plain(r.rs),plain(r.at),r.pp||'',r.ps||''].join('\n').toLowerCase();return r._h;}
function match(r){
  if(F.run!==''&&String(r.r)!==F.run)return false;if(F.task!==''&&r.t!==F.task)return false;
  var ok=r.s!==null&&r.s!==undefined&&r.s>=1-1e-9,bad=r.s!==null&&r.s!==undefined&&r.s<1-1e-9;
  if((F.outcome==='right'&&!ok)||(F.outcome==='wrong'&&!bad))return false;
  if(!yes(r.pf,F.pf)||!yes(r.tr,F.tr)||!yes(r.em,F.em)||!yes(r.rt,F.rt))return false;
  if(F.gold!==''&&!(r.gl&&r.gl.indexOf(F.gold)>=0))return false;
  if(F.pred!==''&&!(r.pl&&r.pl.indexOf(F.pred)>=0))return false;
  return F.q===''||hay(r).indexOf(F.q)>=0;}
function apply(){
  F={run:val('f-run'),task:val('f-task'),outcome:val('f-outcome'),pf:val('f-pf'),tr:val('f-tr'),
    em:val('f-em'),rt:val('f-rt'),gold:val('f-gold'),pred:val('f-pred'),q:val('f-q').trim().toLowerCase()};
  var out=[];if(pin!==null)out=[pin];else for(var k=0;k<rows.length;k++)if(match(rows[k]))out.push(k);
  samples.show(out);
  $('rows-status').textContent=pin!==null?'One document (from a link); clear filters to list them all.':
    out.length+' of '+rows.length+' samples match.';}
function clear(){IDS.forEach(function(id){var e=$(id);if(e)e.value='';});pin=null;}
IDS.forEach(function(id){var e=$(id);if(!e)return;
  if(id==='f-q'){var timer=null;e.addEventListener('input',function(){clearTimeout(timer);
    timer=setTimeout(function(){pin=null;apply();},150);});}
  else e.addEventListener('change',function(){pin=null;apply();});});
$('reset').addEventListener('click',function(){clear();apply();});
// A cell starting with = + - @ (or a tab, CR) would run as a spreadsheet formula: prefix an apostrophe.
function csvField(s){s=String(s);if(/^[=+\-@\t\r]/.test(s))s="'"+s;
  return /[",\r\n]/.test(s)?'"'+s.replace(/"/g,'""')+'"':s;}
function csv(){var lines=['run,task,id'];samples.items.forEach(function(k){var r=rows[k];
  lines.push([D.runs[r.r],r.t,r.id].map(csvField).join(','));});return lines.join('\r\n')+'\r\n';}
$('export').addEventListener('click',function(){
  var url=URL.createObjectURL(new Blob([csv()],{type:'text/csv'})),a=el('a');
  a.href=url;a.download='mibe-view-ids.csv';document.body.appendChild(a);a.click();a.remove();
  setTimeout(function(){URL.revokeObjectURL(url);},1000);});
function pick(cell){clear();if($('f-run'))$('f-run').value=cell.dataset.run;
  $('f-task').value=cell.dataset.task;
  $('f-gold').value=cell.dataset.gold;$('f-pred').value=cell.dataset.pred;
  if(cell.dataset.pf)$('f-pf').value=cell.dataset.pf;apply();
  $('samples').scrollIntoView();var first=samples.body.querySelector('tr.row');if(first)first.focus();}
document.querySelectorAll('td.cm').forEach(function(cell){cell.addEventListener('click',function(){pick(cell);});
  cell.addEventListener('keydown',function(e){
    if(e.key==='Enter'||e.key===' '){e.preventDefault();pick(cell);}});});
function openHash(){var m=/^#doc=([^\/&]*)\/([^&]*)(?:&run=(\d+))?$/.exec(location.hash);if(!m)return false;
  var task=decodeURIComponent(m[1]),id=decodeURIComponent(m[2]),run=m[3]?+m[3]-1:0;
  for(var k=0;k<rows.length;k++){var r=rows[k];if(r.t===task&&r.id===id&&r.r===run){
    clear();pin=k;samples.opened={};samples.opened[k]=true;apply();
    var tr=samples.body.querySelector('tr.row');tr.focus();tr.scrollIntoView();return true;}}
  $('rows-status').textContent='No document '+id+' of task '+task+' in this page.';return false;}
window.addEventListener('hashchange',openHash);
if(two){var diffs=Table('diffs','d',function(j){var d=D.diffs[j],a=rows[d.a],b=rows[d.b],tr=el('tr');
    tr.dataset.id=a.id;tr.dataset.task=a.t;
    cells(tr,[a.t,a.id,short(pred(a)),score(a),short(pred(b)),score(b)]);return tr;},
  function(j){var d=D.diffs[j],a=rows[d.a],b=rows[d.b],box=el('div'),pair=el('div','pair');
    pair.appendChild(detail(a,false));pair.appendChild(detail(b,false));box.appendChild(pair);
    [a,b].forEach(function(r,i){if(r.pr!==undefined&&(i===0||b.pr!==a.pr)){var dl=el('dl');
      var name=i===0&&b.pr===a.pr?'prompt (both runs)':'prompt, run '+'AB'[i];
      field(dl,name,function(dd){dd.appendChild(pre(D.prompts[r.pr]));});
      box.appendChild(dl);}});return box;});
  var showDiffs=function(){var task=$('d-task').value,out=[];
    D.diffs.forEach(function(d,j){if(task===''||d.t===task)out.push(j);});diffs.show(out);
    $('diffs-status').textContent=out.length+' documents on which the runs disagree.';};
  $('d-task').addEventListener('change',showDiffs);showDiffs();}
window.mibeView={csv:csv,apply:apply};
if(!openHash())apply();
document.body.dataset.ready='1';
})();
"""
