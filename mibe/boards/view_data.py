"""What the run viewer's page holds: each sample as data its script draws, decided here in Python.

- credentialed tasks are cut down before the data is written (ids, scores, flags, and the labels of
  label tasks), so their text is absent from the file, not hidden in it;
- long texts are clipped (head and tail kept, with the count of characters cut);
- where the output names the prediction (highlighted), and how both parsers read the output.

The data's keys are words (`predicted_labels`, `parse_failure`, ...): the page's script
(templates/view.js) reads the same names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mibe.scoring.kinds import parse

LABEL_TYPES = ("choice", "letter", "multi_label")
SINGLE_LABEL = ("choice", "letter")
PROMPT_LIMIT = 4_000  # characters of a prompt kept: half from the head, half from the tail
TEXT_LIMIT = 6_000  # the same for outputs, reasoning, and the golds and predictions of text tasks
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


def normal(value: Any, answer_type: str) -> Any:
    """A gold or a prediction as two runs' values are compared: a label set in sorted order."""
    if answer_type == "multi_label":
        return tuple(sorted(value or ()))
    return tuple(value) if isinstance(value, list) else value


def row_key(row: Mapping[str, Any]) -> str:
    """A row's name on the page: its document id, and its shot draw in a run of several draws or its
    ordering of the options under --choice-permutations (a document appears once per draw or ordering
    there, so the id alone would name several rows; the page lists them together, in index order)."""
    ident = str(row.get("id"))
    if row.get("permutation") is not None:
        order = "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i] for i in row.get("option_order") or [])
        return f"{ident} (ordering {row['permutation']}: options {order or '?'} shown as A, B, ...)"
    return ident if row.get("draw") is None else f"{ident} (draw {row['draw']})"


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
        whole = as_text(prediction).strip() == raw.strip()
        labels = [] if whole else [as_text(prediction).strip()]
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


def as_text(value: Any) -> str:
    """A value as the page writes it: a list joined with commas, none as nothing."""
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
    value = as_text(got.value) if answer_type != "multi_label" else ", ".join(got.value) or "(no label)"
    value = "(no answer)" if got.value is None else value
    shown = value if len(value) <= 300 else value[:300] + f"… ({len(value)} characters)"
    return shown + (" (parse failure)" if got.failed else "")


# ---------------------------------------------------------------------------------------------------
# The embedded data


def _flags(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if row.get("parse_failed"):
        out["parse_failure"] = 1
    if row.get("truncated_tokens"):
        out["truncated_tokens"] = int(row["truncated_tokens"])
    if "raw_output" in row and not as_text(row["raw_output"]).strip():
        out["empty_output"] = 1
    if "reasoning_truncated" in row:
        out["reasoning_truncated"] = 1 if row["reasoning_truncated"] else 0
    return out


def _row(
    run: int, task: str, meta: Mapping[str, Any], row: Mapping[str, Any], show: bool, prompts: Any
) -> dict:
    """One sample as the page holds it. A credentialed task without `show` keeps ids, scores, flags and
    (label tasks only) the labels: nothing here can carry the documents' text."""
    kind = meta["answer_type"]
    out: dict[str, Any] = {"run": run, "task": task, "id": row_key(row), "score": _score(row.get("score"))}
    if row.get("index") is not None:
        out["index"] = row["index"]
    out.update(_flags(row))
    if kind in LABEL_TYPES:
        if "prediction" in row:
            out["predicted_labels"] = _labels(row["prediction"])
        if "gold" in row:
            out["gold_labels"] = _labels(row["gold"])
    if meta.get("credentialed") and not show:
        out["withheld"] = 1
        return out
    if kind not in LABEL_TYPES:
        if "prediction" in row:
            pred = as_text(row["prediction"])
            if "raw_output" in row and pred.strip() == as_text(row["raw_output"]).strip():
                out["prediction_is_output"] = 1  # the prediction is the output: stored once
            else:
                out["prediction"] = clip(pred, TEXT_LIMIT)
        if "gold" in row:
            out["gold"] = clip(as_text(row["gold"]), TEXT_LIMIT)
    if "prompt" in row:
        out["prompt"] = prompts(as_text(row["prompt"]))
    if "raw_output" in row:
        raw = as_text(row["raw_output"])
        out["output"] = clip(raw, TEXT_LIMIT, highlight(raw, kind, row.get("prediction")))
        if row.get("logprobs") is not None:
            out["logprobs"] = [_logprob(x) for x in row["logprobs"]]
        else:
            choices = tuple(meta.get("choices") or ())
            out["paper_reading"] = _reading(raw, kind, choices, "paper", meta.get("paper_match", "first"))
            out["strict_reading"] = _reading(raw, kind, choices, "strict")
    for key in ("reasoning", "answer_text"):
        if row.get(key) is not None:
            out[key] = clip(as_text(row[key]), TEXT_LIMIT)
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


def page_data(runs: Sequence[ViewRun], diffs: Sequence[Any], show: bool) -> dict[str, Any]:
    """Everything the page's script reads, with credentialed text already left out. `diffs`: each
    task's pairing of two runs (`task`, and the keys of the rows they disagree on in `differing`)."""
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
            meta = task_meta(run, task)
            tasks[task] = {
                "answer_type": meta["answer_type"],
                "choices": list(meta.get("choices") or ()),
                "credentialed": bool(meta.get("credentialed")),
            }
            for row in _order(samples):
                where[r, task, row_key(row)] = len(rows)
                rows.append(_row(r, task, meta, row, show, prompt_index))
    pairs = [
        {"task": d.task, "a": where[0, d.task, i], "b": where[1, d.task, i]}
        for d in diffs
        for i in d.differing
    ]
    return {
        "runs": [run.label for run in runs],
        "tasks": tasks,
        "prompts": prompts,
        "rows": rows,
        "diffs": pairs,
        "reasoning_flag": any("reasoning_truncated" in row for row in rows),
        "page": PAGE_ROWS,
    }


def task_meta(run: ViewRun, task: str) -> Mapping[str, Any]:
    meta = run.tasks.get(task)
    if meta is None or meta.get("answer_type") not in (*LABEL_TYPES, "span", "entities", "text"):
        raise ValueError(f"view: task {task!r} of {run.label!r} needs answer_type, choices and credentialed")
    return meta


def confusion(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str | None, int]]:
    """gold -> predicted -> count of a single-label task's samples (predicted None: no answer)."""
    counts: dict[str, dict[str | None, int]] = {}
    for row in rows:
        if "gold" in row and "prediction" in row:
            gold = as_text(row["gold"])
            pred = None if row["prediction"] is None else as_text(row["prediction"])
            counts.setdefault(gold, {}).setdefault(pred, 0)
            counts[gold][pred] += 1
    return counts
