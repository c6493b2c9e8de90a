"""The run folder's JSON files checked against their contract (docs/run-folder.md) when they are read.

A run folder is data that may come from anyone: every command reads results.json and run.json through
these checks, so a field of the wrong type is one line naming the file and the field, never a
TypeError deep inside a board or a page. Only the fields some command reads are checked; the rest of
the contract is free-form (protocol keys, notes) and shown as text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from mibe.types import TASK_NAME, MibeError

Check = Callable[[Any], bool]


def number(x: Any) -> bool:
    # A number a float can hold (a 400-digit integer cannot); NaN and inf are read as "not a number"
    # by the boards, which show them as absent.
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return abs(x) < 10**300
    return isinstance(x, float)


def count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 10**15


def _maybe(check: Check) -> Check:
    return lambda x: x is None or check(x)


def _text(x: Any) -> bool:
    return isinstance(x, str)


def _mapping(x: Any) -> bool:
    return isinstance(x, dict)


def _numbers(x: Any) -> bool:
    return isinstance(x, list) and all(v is None or number(v) for v in x)


def _interval(x: Any) -> bool:
    if not (isinstance(x, list) and len(x) == 2 and all(v is None or number(v) for v in x)):
        return False
    low, high = x
    finite = all(v is not None and math.isfinite(float(v)) for v in x)
    return not finite or float(low) <= float(high)


def _seeds(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in x)


# field -> (check, what it must be). Absent fields pass: older folders lack newer keys.
TOP: dict[str, tuple[Check, str]] = {
    "model": (_mapping, "an object"),
    "config": (_mapping, "an object"),
    "skipped": (_mapping, "an object"),
    "timing": (_mapping, "an object"),
    "protocols": (_mapping, "an object"),
    "schema_version": (count, "a whole number"),
}
MODEL: dict[str, tuple[Check, str]] = {
    "name": (_maybe(_text), "a string"),
    "path": (_maybe(_text), "a string"),
    "adapter": (_maybe(_text), "a string or null"),
    "provenance": (_maybe(_mapping), "an object or null"),
    "backend": (_maybe(_text), "a string"),
}
ENTRY: dict[str, tuple[Check, str]] = {
    "n": (count, "a whole number >= 0"),
    "n_clusters": (_maybe(count), "a whole number >= 0 or null"),
    "cluster_key": (_maybe(_text), "a string or null"),
    "parse_failures": (count, "a whole number >= 0"),
    "truncated": (count, "a whole number >= 0"),
    "answer_type": (_text, "a string"),
    "domain": (_text, "a string"),
    "per_class": (_maybe(_mapping), "an object or null"),
    "calibration": (_maybe(_mapping), "an object or null"),
    "draws": (_maybe(_mapping), "an object or null"),
    "extraction": (_maybe(_mapping), "an object or null"),
    "fewshot_seeds": (_maybe(_seeds), "a list of whole numbers"),
    "warnings": (lambda x: isinstance(x, list), "a list"),
}
PROTOCOL: dict[str, tuple[Check, str]] = {
    "task": (_text, "a string"),
    "parser": (_maybe(_text), "a string"),
    "scoring": (_maybe(_text), "a string"),
    "shots": (_maybe(count), "a whole number >= 0"),
    "limit": (_maybe(count), "a whole number or null"),
    "fewshot_seeds": (_maybe(_seeds), "a list of whole numbers"),
    "jury": (_maybe(_mapping), "an object or null"),
    "data": (_maybe(lambda x: isinstance(x, dict | str)), "an object, a string or null"),
}


def _metric_value(x: Any) -> bool:
    # Every metric mibe writes is a share, a mean score or a count-based rate: far below 1e6.
    return number(x) and (math.isnan(float(x)) or abs(float(x)) < 1e6)


METRIC: dict[str, tuple[Check, str]] = {
    "value": (_maybe(_metric_value), "a number below 1e6 in size, or null"),
    "ci95": (_maybe(_interval), "[low, high] with low <= high, or null"),
    "sd": (_maybe(number), "a number or null"),
    "values": (_numbers, "a list of numbers"),
    "n_draws": (count, "a whole number"),
}


Problem = tuple[str, str] | None  # (field, what it must be)


def _fields(data: dict[str, Any], table: dict[str, tuple[Check, str]], where: str) -> Problem:
    for key, (check, what) in table.items():
        if key in data and not check(data[key]):
            return f"{where}{key}", f"must be {what}"
    return None


def _entry_problem(name: str, entry: Any) -> Problem:
    where = f"tasks.{name}."
    if not isinstance(entry, dict):
        return f"tasks.{name}", "must be an object"
    for key in ("protocol", "metrics"):
        if not isinstance(entry.get(key), dict):
            return f"{where}{key}", "must be an object (rerun that task with `mibe run`)"
    problem = _fields(entry, ENTRY, where) or _fields(entry["protocol"], PROTOCOL, f"{where}protocol.")
    if problem:
        return problem
    for metric, value in entry["metrics"].items():
        if not isinstance(value, dict):
            return f"{where}metrics.{metric}", 'must be an object such as {"value": 0.5, "ci95": [0.4, 0.6]}'
        problem = _fields(value, METRIC, f"{where}metrics.{metric}.")
        if problem:
            return problem
    return None


def results_problem(data: Any) -> Problem:
    """The first field of a results.json that breaks the contract, as (field, what it must be)."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        return "tasks", "must be an object of task name -> entry (no 'tasks' mapping: a mibe results.json?)"
    problem = _fields(data, TOP, "") or _fields(data.get("model") or {}, MODEL, "model.")
    if problem:
        return problem
    for name, entry in data["tasks"].items():
        if not re.fullmatch(TASK_NAME, name):  # it names samples/<name>.jsonl: never a path
            return "tasks", f"holds {name!r}: not a task name (lower-case letters, digits and _ only)"
        problem = _entry_problem(name, entry)
        if problem:
            return problem
    return None


def run_json_problem(data: Any) -> Problem:
    """The first field of a run.json that breaks the contract, as (field, what it must be)."""
    if not isinstance(data, dict):
        return "(the file)", "must be a JSON object"
    problem = _fields(data, TOP, "") or _fields(data.get("model") or {}, MODEL, "model.")
    if problem:
        return problem
    for name, protocol in (data.get("protocols") or {}).items():
        if not isinstance(protocol, dict):
            return f"protocols.{name}", "must be an object"
        problem = _fields(protocol, PROTOCOL, f"protocols.{name}.")
        if problem:
            return problem
    return None


def check(path: Any, data: Any) -> Any:
    """`data` read from `path` (a results.json or run.json), returned when it keeps the contract."""
    problem = results_problem(data) if str(path).endswith("results.json") else run_json_problem(data)
    if problem:
        field, what = problem
        raise MibeError(f"{path}: field '{field}' {what}; the run folder is damaged (rerun it)")
    return data
