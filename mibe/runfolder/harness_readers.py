"""Readers for other harnesses' per-document outputs, so `mibe import` can re-score them.

Two sources are read:

- lm-evaluation-harness 0.4 `--log_samples` files: `samples_<task>_<date>.jsonl` (0.4.3 and later,
  one JSON object a line, every response turned into a string) and the earlier
  `<model_args>_<task>.jsonl` (0.4.0-0.4.2: one JSON array, numbers left as numbers).
- Me-LLaMA's evaluator `--write_out` files, `<task>_write_out_info.json`: the layout of
  lm-evaluation-harness 0.3 (one JSON array; `doc_id`, `prompt_<i>`, `logit_<i>`, `truth`, and each
  metric as a string).

The readers are pure: they return what the files hold, checked and normalised, and never score.
Anything wrong in a file is one `MibeError("<file>:<line>: <what>; <fix>")`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
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
# Me-LLaMA builds each generation request as greedy_until(ctx, {"until": None}) and writes its prompt as
# "".join("".join(arg) for arg in args): joining the dict yields its key, so every prompt_0 ends in this.
ME_LLAMA_PROMPT_TAIL = "until"
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


@dataclass(frozen=True)
class _Parsed:
    rows: list[ImportedRow]
    scoring: str
    notes: tuple[str, ...]


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
    return _read("lm-eval", paths, lambda path, text: _parse_lm_eval(path, text))


def read_me_llama(paths: Sequence[str | os.PathLike[str]], choices: Sequence[str] | None = None) -> Imported:
    """Rows of Me-LLaMA / lm-evaluation-harness 0.3 --write_out files (one task, one or more files).

    For log-likelihood files `choices` (the option texts the harness scored, in order) makes the shared
    prompt exact; without it the prompt is the options' longest common prefix cut before a space."""
    return _read("me-llama", paths, lambda path, text: _parse_write_out(path, text, choices))


