"""A jury of judge models scoring summaries against a task's rubric: the pure parts.

The rubric (a task file's `judge:` key), the judge prompt and its hash, parsing a judge's reply into
one integer per criterion, aggregating the jury (means, bootstrap intervals, Krippendorff's alpha),
reading human ratings and comparing them with the jury. Nothing here loads a model or touches disk
except `read_human_ratings`.

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
import hashlib
import io
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mibe.scoring import stats
from mibe.types import MibeError

JUDGE_PROMPT_VERSION = 1
"""Bump when the template below changes in any way a judge could notice: scores under different
versions are not comparable, and the prompt hash records which one produced them."""

ORDERS = ("reference_first", "candidate_first")
"""Where the candidate stands relative to the reference: judges favour one position, so the order
is fixed per run and recorded in the prompt hash."""

METRIC_PREFIX = "judge_"
# A run folder may hold several juries: the first one's columns are judge_<criterion> (protocol `jury`,
# samples `judge`); each later one's are judge_<criterion>@<jury id> (protocol `juries`, samples
# `judge@<jury id>`), so no jury ever replaces another.
JURY_MARK = "@"


def jury_suffix(metric: str) -> str:
    """'' for the first jury's column, '@<jury id>' for a later one's."""
    _, mark, jury_id = metric.partition(JURY_MARK)
    return mark + jury_id


def criterion_of(metric: str) -> str:
    return metric.removeprefix(METRIC_PREFIX).partition(JURY_MARK)[0]


def jury_of(protocol: Mapping[str, Any], metric: str) -> Any:
    """The jury (its protocol) that scored a judge_* column."""
    suffix = jury_suffix(metric)
    if not suffix:
        return protocol.get("jury")
    juries = protocol.get("juries")
    return juries.get(suffix[1:]) if isinstance(juries, Mapping) else None


_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_RUBRIC_KEYS = ("criteria", "scale", "instructions")

_TEMPLATE = """You are grading a summary written by an AI system.{instructions}

Read the SOURCE, the REFERENCE summary written by a person, and the CANDIDATE summary. Score the \
CANDIDATE on each criterion below with one integer from {low} (worst) to {high} (best). Judge what \
the candidate says against the source; the reference shows what a good summary covers, but other \
wordings and orderings are equally acceptable. The source may be cut short: do not penalise a \
statement that the reference supports.

Criteria:
{criteria}

{documents}

