"""The reading side of the run folder: every command that shows a number reads it through here.

`mibe rescore`, `audit`, `leaderboard`, `compare` and the summary table all take a run folder's
results.json, run.json and samples from these functions, so a rescored or imported run shows the
same value everywhere. Reading never changes a file (resume trims a cut-off line; see folder.py).
A run folder is data someone may have sent you: nothing here imports code it names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mibe.log import logger
from mibe.runfolder import folder, record, sharding
from mibe.scoring import kinds
from mibe.types import MibeError, Task


@dataclass(frozen=True)
class SavedRun:
    path: Path
    results: dict[str, Any]
    run_json: dict[str, Any]


@dataclass(frozen=True)
class SavedTask:
    name: str
    task: Task
    entry: dict[str, Any]  # its results.json entry
    rows: list[dict[str, Any]]  # its samples, in file order
    private: bool  # the samples hold credentialed text: keep them owner-only


def _json(path: Path) -> Any:
    """results.json or run.json, read and validated against its model (runfolder/record.py)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MibeError(f"{path}: not valid JSON ({exc}); the run folder is damaged (rerun it)") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting too deep
        first = str(exc).split(";")[0][:120]
        raise MibeError(f"{path}: JSON that cannot be read ({first}); the run folder is damaged") from None
    except IsADirectoryError:
        raise MibeError(f"{path}: is a folder, not a file; the run folder is damaged") from None
    return record.check(path, data)


def read_run(path: str | Path) -> SavedRun:
    """A run folder (or its results.json), checked; bad input is one line naming the file and the fix."""
    where = Path(path)
    if where.is_file() and where.name == "results.json":
        where = where.parent
    file = where / "results.json"
    if not where.is_dir():
        raise MibeError(f"{path}: no such run folder; give the folder `mibe run --output-dir` wrote")
    if not file.is_file():
        raise MibeError(
            f"{path}: no results.json; not a run folder, or no task finished (finish it with its `mibe run`)"
        )
    results = _json(file)
    run_json = _json(where / "run.json") if (where / "run.json").is_file() else {}
    return SavedRun(where, results, run_json if isinstance(run_json, dict) else {})


def label(run: SavedRun) -> str:
    """The model's name as boards and comparisons show it (with its adapter, if any)."""
    model = run.results.get("model") or {}
    name = model.get("name") or Path(str(model.get("path") or run.path.name)).name
    adapter = model.get("adapter")
    text = f"{name} + {Path(str(adapter)).name}" if adapter else str(name)
    if model.get("quantization"):  # a fact of the model, like dtype: in the label, not the column key
        text += f" ({model['quantization']})"
    part = sharding.label(run.results)  # `mibe view` of a shard's folder: a part of a run, said
    text += f" ({part})" if part else ""
    return " ".join(text.split())  # a line break or tab in a name would break every table it is shown in


def rescored_text(entry: dict[str, Any]) -> str | None:
    """Where a task's numbers came from when they were not scored by the run itself."""
    origin = entry.get("rescored_from")
    if not origin:
        return None
    if isinstance(origin, dict):
        return f"{origin.get('run')} ({origin.get('parser')} parser)" if origin.get("parser") else str(origin)
    return str(origin)


def rows(run: SavedRun, task: str) -> tuple[dict[str, Any], ...] | None:
    """A task's samples, read only; None when absent. Cached while the file stays the same."""
    path = folder.samples_path(run.path, task)
    if not path.is_file():
        return None
    stat = path.stat()
    found = _read(str(path), stat.st_mtime_ns, stat.st_size)
    schema = run.results.get("schema_version") or 1
    if schema >= record.SCHEMA_VERSION:
        return found
    # Before schema 3, "no answer" was the string "missing" (for label kinds, or a failed parse).
    return tuple(record.no_answer(list(found), schema, _recorded_kind(run, task)))


def _recorded_kind(run: SavedRun, name: str) -> str:
    entry = run.results["tasks"][name]
    if entry.get("answer_type") in kinds.KINDS:
        return entry["answer_type"]
    task = task_file(name, entry, warn=False)
    return task.answer_type if task is not None else kinds.from_metrics(entry["metrics"], ())


