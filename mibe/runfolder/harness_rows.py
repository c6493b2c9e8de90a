"""What the harness readers share: a row as a harness file holds it, a parsed file, and reading JSON
(one object a line, or one array) so that every error names the file and the line it starts at."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe.types import MibeError

HARNESSES = ("lm-eval", "me-llama")
USE = {"lm-eval": "mibe import lm-eval", "me-llama": "mibe import me-llama"}
LOOKS_LIKE = {
    "lm-eval": "an lm-evaluation-harness 0.4 --log_samples file",
    "me-llama": "a Me-LLaMA (lm-evaluation-harness 0.3) --write_out file",
}


@dataclass(frozen=True)
class ImportedRow:
    id: str  # doc_id as text
    prompt: str  # generation: the context sent; log-likelihood: the context shared by every choice
    raw_output: str | None  # the generated text before any filter; None for log-likelihood rows
    logprobs: tuple[float, ...] | None  # one per choice, in the file's order; None for generation
    gold: Any  # as the file gives it: lm-eval's `target`, write_out's `truth`
    continuations: tuple[str, ...] | None  # log-likelihood: the text scored after the prompt, per choice
    doc: Mapping[str, Any] | None  # lm-eval's logged document; write_out files log none
    where: str  # "<file>:<line>" the row starts at


@dataclass(frozen=True)
class Parsed:
    rows: list[ImportedRow]
    scoring: str
    notes: tuple[str, ...]


def scoring_words(scoring: str) -> str:
    return "generated-text" if scoring == "generate" else "log-likelihood"


def _json_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    """(line, value) for each row: the elements of a JSON array, or the lines of a JSON-lines file."""
    if text.lstrip().startswith("["):
        return _array_rows(path, text)
    whole = _whole_object(text)
    if whole is not None:
        _refuse_single_object(path, whole)
    rows = []
    # One record per "\n": text inside a record may hold U+2028, U+2029 or U+0085, where
    # str.splitlines() would also break.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            rows.append((number, _loads(path, line, number)))
    return rows


def _loads(path: Path, line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise MibeError(
            f"{path}:{number}: not valid JSON ({err.msg}, column {err.colno}); "
            "the file is cut off or edited, give the file the harness wrote"
        ) from None


def _whole_object(text: str) -> dict[str, Any] | None:
    """A file holding one pretty-printed JSON object (not JSON lines), else None."""
    if "\n" not in text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _refuse_single_object(path: Path, whole: Mapping[str, Any]) -> None:
    if "results" in whole:
        raise MibeError(
            f"{path}:1: looks like a harness's summary results file (scores only, no per-document "
            "outputs); give lm-eval's samples_<task>_<date>.jsonl (--log_samples) or Me-LLaMA's "
            "<task>_write_out_info.json (--write_out)"
        )
    raise MibeError(
        f"{path}:1: one JSON object, not one row per document; give the harness's per-document file"
    )


def _array_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(text, len(text) - len(text.lstrip()))
    except json.JSONDecodeError as err:
        raise MibeError(
            f"{path}:{err.lineno}: not valid JSON ({err.msg}); the file is cut off or edited, "
            "give the file the harness wrote"
        ) from None
    if text[end:].strip():
        line = text.count("\n", 0, end) + 1
        raise MibeError(f"{path}:{line}: text after the JSON array; give the file the harness wrote")
    rows, line, counted = [], 1, 0
    for start, item in zip(_element_starts(text), value, strict=True):
        line += text.count("\n", counted, start)  # counted piecewise: a large array stays linear
        counted = start
        rows.append((line, item))
    return rows


def _element_starts(text: str) -> list[int]:
    """Offsets where each top-level array element begins (the text is known to be a valid array)."""
    decoder = json.JSONDecoder()
    index = text.index("[") + 1
    starts = []
    while True:
        index = _skip(text, index, " \t\r\n")
        if text[index] == "]":
            return starts
        starts.append(index)
        _, index = decoder.raw_decode(text, index)
        index = _skip(text, index, " \t\r\n,")


def _skip(text: str, index: int, chars: str) -> int:
    while index < len(text) and text[index] in chars:
        index += 1
    return index


def _row_kind(row: Mapping[str, Any]) -> str | None:
    if any(key in row for key in ("prompt_0", "logit_0", "truth")):
        return "me-llama"
    if any(key in row for key in ("arguments", "resps", "filtered_resps")):
        return "lm-eval"
    return None


def objects(path: Path, text: str, harness: str) -> list[tuple[int, Mapping[str, Any]]]:
    """The file's rows, each checked to be an object written by `harness`."""
    rows = _json_rows(path, text)
    if not rows:
        raise MibeError(f"{path}:1: no rows; the harness run wrote no documents, give a finished run's file")
    for line, row in rows:
        if not isinstance(row, dict):
            raise MibeError(
                f"{path}:{line}: a JSON {type(row).__name__}, not an object per document; "
                f"this is not {LOOKS_LIKE[harness]}"
            )
        kind = _row_kind(row)
        if kind is None:
            raise MibeError(f"{path}:{line}: neither harness's row keys; this is not {LOOKS_LIKE[harness]}")
        if kind != harness:
            raise MibeError(f"{path}:{line}: looks like {LOOKS_LIKE[kind]}; use `{USE[kind]}`")
    return rows


def need(path: Path, line: int, row: Mapping[str, Any], key: str, harness: str) -> Any:
    if key not in row:
        raise MibeError(
            f"{path}:{line}: no {key!r} key; {LOOKS_LIKE[harness]} has one on every row, "
            "give the file the harness wrote"
        )
    return row[key]


def logprob(path: Path, line: int, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MibeError(
            f"{path}:{line}: {what} is {short(value)}, not a log-likelihood; give the file the harness wrote"
        )
    try:
        number = float(value)
    except ValueError:
        raise MibeError(
            f"{path}:{line}: {what} is {short(value)}, not a number; give the file the harness wrote"
        ) from None
    if math.isnan(number) or number > 0:
        raise MibeError(
            f"{path}:{line}: {what} is {short(value)}, not a log-likelihood (those are <= 0); "
            "give the file the harness wrote"
        )
    return number


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def row_id(path: Path, line: int, row: Mapping[str, Any], harness: str) -> str:
    doc_id = need(path, line, row, "doc_id", harness)
    if isinstance(doc_id, bool) or not isinstance(doc_id, int | str) or doc_id == "":
        raise MibeError(f"{path}:{line}: doc_id is {short(doc_id)}; expected a number or a name")
    return str(doc_id)
