"""The jury's numbers: each criterion's score over the documents with its interval, the judges'
agreement (Krippendorff's ordinal alpha), and agreement with human ratings read from a CSV (the one
function here that touches disk). The rubric, the prompt and reply parsing are judge_scoring.py.

Aggregation, exactly (so that anyone can recompute it): for each criterion, a document's jury score
is the mean of the judges' parsed scores on it (unparsable ones left out); documents where no judge's
score parsed are left out of that criterion. The criterion's value is the mean of the document scores,
taken in sorted document-id order. Its 95% interval is a percentile bootstrap over documents:
`rng = numpy.random.default_rng(seed)`, `idx = rng.integers(0, n, size=(n_boot, n))` (a new generator
for each criterion), the mean of each row of `doc_scores[idx]`, then
`numpy.percentile(means, [2.5, 97.5])` with numpy's default (linear) interpolation.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mibe import userfiles
from mibe.scoring import stats
from mibe.scoring.judge_scoring import METRIC_PREFIX, NAME, Rubric
from mibe.types import MibeError

Scores = Mapping[str, Mapping[str, Mapping[str, int | None]]]
"""judge -> document id -> criterion -> score (None: the reply gave none that parsed)."""


def _documents(scores: Scores) -> list[str]:
    sets = {judge: set(docs) for judge, docs in scores.items()}
    first = next(iter(sets.values()), set())
    for judge, docs in sets.items():
        if docs != first:
            raise ValueError(f"jury_scores: judge {judge!r} scored other documents than the first judge")
    return sorted(first)


def document_means(scores: Scores, rubric: Rubric) -> dict[str, dict[str, float]]:
    """criterion -> document id -> the mean of the judges' parsed scores; documents with none left out."""
    out: dict[str, dict[str, float]] = {}
    for name in rubric.names:
        per_doc: dict[str, float] = {}
        for doc in _documents(scores):
            parsed = [s for judge in scores.values() if (s := judge[doc].get(name)) is not None]
            if parsed:
                per_doc[doc] = sum(parsed) / len(parsed)
        out[name] = per_doc
    return out


def ordinal_alpha(rows: Sequence[Sequence[float | None]], scale: tuple[int, int]) -> float | None:
    """Krippendorff's ordinal alpha, raters in rows, documents in columns, None for a missing rating;
    None when it is undefined (fewer than two raters, no document rated twice, no variation)."""
    if len(rows) < 2:
        return None
    import krippendorff  # here, not at the top: task files import this module on every command

    data = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=float)
    domain = sorted(set(range(scale[0], scale[1] + 1)) | set(data[~np.isnan(data)].tolist()))
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            value = krippendorff.alpha(
                reliability_data=data, value_domain=domain, level_of_measurement="ordinal"
            )
    except ValueError:  # raised when no document holds two ratings, or the domain has one value
        return None
    return float(value) if math.isfinite(value) else None


def _interval(values: np.ndarray, n_boot: int, seed: int) -> list[float] | None:
    n = len(values)
    if n == 0 or n_boot < 1:
        return None
    means = np.concatenate([values[idx].mean(axis=1) for idx in stats.resample_indices(n, n_boot, seed)])
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]


def jury_scores(scores: Scores, rubric: Rubric, n_boot: int = 1000, seed: int = 1234) -> dict[str, Any]:
    """judge_<criterion> -> {value, ci95, n (documents scored), unparsable (per judge), alpha (ordinal,
    between judges)}; the procedure is in this module's docstring."""
    docs = _documents(scores)
    means = document_means(scores, rubric)
    out: dict[str, Any] = {}
    for name in rubric.names:
        per_doc = means[name]
        values = np.array([per_doc[d] for d in docs if d in per_doc], dtype=float)
        rows = [[scores[judge][d].get(name) for d in docs] for judge in scores]
        out[METRIC_PREFIX + name] = {
            "value": float(values.mean()) if len(values) else None,
            "ci95": _interval(values, n_boot, seed),
            "n": len(values),
            "unparsable": {
                judge: sum(v is None for v in row) for judge, row in zip(scores, rows, strict=True)
            },
            "alpha": ordinal_alpha(rows, rubric.scale),
        }
    return out


# ------------------------------------------------------------------------------------------ human side


