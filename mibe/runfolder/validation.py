"""pydantic's validation errors as the one line a user reads: the field, as keys into the data, and
what it must be in words ("field 'tasks.pubmedqa.n' must be a whole number"). Used by runfolder/record.py."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

_WORDS = {
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "list_type": "a list",
    "bool_type": "true or false",
    "none_required": "null",
}


def _where(data: Any, loc: tuple[Any, ...], missing: bool) -> str:
    """The field an error names, as keys into the data: pydantic's union tags and `[key]` marks left out."""
    parts, here = [], data
    for i, part in enumerate(loc):
        if part == "[key]":  # a bad key: name the object holding it
            parts = parts[:-1]
            break
        held = isinstance(here, dict) and part in here
        held = held or (isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here))
        if not held:
            parts += [str(part)] if missing and i == len(loc) - 1 else []
            break
        here = here[part]
        parts.append(str(part))
    return ".".join(parts) or "(the file)"


def _what(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is missing"
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        return message if message.startswith("holds ") else f"must be {message}"
    if kind in ("too_short", "too_long"):
        return "must be [low, high]"
    if kind in ("greater_than_equal", "less_than"):
        return "must be a whole number >= 0 (below 10^15)"
    return f"must be {_WORDS.get(kind, str(error['msg']).lower())}"


def first_problem(exc: ValidationError, data: Any) -> tuple[str, str]:
    """The first error's field and what it must be; a union's members each report: all are named."""
    errors = exc.errors()
    first = errors[0]
    field = _where(data, first["loc"], first["type"] == "missing")
    same = [e for e in errors if _where(data, e["loc"], e["type"] == "missing") == field]
    whats = list(dict.fromkeys(_what(e) for e in same))
    if len(whats) > 1 and all(w.startswith("must be ") for w in whats):
        return field, "must be " + " or ".join(w.removeprefix("must be ") for w in whats)
    return field, whats[0]
