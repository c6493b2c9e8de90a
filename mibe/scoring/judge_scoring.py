"""A jury of judge models scoring summaries against a task's rubric: the pure parts.

The rubric (a task file's `judge:` key), the judge prompt and its hash, parsing a judge's reply into
one integer per criterion, the jury's column names, and whether a judge may be grading itself.
Nothing here loads a model or touches disk. The jury's numbers (aggregation, agreement among the
judges and with human ratings) are mibe/scoring/jury_stats.py.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
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
    if not isinstance(name, str) or not NAME.fullmatch(name):
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
