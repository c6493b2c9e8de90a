"""Readers for other harnesses' per-document outputs, so `mibe import` can re-score them.

Two sources are read:

- lm-evaluation-harness 0.4 `--log_samples` files: `samples_<task>_<date>.jsonl` (0.4.3 and later,
  one JSON object a line, every response turned into a string) and the earlier
  `<model_args>_<task>.jsonl` (0.4.0-0.4.2: one JSON array, numbers left as numbers).
- Me-LLaMA's evaluator `--write_out` files, `<task>_write_out_info.json`: the layout of
  lm-evaluation-harness 0.3 (one JSON array; `doc_id`, `prompt_<i>`, `logit_<i>`, `truth`, and each
  metric as a string).

The readers are pure: they return what the files hold, checked and normalised, and never score.
Anything wrong in a file is one `MibeError("<file>:<line>: <what>; <fix>")`. Here: the files read in
turn and checked together; each layout's parsing is in lm_eval_reader.py and me_llama_reader.py, what
they share (the row, JSON read with line numbers) in harness_rows.py.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe.runfolder import lm_eval_reader, me_llama_reader
from mibe.runfolder.harness_rows import HARNESSES, USE, ImportedRow, Parsed, scoring_words, short
from mibe.types import MibeError

# Both 0.3-era harnesses shuffle the test documents with this seed before numbering them (doc_id).
ME_LLAMA_SHUFFLE_SEED = 42
# Me-LLaMA's evaluator writes `truth = task.doc_to_target(doc)`. For every task that is doc["answer"],
# the text its scorer compares with, except i2b2: SequentialLabeling.doc_to_target returns this prefix
# + doc["answer"], while NER.process_results scores against doc["answer"] (docs/importing.md).
ME_LLAMA_NER_TARGET = "\nAnswer: "
# Raised whenever what an importer takes from a file changes, so folders imported before can be found
# and re-imported (a rescore cannot repair a stored gold). me-llama 2: i2b2's gold without the prefix.
IMPORTER_VERSIONS = {"lm-eval": 1, "me-llama": 2}


@dataclass(frozen=True)
class SourceFile:
    path: Path
    sha256: str  # of the file's bytes
    layout: str  # "lm-eval-0.4-jsonl", "lm-eval-0.4-array" or "write-out-0.3"
    scoring: str  # mibe's vocabulary: "generate" or "loglikelihood"
    task_hint: str | None  # the task name the file name carries, if it follows the harness's pattern
    n_rows: int
    notes: tuple[str, ...]  # what the reader had to infer, for run.json


@dataclass(frozen=True)
class Imported:
    harness: str
    scoring: str
    rows: tuple[ImportedRow, ...]
    files: tuple[SourceFile, ...]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def me_llama_row_order(n_docs: int) -> tuple[int, ...]:
    """The dataset row each Me-LLaMA doc_id stands for: its evaluator numbers the test documents after
    shuffling them with random.Random(42), so doc_id k is row order[k] of the split as loaded."""
    order = list(range(n_docs))
    random.Random(ME_LLAMA_SHUFFLE_SEED).shuffle(order)
    return tuple(order)


def read_lm_eval(paths: Sequence[str | os.PathLike[str]]) -> Imported:
    """Rows of lm-evaluation-harness 0.4 --log_samples files (one task, one or more files)."""
    return _read("lm-eval", paths, lm_eval_reader.parse)


def read_me_llama(paths: Sequence[str | os.PathLike[str]], choices: Sequence[str] | None = None) -> Imported:
    """Rows of Me-LLaMA / lm-evaluation-harness 0.3 --write_out files (one task, one or more files).

    For log-likelihood files `choices` (the option texts the harness scored, in order) makes the shared
    prompt exact; without it the prompt is the options' longest common prefix cut before a space."""
    return _read("me-llama", paths, lambda path, text: me_llama_reader.parse(path, text, choices))


def me_llama_gold(truth: Any, answer_type: str, where: str) -> Any:
    """The gold Me-LLaMA's scorer used, from the `truth` its evaluator wrote for a task of `answer_type`."""
    if answer_type != "entities":
        return truth
    if not isinstance(truth, str) or not truth.startswith(ME_LLAMA_NER_TARGET):
        raise MibeError(
            f"{where}: truth {short(truth)} does not start with '\\nAnswer: ', which Me-LLaMA's i2b2 task "
            "writes before the gold; give the --write_out file of Me-LLaMA's i2b2 run"
        )
    return truth[len(ME_LLAMA_NER_TARGET) :]


def read_import(
    harness: str, paths: Sequence[str | os.PathLike[str]], choices: Sequence[str] | None = None
) -> Imported:
    if harness == "lm-eval":
        return read_lm_eval(paths)
    if harness == "me-llama":
        return read_me_llama(paths, choices)
    raise MibeError(f"harness {harness!r}: unknown; use one of {', '.join(HARNESSES)}")


def _read(
    harness: str, paths: Sequence[str | os.PathLike[str]], parse: Callable[[Path, str], Parsed]
) -> Imported:
    if not paths:
        raise MibeError(f"{USE[harness]}: no file given; name the harness's output files")
    rows: list[ImportedRow] = []
    files: list[SourceFile] = []
    seen: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        data = _bytes(path)
        parsed = parse(path, _text(path, data))
        if files and parsed.scoring != files[0].scoring:
            raise MibeError(
                f"{path}:1: {scoring_words(parsed.scoring)} rows, but {files[0].path} holds "
                f"{scoring_words(files[0].scoring)} rows; import one task's outputs at a time"
            )
        for row in parsed.rows:
            if row.id in seen:
                raise MibeError(
                    f"{row.where}: doc_id {row.id} again (first at {seen[row.id]}); "
                    "give each document's output once (one run per import)"
                )
            seen[row.id] = row.where
        rows.extend(parsed.rows)
        files.append(
            SourceFile(
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
                layout=_layout(harness, data),
                scoring=parsed.scoring,
                task_hint=_task_hint(harness, path.name),
                n_rows=len(parsed.rows),
                notes=parsed.notes,
            )
        )
    return Imported(harness=harness, scoring=files[0].scoring, rows=tuple(rows), files=tuple(files))


def _bytes(path: Path) -> bytes:
    if path.is_dir():
        raise MibeError(f"{path}: is a folder; name the output files inside it")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MibeError(f"{path}: no such file; check the path") from None
    except OSError as err:
        raise MibeError(f"{path}: cannot be read ({err.strerror}); check its permissions") from None


def _text(path: Path, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise MibeError(
            f"{path}:{line}: not UTF-8 text; give the file the harness wrote, uncompressed"
        ) from None
    if not text.strip():
        raise MibeError(f"{path}:1: empty file; the harness run wrote no rows, give a finished run's file")
    return text.removeprefix("\ufeff")


def _layout(harness: str, data: bytes) -> str:
    if harness == "me-llama":
        return "write-out-0.3"
    return "lm-eval-0.4-array" if data.lstrip().startswith(b"[") else "lm-eval-0.4-jsonl"


def _task_hint(harness: str, name: str) -> str | None:
    pattern = (
        r"samples_(?P<task>.+)_\d{4}-\d{2}-\d{2}T[0-9.\-]+\.jsonl"
        if harness == "lm-eval"
        else r"(?P<task>.+)_write_out_info\.json"
    )
    found = re.fullmatch(pattern, name)
    return found["task"] if found else None