@lru_cache(maxsize=64)
def _read(path: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], ...]:
    return tuple(folder.read_samples(Path(path)))


def redacted(task_rows: Sequence[dict[str, Any]]) -> bool:
    # Rows without a prediction or gold (redacted span, entity and text tasks; older redacted runs):
    # only per-document scores to compare.
    return any("prediction" not in r or "gold" not in r for r in task_rows)


def was_redacted(task_rows: Sequence[Any]) -> bool:
    """Written under --redact-samples: marked rows, or (older mibe) rows of ids and scores only."""
    return any(
        isinstance(r, dict) and (r.get("redacted") is True or set(r) == {"id", "score"}) for r in task_rows
    )


def pick(run: SavedRun, names: Sequence[str]) -> list[str]:
    held = list(run.results["tasks"])
    if not held:
        raise MibeError(f"{run.path}: no task was scored in this run; nothing to read")
    for name in names:
        if name not in held:
            raise MibeError(f"--tasks: {run.path} holds no task '{name}'; it holds {', '.join(held)}")
    return list(dict.fromkeys(names)) or held


def split_names(spec: str | None) -> list[str]:
    return [s.strip() for s in (spec or "").split(",") if s.strip()]


def task_specs(spec: str | None) -> tuple[list[str], dict[str, Task]]:
    """`--tasks` of rescore and audit: task names in the run, or task files the user names.

    A task file named here is trusted (its hook may run, e.g. to read the data back for the run's
    document order); one the run folder merely records is read as data only."""
    from mibe import tasks

    names, trusted = [], {}
    for item in split_names(spec):
        if item.endswith((".yaml", ".yml")) or "/" in item:
            task = tasks.load_task(item)
            trusted[task.name] = task
            item = task.name
        names.append(item)
    return names, trusted


def _is_builtin(path: Path, name: str) -> bool:
    from mibe import tasks

    builtin = tasks.builtin_paths().get(name)
    return builtin is not None and builtin.resolve() == path.resolve()


def task_file(
    name: str, entry: dict[str, Any], trusted: dict[str, Task] | None = None, warn: bool = True
) -> Task | None:
    """The task file the run used (its recorded path, else the built-in of that name), or None.

    A path recorded in results.json is loaded untrusted: a run folder is data someone may have sent
    you, so its hook is never imported. `trusted` holds the task files the user named (`--tasks`).
    `warn`: a task file changed since the run is logged as a warning (readers that only look: False)."""
    from mibe import tasks

    if trusted and name in trusted:
        return trusted[name]
    candidates = [Path(entry["task_file"])] if isinstance(entry.get("task_file"), str) else []
    builtin = tasks.builtin_paths().get(name)
    candidates += [builtin] if builtin else []
    found = []
    for path in candidates:
        if path.is_file():
            try:
                loaded = tasks.load_task(path, trusted=_is_builtin(path, name))
            except MibeError:
                continue
            if loaded.name == name:
                found.append(loaded)
    if not found:
        return None
    want = entry["protocol"].get("task_file_hash")
    for task in found:
        if task.file_hash == want:
            return task
    if warn:
        logger.warning(
            f"mibe: warning: {name}: {found[0].path} changed since the run (hash {want} -> "
            f"{found[0].file_hash}); its current labels are used"
        )
    return found[0]


def credentialed(name: str, entry: dict[str, Any], task: Task | None) -> bool:
    """Whether a reader must keep a task's text out of what it shows.

    The run records it (schema 3: `protocol.credentialed`). A folder that does not (older, or edited)
    is credentialed unless `task`, the task file found for it (`task_file`: its recorded path, else the
    built-in of that name), is the very file the run used (same `task_file_hash`): then the file says.
    A task file that says credentialed always wins: the safe side."""
    recorded = entry["protocol"].get("credentialed")
    if task is not None and task.credentialed:
        return True
    if isinstance(recorded, bool):
        return recorded
    return task is None or task.file_hash != entry["protocol"].get("task_file_hash")


def kind(run: SavedRun, name: str) -> str:
    """A task's answer kind: recorded in results.json, else its task file's, else read off its metrics."""
    entry = run.results["tasks"][name]
    if entry.get("answer_type") in kinds.KINDS:
        return entry["answer_type"]
    task = task_file(name, entry, warn=False)
    if task is not None:
        return task.answer_type
    return kinds.from_metrics(entry["metrics"], rows(run, name) or ())