Reply with exactly these {count} lines, in this order, each with one integer from {low} to {high}, \
and nothing else:
{answer_lines}"""

_SECTION = "<{tag}>\n{text}\n</{tag}>"


@dataclass(frozen=True)
class Criterion:
    name: str  # lower_snake; the metric is judge_<name>
    description: str  # what the judge reads; the high end of the scale is always the better summary


@dataclass(frozen=True)
class Rubric:
    criteria: tuple[Criterion, ...]
    scale: tuple[int, int] = (1, 5)
    instructions: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria)

    def as_dict(self) -> dict[str, Any]:
        """The rubric as a task file writes it (and as results record it)."""
        out: dict[str, Any] = {
            "criteria": [{"name": c.name, "description": c.description} for c in self.criteria],
            "scale": list(self.scale),
        }
        if self.instructions is not None:
            out["instructions"] = self.instructions
        return out


# ---------------------------------------------------------------------------------------------- rubric


def _rubric_error(where: str, field: str, message: str) -> MibeError:
    return MibeError(f"{where}: field '{field}': {message}")


def _parse_criterion(item: Any, i: int, where: str, seen: set[str]) -> Criterion:
    field = f"judge.criteria[{i}]"
    if not isinstance(item, dict):
        raise _rubric_error(where, field, "a mapping with 'name' and 'description'; write '- name: ...'")
    for key in item:
        if key not in ("name", "description"):
            raise _rubric_error(where, f"{field}.{key}", "unknown key; allowed: description, name")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _rubric_error(
            where, f"{field}.name", f"{name!r} is not a lower_snake name; use letters, digits and _"
        )
    if name in seen:
        raise _rubric_error(where, f"{field}.name", f"'{name}' appears twice; give each criterion once")
    description = item.get("description")
    if not isinstance(description, str) or not description.strip():
        raise _rubric_error(where, f"{field}.description", "required; say what the judge should score")
    seen.add(name)
    return Criterion(name, " ".join(description.split()))


def _parse_scale(raw: Any, where: str) -> tuple[int, int]:
    ok = isinstance(raw, list) and len(raw) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
    if not ok or not 0 <= raw[0] < raw[1] <= 100:
        raise _rubric_error(where, "judge.scale", f"{raw!r}: give [low, high], integers 0 <= low < high")
    return raw[0], raw[1]


def parse_rubric(raw: Any, where: str) -> Rubric:
    """Validate a task file's `judge:` value; `where` (the task file) starts every error message."""
    if not isinstance(raw, dict):
        raise _rubric_error(
            where, "judge", "a mapping with 'criteria' (and optional 'scale', 'instructions')"
        )
    for key in raw:
        if key not in _RUBRIC_KEYS:
            near = difflib.get_close_matches(str(key), _RUBRIC_KEYS, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"allowed: {', '.join(sorted(_RUBRIC_KEYS))}"
            raise _rubric_error(where, f"judge.{key}", f"unknown key; {hint}")
    items = raw.get("criteria")
    if not isinstance(items, list) or not items:
        raise _rubric_error(where, "judge.criteria", "required; a list of {name, description} mappings")
    seen: set[str] = set()
    criteria = tuple(_parse_criterion(item, i, where, seen) for i, item in enumerate(items))
    scale = _parse_scale(raw.get("scale", [1, 5]), where)
    instructions = raw.get("instructions")
    if instructions is not None and (not isinstance(instructions, str) or not instructions.strip()):
        raise _rubric_error(where, "judge.instructions", "a non-empty string, or leave the key out")
    text = " ".join(instructions.split()) if instructions is not None else None
    return Rubric(criteria, scale, text)


# ---------------------------------------------------------------------------------------------- prompt


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise MibeError(f"judge order {order!r}: unknown; use {' or '.join(ORDERS)}")


def judge_prompt(
    rubric: Rubric, source: str, reference: str, candidate: str, order: str = "reference_first"
) -> str:
    """The judge's prompt: instructions, criteria, the three texts, the reply form. `source` arrives
    already truncated by the caller; texts sit inside XML-like tags so the judge sees where each ends."""
    _check_order(order)
    low, high = rubric.scale
    pair = [("reference", reference), ("candidate", candidate)]
    if order == "candidate_first":
        pair.reverse()
    sections = [("source", source), *pair]
    return _TEMPLATE.format(
        instructions=f" {rubric.instructions}" if rubric.instructions else "",
        low=low,
        high=high,
        criteria="\n".join(f"- {c.name}: {c.description}" for c in rubric.criteria),
        documents="\n\n".join(_SECTION.format(tag=tag, text=text.strip()) for tag, text in sections),
        count=len(rubric.criteria),
        answer_lines="\n".join(f"{name}: <integer>" for name in rubric.names),
    )


def prompt_hash(rubric: Rubric, order: str = "reference_first") -> str:
    """16 hex digits naming what shapes a judge's scores besides the texts: the prompt version, the
    template text, the rubric and the order. Scores with different hashes are not comparable."""
    _check_order(order)
    blob = json.dumps(
        {
            "version": JUDGE_PROMPT_VERSION,
            "template": _TEMPLATE + _SECTION,
            "rubric": rubric.as_dict(),
            "order": order,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- reply

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_LIST_MARK = re.compile(r"^(?:[-+•]|\d+[.)])\s+")
# name (which may end in "score", as the criterion's own name may), an optional "(1-5)" or "score", a
# separator, an optional "score:", the number, an optional "/5", then an optional comment
_SCORE_LINE = re.compile(
    r"^(?P<name>[a-z][a-z0-9_ \-]*)\s*(?:\([^)]*\))?\s*(?:score)?\s*[:=\-–—]\s*"
    r"(?:score\s*[:=]?\s*)?(?P<score>[+-]?\d+(?:\.\d+)?)\s*(?:(?:/|out of)\s*(?P<top>\d+))?\s*"
    r"(?P<rest>[.,;(\-–—].*)?$"
)
# A second number right after the first ("3-4", "3 – 4", "3, 4"): a range or a hedge, never a score.
_RANGE = re.compile(r"^[\-–—,;]\s*[+-]?\d")
_SCORE_ONLY = re.compile(
    r"^score\s*[:=]?\s*(?P<score>[+-]?\d+(?:\.\d+)?)\s*(?:(?:/|out of)\s*(?P<top>\d+))?(?P<rest>.*)"
)


def _strip_thinking(text: str) -> str:
    # A chat template may open the thinking block inside the prompt, so a lone </think> ends it too.
    # Positions come from the text itself: lower() can change a string's length ("İ" -> "i̇").
    closes = list(re.finditer(r"</think>", text, re.IGNORECASE))
    if closes and not re.search(r"<think>", text, re.IGNORECASE):
        text = text[closes[-1].end() :]
    return _THINK.sub("", text)


def _clean(line: str) -> str:
    line = re.sub(r"[*`#>]", "", line).strip().lower()
    line = re.sub(r"(?<![a-z0-9])_+|_+(?![a-z0-9])", "", line)  # _emphasis_ and __strong__, not snake_case
    return _LIST_MARK.sub("", line).strip()


def _key(name: str, names: Sequence[str]) -> str | None:
    # "overall score" names a criterion `overall_score` when the rubric has one, else `overall`.
    key = re.sub(r"[\s\-]+", "_", name.strip().strip("_- "))
    for candidate in (key, key.removesuffix("_score"), key.removesuffix("score").rstrip("_")):
        if candidate in names:
            return candidate
    return None


def _score(match: re.Match[str], scale: tuple[int, int]) -> int | None:
    """The integer when it is one on the scale (and any "/N" names the scale's top), else None."""
    raw, top = match.group("score"), match.group("top")
    if len(raw) > 12 or _RANGE.match((match.group("rest") or "").strip()):  # "3-4" is no score
        return None
    if "." in raw and float(raw) != int(float(raw)):
        return None
    value = int(float(raw))
    if top is not None and int(top) != scale[1]:
        return None
    return value if scale[0] <= value <= scale[1] else None


def parse_reply(text: str, rubric: Rubric) -> dict[str, int | None]:
    """Every criterion of the rubric -> its integer score, or None when the reply gives none that is
    on the scale. Tolerates markdown, case, spaces for underscores, "4/5", "Score: 4" (also on the line
    after the criterion's name) and list marks; `<think>` blocks are ignored. A range or a second
    number after the score ("3-4", "3 – 4", "3, 4", "3 to 4") is no score. When a criterion is
    scored more than once the last line wins: judges that reason aloud put their verdict last."""
    names = rubric.names
    found: dict[str, int | None] = dict.fromkeys(names)
    pending: str | None = None  # a criterion named alone on a line, waiting for "Score: N"
    for raw_line in _strip_thinking(text).splitlines():
        line = _clean(raw_line)
        if not line:
            continue
        only = _SCORE_ONLY.match(line)
        if pending is not None and only:
            found[pending] = _score(only, rubric.scale)
            pending = None
            continue
        match = _SCORE_LINE.match(line)
        key = _key(match.group("name"), names) if match else None
        if match and key:
            found[key] = _score(match, rubric.scale)
            pending = None
            continue
        pending = _key(line.rstrip(":").strip(), names)
    return found


# ----------------------------------------------------------------------------------------- aggregation

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
    if not _NAME.fullmatch(name):
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
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets save a byte-order mark
    except FileNotFoundError:
        raise MibeError(f"{path}: file not found; check the path to the human ratings CSV") from None
    except UnicodeDecodeError:
        raise MibeError(f"{path}: not UTF-8 text; save the ratings as UTF-8 CSV") from None
    except OSError as exc:
        raise MibeError(f"{path}: cannot read ({exc.strerror}); name the ratings CSV file") from None
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


# ------------------------------------------------------------------------------------- self-preference


def _norm(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().rstrip("/").lower()


def _names_of(desc: Mapping[str, Any]) -> set[str]:
    """A model's path and name as compared (lower case, the last path part too)."""
    out = set()
    for value in (desc.get("path"), desc.get("name")):
        if (v := _norm(value)) is not None:
            out |= {v, v.rsplit("/", 1)[-1]}
    return out


def same_model(judge_desc: Mapping[str, Any], evaluated_desc: Mapping[str, Any]) -> bool:
    """Whether a judge may be grading itself (or its own base model): backend descriptions share a
    path or name, an equal config hash, or the evaluated model was trained from the judge. Errs on the
    side of flagging: a false flag costs a footnote, a missed one a biased score."""
    judge, evaluated = _names_of(judge_desc), _names_of(evaluated_desc)
    provenance = evaluated_desc.get("provenance") or {}
    base = _norm(provenance.get("base_model")) if isinstance(provenance, Mapping) else None
    if base is not None:
        evaluated |= {base, base.rsplit("/", 1)[-1]}
    if judge & evaluated:
        return True
    a, b = judge_desc.get("config_hash"), evaluated_desc.get("config_hash")
    return a is not None and a == b