def me_llama_gold(truth: Any, answer_type: str, where: str) -> Any:
    """The gold Me-LLaMA's scorer used, from the `truth` its evaluator wrote for a task of `answer_type`."""
    if answer_type != "entities":
        return truth
    if not isinstance(truth, str) or not truth.startswith(ME_LLAMA_NER_TARGET):
        raise MibeError(
            f"{where}: truth {_short(truth)} does not start with '\\nAnswer: ', which Me-LLaMA's i2b2 task "
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
    harness: str, paths: Sequence[str | os.PathLike[str]], parse: Callable[[Path, str], _Parsed]
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
                f"{path}:1: {_scoring_words(parsed.scoring)} rows, but {files[0].path} holds "
                f"{_scoring_words(files[0].scoring)} rows; import one task's outputs at a time"
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


def _scoring_words(scoring: str) -> str:
    return "generated-text" if scoring == "generate" else "log-likelihood"


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


# --- reading JSON with line numbers -------------------------------------------------------------------


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


def _objects(path: Path, text: str, harness: str) -> list[tuple[int, Mapping[str, Any]]]:
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


def _need(path: Path, line: int, row: Mapping[str, Any], key: str, harness: str) -> Any:
    if key not in row:
        raise MibeError(
            f"{path}:{line}: no {key!r} key; {LOOKS_LIKE[harness]} has one on every row, "
            "give the file the harness wrote"
        )
    return row[key]


def _logprob(path: Path, line: int, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MibeError(
            f"{path}:{line}: {what} is {_short(value)}, not a log-likelihood; give the file the harness wrote"
        )
    try:
        number = float(value)
    except ValueError:
        raise MibeError(
            f"{path}:{line}: {what} is {_short(value)}, not a number; give the file the harness wrote"
        ) from None
    if math.isnan(number) or number > 0:
        raise MibeError(
            f"{path}:{line}: {what} is {_short(value)}, not a log-likelihood (those are <= 0); "
            "give the file the harness wrote"
        )
    return number


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _id(path: Path, line: int, row: Mapping[str, Any], harness: str) -> str:
    doc_id = _need(path, line, row, "doc_id", harness)
    if isinstance(doc_id, bool) or not isinstance(doc_id, int | str) or doc_id == "":
        raise MibeError(f"{path}:{line}: doc_id is {_short(doc_id)}; expected a number or a name")
    return str(doc_id)


# --- lm-evaluation-harness 0.4 ------------------------------------------------------------------------


def _parse_lm_eval(path: Path, text: str) -> _Parsed:
    rows: list[ImportedRow] = []
    scoring: str | None = None
    kept: dict[str, tuple[int, Any]] = {}  # doc_id -> (line, resps): one row per filter repeats a document
    for line, row in _objects(path, text, "lm-eval"):
        doc_id = _id(path, line, row, "lm-eval")
        resps = _need(path, line, row, "resps", "lm-eval")
        if doc_id in kept:
            if kept[doc_id][1] == resps:
                continue  # the same outputs under another filter (e.g. strict-match and flexible-extract)
            raise MibeError(
                f"{path}:{line}: doc_id {doc_id} again with other outputs (first at line {kept[doc_id][0]}); "
                "the file holds two runs, give one run's file"
            )
        kept[doc_id] = (line, resps)
        arguments = _lm_eval_arguments(path, line, _need(path, line, row, "arguments", "lm-eval"))
        row_scoring = _lm_eval_scoring(path, line, arguments)
        if scoring is None:
            scoring = row_scoring
        elif row_scoring != scoring:
            raise MibeError(
                f"{path}:{line}: a {_scoring_words(row_scoring)} row in a file of {_scoring_words(scoring)} "
                "rows; give one task's file"
            )
        where = f"{path}:{line}"
        common = {"id": doc_id, "gold": _need(path, line, row, "target", "lm-eval"), "doc": row.get("doc")}
        if scoring == "generate":
            rows.append(_lm_eval_generation(path, line, arguments, resps, where, common))
        else:
            rows.append(_lm_eval_choices(path, line, arguments, resps, where, common))
    assert scoring is not None  # _objects refuses files without rows
    return _Parsed(rows=rows, scoring=scoring, notes=())


def _lm_eval_arguments(path: Path, line: int, arguments: Any) -> list[list[Any]]:
    """Each request's positional arguments. 0.4.3+ writes {"gen_args_0": {"arg_0": ..., "arg_1": ...}};
    0.4.0-0.4.2 wrote the requests' argument lists as they were."""
    if isinstance(arguments, dict):
        requests = []
        for i in range(len(arguments)):
            request = arguments.get(f"gen_args_{i}")
            if not isinstance(request, dict):
                raise MibeError(
                    f"{path}:{line}: arguments has no gen_args_{i} object; give the file the harness wrote"
                )
            requests.append([request.get(f"arg_{j}") for j in range(len(request))])
        arguments = requests
    if not isinstance(arguments, list) or not arguments or not all(isinstance(a, list) for a in arguments):
        raise MibeError(
            f"{path}:{line}: arguments is {_short(arguments)}, not the requests sent; "
            "give the file the harness wrote"
        )
    return arguments


def _lm_eval_scoring(path: Path, line: int, arguments: list[list[Any]]) -> str:
    first = arguments[0]
    if not first or not isinstance(first[0], str):
        raise MibeError(f"{path}:{line}: the request holds no prompt text; give the file the harness wrote")
    if len(first) >= 2 and isinstance(first[1], dict):
        return "generate"  # generate_until: (context, generation kwargs)
    if len(first) >= 2 and isinstance(first[1], str):
        return "loglikelihood"  # loglikelihood / multiple_choice: (context, continuation)
    raise MibeError(
        f"{path}:{line}: a loglikelihood_rolling (perplexity) request; mibe imports generated text "
        "or multiple-choice log-likelihoods only"
    )


def _lm_eval_generation(
    path: Path, line: int, arguments: list[list[Any]], resps: Any, where: str, common: dict[str, Any]
) -> ImportedRow:
    if len(arguments) != 1:
        raise MibeError(
            f"{path}:{line}: {len(arguments)} generation requests for one document; mibe reads one"
        )
    ok = isinstance(resps, list) and len(resps) == 1 and isinstance(resps[0], list)
    if not ok or len(resps[0]) != 1 or not isinstance(resps[0][0], str):
        raise MibeError(
            f"{path}:{line}: resps is {_short(resps)}, not one generated text ([[text]]); "
            "runs with repeats > 1 or a damaged file cannot be imported"
        )
    return ImportedRow(
        prompt=arguments[0][0],
        raw_output=resps[0][0],
        logprobs=None,
        continuations=None,
        where=where,
        **common,
    )


def _lm_eval_choices(
    path: Path, line: int, arguments: list[list[Any]], resps: Any, where: str, common: dict[str, Any]
) -> ImportedRow:
    contexts = {request[0] for request in arguments}
    if len(contexts) != 1 or not all(len(r) >= 2 and isinstance(r[1], str) for r in arguments):
        raise MibeError(
            f"{path}:{line}: the choices were scored after different prompts; mibe imports multiple-choice "
            "rows whose options share one prompt"
        )
    if len(arguments) < 2:
        raise MibeError(
            f"{path}:{line}: one log-likelihood per document; mibe imports multiple choice (one per option)"
        )
    if not isinstance(resps, list) or len(resps) != len(arguments):
        raise MibeError(
            f"{path}:{line}: resps does not hold one answer per choice; give the file the harness wrote"
        )
    logprobs = []
    for i, resp in enumerate(resps):
        # one repeat per request, each a (log-likelihood, is_greedy) pair
        if not (isinstance(resp, list) and resp and isinstance(resp[0], list | tuple) and resp[0]):
            raise MibeError(
                f"{path}:{line}: resps[{i}] is {_short(resp)}, not [[log-likelihood, is_greedy]]; "
                "give the file the harness wrote"
            )
        logprobs.append(_logprob(path, line, resp[0][0], f"resps[{i}]"))
    return ImportedRow(
        prompt=arguments[0][0],
        raw_output=None,
        logprobs=tuple(logprobs),
        continuations=tuple(request[1] for request in arguments),
        where=where,
        **common,
    )


# --- Me-LLaMA / lm-evaluation-harness 0.3 --write_out ---------------------------------------------------


def _indexed(path: Path, line: int, row: Mapping[str, Any], prefix: str) -> list[Any]:
    """prompt_0, prompt_1, ... (or logit_<i>) in order; the numbering must have no gap."""
    numbers = sorted(int(key[len(prefix) :]) for key in row if re.fullmatch(rf"{prefix}\d+", key))
    if numbers != list(range(len(numbers))):
        missing = next(i for i in range(len(numbers) + 1) if i not in numbers)
        raise MibeError(
            f"{path}:{line}: no {prefix}{missing} key; the run stopped before every request was answered, "
            "give a finished run's file"
        )
    return [row[f"{prefix}{i}"] for i in numbers]


@dataclass(frozen=True)
class _Written:
    id: str
    prompts: list[str]
    logits: list[Any]
    truth: Any
    line: int
    where: str


def _parse_write_out(path: Path, text: str, choices: Sequence[str] | None) -> _Parsed:
    written = []
    for line, row in _objects(path, text, "me-llama"):
        doc_id = _id(path, line, row, "me-llama")
        prompts = _indexed(path, line, row, "prompt_")
        logits = _indexed(path, line, row, "logit_")
        if not prompts or len(logits) != len(prompts):
            raise MibeError(
                f"{path}:{line}: {len(prompts)} prompt_<i> but {len(logits)} logit_<i> keys; "
                "the run stopped before every request was answered, give a finished run's file"
            )
        if not all(isinstance(p, str) for p in prompts):
            raise MibeError(f"{path}:{line}: a prompt_<i> is not text; give the file the harness wrote")
        truth = _need(path, line, row, "truth", "me-llama")
        written.append(_Written(doc_id, prompts, logits, truth, line, f"{path}:{line}"))
    first = written[0]
    if len(first.prompts) == 1 and isinstance(first.logits[0], str):
        return _write_out_generation(written)
    if len(first.prompts) == 1:
        raise MibeError(
            f"{first.where}: one log-likelihood per document; mibe imports generated text "
            "or multiple choice (one log-likelihood per option)"
        )
    return _write_out_choices(path, written, choices)


def _write_out_generation(written: list[_Written]) -> _Parsed:
    for row in written:
        if len(row.prompts) != 1 or not isinstance(row.logits[0], str):
            raise MibeError(
                f"{row.where}: doc_id {row.id} is not a generated-text row like the file's first; "
                "give one task's file"
            )
    tailed = all(row.prompts[0].endswith(ME_LLAMA_PROMPT_TAIL) for row in written)
    cut = len(ME_LLAMA_PROMPT_TAIL) if tailed else 0
    notes = (
        (f"prompt_0 ends in the text {ME_LLAMA_PROMPT_TAIL!r} that Me-LLaMA's evaluator appends; removed",)
        if tailed
        else ("prompt_0 kept as written: the 0.3 harness appends the request's stop strings to it",)
    )
    rows = [
        ImportedRow(
            id=row.id,
            prompt=row.prompts[0][: len(row.prompts[0]) - cut],
            raw_output=row.logits[0],
            logprobs=None,
            gold=row.truth,
            continuations=None,
            doc=None,
            where=row.where,
        )
        for row in written
    ]
    return _Parsed(rows=rows, scoring="generate", notes=notes)


def _write_out_choices(path: Path, written: list[_Written], choices: Sequence[str] | None) -> _Parsed:
    rows = []
    for row in written:
        if len(row.prompts) == 1:
            raise MibeError(
                f"{row.where}: doc_id {row.id} has one request, the file's first has several; "
                "give one task's file"
            )
        logprobs = tuple(_logprob(path, row.line, value, f"logit_{i}") for i, value in enumerate(row.logits))
        context = _shared_context(row.where, row.prompts, choices)
        rows.append(
            ImportedRow(
                id=row.id,
                prompt=context,
                raw_output=None,
                logprobs=logprobs,
                gold=row.truth,
                continuations=tuple(p[len(context) :] for p in row.prompts),
                doc=None,
                where=row.where,
            )
        )
    note = (
        "prompt = prompt_<i> less ' ' + choice i (choices given)"
        if choices is not None
        else "prompt = the longest prefix shared by every prompt_<i>, cut before its last space "
        "(the 0.3 harness scores ' ' + choice after the prompt)"
    )
    return _Parsed(rows=rows, scoring="loglikelihood", notes=(note,))


def _shared_context(where: str, prompts: list[str], choices: Sequence[str] | None) -> str:
    """The prompt every option was scored after: the 0.3 harness wrote prompt_i = context + " " + option."""
    if choices is not None:
        if len(choices) != len(prompts):
            raise MibeError(
                f"{where}: {len(prompts)} options scored but {len(choices)} choices given; "
                "give the option texts the harness scored"
            )
        contexts = set()
        for i, (prompt, choice) in enumerate(zip(prompts, choices, strict=True)):
            if not prompt.endswith(" " + choice):
                raise MibeError(
                    f"{where}: prompt_{i} does not end in ' {choice}'; give the option texts the harness "
                    "scored, in its order"
                )
            contexts.add(prompt[: len(prompt) - len(choice) - 1])
        if len(contexts) != 1:
            raise MibeError(f"{where}: the options were scored after different prompts; give one task's file")
        return contexts.pop()
    prefix = _common_prefix(prompts)
    cut = prefix.rfind(" ")
    if cut < 0:
        raise MibeError(
            f"{where}: the prompt_<i> share no prompt ending before a space; "
            "this is not a multiple-choice row of the 0.3 harness"
        )
    return prefix[:cut]


def _common_prefix(texts: list[str]) -> str:
    shortest, longest = min(texts), max(texts)
    for i, char in enumerate(shortest):
        if char != longest[i]:
            return shortest[:i]
    return shortest