def _human_row(row: dict[str, str], where: str, rubric: Rubric | None) -> tuple[str, str, int]:
    doc, name, raw = ((row.get(k) or "").strip() for k in ("id", "criterion", "score"))
    if not doc:
        raise MibeError(f"{where}: empty id; give the document id of the summary rated")
    if rubric is not None and name not in rubric.names:
        near = difflib.get_close_matches(name[:200], rubric.names, n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(rubric.names)}"
        raise MibeError(f"{where}: criterion {name[:80]!r} is not in the task's rubric; {hint}")
    if not NAME.fullmatch(name):
        raise MibeError(f"{where}: criterion {name[:80]!r} is not a lower_snake name; use the rubric's names")
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise MibeError(f"{where}: score {raw[:40]!r} is not an integer; write one whole number per row")
    if len(raw.lstrip("+-").lstrip("0")) > 6:  # int() of a 5,000-digit number raises; no scale is that wide
        raise MibeError(f"{where}: score {raw[:20]}... is off any rubric's scale; write the rating given")
    score = int(raw)
    if rubric is not None and not rubric.scale[0] <= score <= rubric.scale[1]:
        low, high = rubric.scale
        raise MibeError(f"{where}: score {score} is off the rubric's scale; use {low} to {high}")
    return doc, name, score


def read_human_ratings(path: str | Path, rubric: Rubric | None = None) -> dict[str, dict[str, int]]:
    """A CSV with the header id,criterion,score (other columns ignored, e.g. notes) -> criterion ->
    document id -> score. One row per document and criterion: adjudicate several raters first."""
    path = Path(path)
    text = userfiles.read_text(path, "ratings CSV", "utf-8-sig")  # spreadsheets save a byte-order mark
    # A rater's note can pass csv's 128 KiB default field limit (it raised csv.Error); none is smaller.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:  # DictReader keeps the last of two same-named columns without a word
        raise MibeError(f"{path}: line 1: column names {repeated} appear more than once; rename them")
    missing = [k for k in ("id", "criterion", "score") if k not in header]
    if missing:
        raise MibeError(
            f"{path}: line 1: header lacks {', '.join(missing)}; start the file with id,criterion,score"
        )
    reader.fieldnames = header
    out: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:  # DictReader files surplus fields under the key None
            raise MibeError(f"{path}: line {line}: more fields than the header; quote values holding commas")
        if not any((v or "").strip() for v in row.values()):
            continue
        doc, name, score = _human_row(row, f"{path}: line {line}", rubric)
        if (doc, name) in first_line:
            raise MibeError(
                f"{path}: line {line}: {doc[:80]} / {name} rated again (first at line "
                f"{first_line[doc, name]}); keep one row per document and criterion"
            )
        first_line[doc, name] = line
        out.setdefault(name, {})[doc] = score
    if not out:
        raise MibeError(f"{path}: no ratings below the header; add rows id,criterion,score")
    return out


def _round_half_up(x: float) -> int:
    # Python's round() goes to even (3.5 -> 4 but 2.5 -> 2): a jury mean of 2.5 should not drift down.
    return math.floor(x + 0.5)


def human_agreement(
    jury: Mapping[str, Mapping[str, float]], human: Mapping[str, Mapping[str, int]], scale: tuple[int, int]
) -> dict[str, dict[str, Any]]:
    """Per criterion the humans rated, on the documents both the jury and a human scored: n, the
    ordinal alpha between the human and the jury mean rounded half up, the mean signed difference
    (jury - human) and mean absolute difference of the unrounded jury mean, and Spearman's rho.
    `jury` is `document_means(...)`; `human` is `read_human_ratings(...)`."""
    from scipy.stats import spearmanr  # scipy.stats takes half a second to import

    out: dict[str, dict[str, Any]] = {}
    for name, rated in sorted(human.items()):
        per_doc = jury.get(name, {})
        docs = sorted(d for d in rated if d in per_doc)
        j = np.array([per_doc[d] for d in docs], dtype=float)
        h = np.array([rated[d] for d in docs], dtype=float)
        rho = None
        if len(docs) >= 2 and np.ptp(j) > 0 and np.ptp(h) > 0:
            rho = float(spearmanr(j, h).statistic)
        out[name] = {
            "n": len(docs),
            "human_only": len(rated) - len(docs),
            "alpha": ordinal_alpha([[_round_half_up(v) for v in j], h.tolist()], scale) if docs else None,
            "mean_diff": float((j - h).mean()) if docs else None,
            "mean_abs_diff": float(np.abs(j - h).mean()) if docs else None,
            "spearman": rho,
        }
    return out
