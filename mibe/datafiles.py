"""Reading one data file a user names, in the formats releases come in: JSONL, JSON (a list of
records), CSV, TSV and Parquet. Every row is a dict; a bad line, a repeated key or a repeated column
is one line naming the file and where in it (never a half-read table)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mibe.names import DATA_SUFFIXES as SUFFIXES
from mibe.types import MibeError


def _records(path: Path, rows: list[Any], line: Callable[[int], str]) -> list[dict[str, Any]]:
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            shown = json.dumps(row, ensure_ascii=False, default=str)[:40]
            raise MibeError(
                f"{line(number)}: a {type(row).__name__} ({shown}), not a record; "
                "each row must be a JSON object {...}"
            )
    return rows


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys without a word: {"label": "yes", "label": "no"} is "no".
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"the key {twice!r} appears twice in one object")
    return dict(pairs)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows, numbers = [], []
    # utf-8-sig: a byte-order mark (some editors write one) would make the first line invalid JSON.
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line, object_pairs_hook=_unique_keys))
                except json.JSONDecodeError as exc:
                    raise MibeError(
                        f"{path}:{number}: not valid JSON ({exc.msg}); fix or remove the line"
                    ) from None
                except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting too deep
                    raise MibeError(
                        f"{path}:{number}: JSON that cannot be read ({str(exc).split(';')[0][:120]}); "
                        "fix or remove the line"
                    ) from None
                numbers.append(number)
    return _records(path, rows, lambda i: f"{path}:{numbers[i - 1]}")


def _json(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        raw = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError:
        raise  # read_rows names the line
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting too deep
        raise MibeError(f"{path}: JSON that cannot be read ({str(exc).split(';')[0][:120]})") from None
    if isinstance(raw, dict) and isinstance(raw.get("data"), list):
        raw = raw["data"]
    elif isinstance(raw, dict) and raw and all(isinstance(v, dict) for v in raw.values()):
        # PubMedQA's ori_pqal.json keys its records by PMID.
        return [{"__key__": key, **value} for key, value in raw.items()]
    if not isinstance(raw, list):
        raise MibeError(f"{path}: expected a list of records or a mapping of id -> record")
    return _records(path, raw, lambda i: f"{path}: record {i}")


def _parquet(path: Path) -> list[dict[str, Any]]:
    # pyarrow, not pandas: list and struct columns (Me-LLaMA's `choices`, PubMedQA's `CONTEXTS`,
    # MedQA's `options`) come back as Python lists and dicts, and nulls as None.
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise MibeError(f"{path}: column names {repeated} appear more than once; rename them")
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        first = (str(exc).strip().splitlines() or [""])[0][:200]  # pyarrow's messages run to many lines
        raise MibeError(f"{path}: not a readable Parquet file ({first})") from None


def _csv(path: Path, delimiter: str) -> list[dict[str, Any]]:
    """Rows of a CSV/TSV file; a repeated column name or a row with another number of fields than
    the header is refused (csv.DictReader would keep the last of two columns, or file extra fields
    under no name, without a word)."""
    # utf-8-sig: a byte-order mark (Excel writes one) would otherwise glue onto the first column name.
    # A clinical note in one cell can pass csv's default 128 KiB field limit; a line of any length is
    # read from JSONL, so no smaller bound here.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return []
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise MibeError(f"{path}: column names {repeated} appear more than once; rename them")
        rows = []
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise MibeError(
                    f"{path}:{reader.line_num}: {len(row)} fields where the header has {len(header)}; "
                    "quote fields that hold the delimiter"
                )
            rows.append(dict(zip(header, row, strict=True)))
        return rows


def read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return _jsonl(path)
        if suffix == ".json":
            return _json(path)
        if suffix in (".csv", ".tsv"):
            return _csv(path, "\t" if suffix == ".tsv" else ",")
        if suffix == ".parquet":
            return _parquet(path)
    except UnicodeDecodeError as exc:
        if path.read_bytes()[:2] == b"\x1f\x8b":
            raise MibeError(f"{path}: is gzip-compressed; decompress it (gunzip -k {path.name})") from None
        raise MibeError(f"{path}: not UTF-8 (byte {exc.start}); re-encode it, e.g. iconv -t utf-8") from None
    except json.JSONDecodeError as exc:
        raise MibeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except IsADirectoryError:
        raise MibeError(f"{path}: is a folder, not a data file; name a file, or the folder itself") from None
    except OSError as exc:
        raise MibeError(f"{path}: cannot read ({exc.strerror}); check its permissions") from None
    raise MibeError(f"{path}: unsupported format; use {', '.join(SUFFIXES)}")