def read_task(run: SavedRun, name: str, trusted: dict[str, Task] | None = None) -> SavedTask:
    """A task's entry, task file and every sample, checked whole (for re-parsing: rescore, audit)."""
    entry = run.results["tasks"][name]
    path = folder.samples_path(run.path, name)
    if not path.is_file():
        raise MibeError(f"{path}: missing; the run folder lost {name}'s raw outputs")
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise MibeError(f"{path}: ends in a cut-off line; the run folder is damaged")
    task_rows = list(rows(run, name) or ())
    if was_redacted(task_rows):
        raise MibeError(
            f"{path}: samples without raw_output: task {name} was run with --redact-samples, which keeps "
            "no prompts or outputs; nothing to re-parse or show (leave it out with --tasks)"
        )
    if any(not isinstance(r, dict) or not {"id", "raw_output", "gold"} <= set(r) for r in task_rows):
        raise MibeError(f"{path}: samples without raw_output or gold; the run folder is damaged")
    _check_count(path, entry, task_rows)
    task = task_file(name, entry, trusted)
    if task is None:
        where = entry.get("task_file") or "not recorded"
        raise MibeError(f"task {name}: its task file ({where}) is gone and no built-in task has that name")
    private = credentialed(name, entry, task) or path.stat().st_mode & 0o077 == 0
    return SavedTask(name, task, entry, task_rows, private)


def _check_count(path: Path, entry: dict[str, Any], task_rows: Sequence[dict[str, Any]]) -> None:
    """One row per document, or per (shot draw, document) in a run of several draws, or per (ordering,
    document) under --choice-permutations."""
    seeds = entry.get("fewshot_seeds") or []
    orderings = entry.get("choice_permutations")
    per = orderings if isinstance(orderings, int) and not isinstance(orderings, bool) and orderings > 1 else 1
    keys = {(r.get("draw"), r.get("permutation"), r["id"]) for r in task_rows}
    n = entry.get("n")
    draws = {r.get("draw") for r in task_rows}
    if seeds and draws != set(seeds):
        raise MibeError(
            f"{path}: rows of draws {sorted(draws, key=str)} but results.json says fewshot_seeds {seeds}; "
            "the run folder is damaged"
        )
    if (
        not isinstance(n, int)
        or len(task_rows) != n * max(len(seeds), 1) * per
        or len(keys) != len(task_rows)
    ):
        times = f" x {len(seeds)} draws" if seeds else (f" x {per} orderings" if per > 1 else "")
        raise MibeError(
            f"{path}: {len(task_rows)} samples ({len(keys)} distinct) but results.json says "
            f"n={n}{times}; the run folder is damaged"
        )


def value(x: Any) -> Any:
    """A samples-file value as the parsers and metrics take it (JSON lists back to tuples)."""
    return tuple(value(v) for v in x) if isinstance(x, list) else x


def doc_order(saved: SavedTask) -> list[str] | None:
    """The run's document order, read back from its data: the bootstrap resamples by position."""
    from mibe import data

    if saved.rows and all(isinstance(r.get("index"), int) for r in saved.rows):
        # Once per document: a run of several shot draws holds each document once per draw.
        return list(dict.fromkeys(r["id"] for r in sorted(saved.rows, key=lambda r: r["index"])))
    source, protocol = saved.entry.get("data_source"), saved.entry["protocol"]
    if not source or (not saved.task.trusted and saved.task.path.with_suffix(".py").is_file()):
        return None  # rows in a hook's layout need the hook, and a run folder's hook never runs
    local = Path(source).exists()
    if not local and (source.startswith("/") or saved.task.credentialed):
        return None
    try:
        docset = data.load_docs(saved.task, data.Location("local" if local else "hub", source))
    except (data.NoData, MibeError, OSError):
        return None
    recorded = protocol.get("data")
    if not isinstance(recorded, dict) or docset.fingerprint != recorded.get("fingerprint"):
        return None
    order = [d.id for d in docset.docs[: protocol.get("limit")]]
    return order if sorted(order) == sorted({r["id"] for r in saved.rows}) else None
