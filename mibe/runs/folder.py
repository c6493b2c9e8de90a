"""The run folder: run.json, results.json (atomic) and samples/<task>.jsonl (appended, flushed)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mibe.runs import record
from mibe.types import TASK_NAME, MibeError, Task

# Bump (in runs/record.py, with its models) when a key docs/run-folder.md lists changes; readers keep
# reading older folders.
SCHEMA_VERSION = record.SCHEMA_VERSION
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """A full disk becomes one line; what was flushed before stays, so the run resumes."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL:
            raise MibeError(
                f"{path}: cannot write ({exc.strerror}); free space, then run the same command to resume"
            ) from None
        raise


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """One writer per run folder: a second `mibe run` on it is refused, never interleaved.

    The `.lock` file is removed when the run ends, so a finished folder holds only the run's files."""
    check_writable(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    handle = _take_lock(path, run_dir)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding it: a waiting process then retries anew
        handle.close()  # closing releases the lock, also when the process is killed


MINE = ("run.json", "results.json", "samples", ".lock")  # what mibe writes at a run folder's top


def check_writable(run_dir: Path) -> None:
    """An output folder mibe can create and write, checked before any model loads; else one line."""
    if run_dir.exists() and not run_dir.is_dir():
        raise MibeError(f"--output-dir {run_dir}: is a file, not a folder; choose another --output-dir")
    near = run_dir
    while not near.exists():
        near = near.parent
    if not near.is_dir():
        raise MibeError(
            f"--output-dir {run_dir}: {near} is a file, not a folder; choose another --output-dir"
        )
    try:  # a real write: permission bits say nothing to root or on a read-only mount
        tempfile.TemporaryFile(dir=near).close()
    except OSError as exc:
        raise MibeError(
            f"--output-dir {run_dir}: cannot write in {near} ({exc.strerror}); choose a writable --output-dir"
        ) from None


def is_mibe_run_json(path: Path) -> bool:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and {"schema_version", "config", "model", "protocols"} <= set(raw)


def holding_run(path: Path, runs: Sequence[str | Path] = ()) -> Path | None:
    """The run folder `path` lies in: one of `runs` (as given on the command line), or a folder up to
    three levels above it holding mibe's run.json or a results.json (a folder sent without run.json)."""
    target = path.resolve()
    for run in runs:
        here = Path(run).resolve()
        here = here.parent if here.is_file() else here
        if here in target.parents:
            return here
    for parent in list(target.parents)[:3]:  # the folder, samples/, and one below
        if is_mibe_run_json(parent / "run.json") or (parent / "results.json").is_file():
            return parent
    return None


def refuse_inside_run(output: str | Path, runs: Sequence[str | Path] = ()) -> None:
    """A report, board or page written into a run folder could replace the files it was made from."""
    run = holding_run(Path(output), runs)
    if run is not None:
        raise MibeError(f"-o {output}: inside the run folder {run}; write it outside run folders")


def refuse_link(path: Path) -> None:
    """A run folder holds plain files: mibe neither writes through a link (a received folder's
    samples/x.jsonl -> ~/.bashrc would be appended to) nor reads one into a report or page."""
    if path.is_symlink():
        raise MibeError(
            f"{path}: is a link (to {os.readlink(path)}); a run folder holds plain files only: "
            "remove the link, or copy the folder with the files themselves (cp -rL)"
        )


def check_run_folder(run_dir: Path) -> None:
    """Only an empty (or new) folder or one holding mibe's own run.json is a run folder: a results.json,
    samples or anything else mibe did not write is never overwritten, appended to or reused."""
    check_writable(run_dir)
    if not run_dir.is_dir():
        return
    for entry in run_dir.rglob("*"):  # a link would send mibe's writes to a file outside the folder
        refuse_link(entry)
    for name in ("run.json", "results.json"):
        if (run_dir / name).exists() and not (run_dir / name).is_file():
            raise MibeError(f"{run_dir / name}: is a folder, not a file; the run folder is damaged")
    held = sorted(p.name for p in run_dir.iterdir() if p.name != ".lock")
    if not held or is_mibe_run_json(run_dir / "run.json"):
        return
    shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
    raise MibeError(
        f"--output-dir {run_dir}: holds files mibe did not write ({shown}) and no run.json of mibe's; "
        "choose a new or empty folder (--overwrite deletes only what mibe wrote)"
    )


def _take_lock(path: Path, run_dir: Path) -> Any:
    import fcntl

    for _ in range(3):
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise MibeError(
                f"{run_dir}: another mibe process (pid {owner}) is writing this run folder; "
                "wait for it to finish or use another --output-dir"
            ) from None
        # The holder before us removes the file as it ends: a lock on that removed file guards nothing.
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()
    raise MibeError(f"{run_dir}: could not lock the run folder; run the same command again")


def write_json_atomic(path: Path, data: Any, private: bool = False) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: never a half-written file.

    `private` (a run holding a credentialed task): owner-only; otherwise the file follows the umask."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_text_atomic(path, text, mode=0o600 if private else _umask_mode())


def _umask_mode() -> int:
    # mkstemp makes 0600 files; an ordinary file gets 0666 less the umask, as open() would give it.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with disk_errors(path), os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """A run folder's results.json or run.json (None when absent), checked against its model."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, ValueError, RecursionError):
        raise MibeError(f"{path}: not valid JSON; delete it or pass --overwrite") from None
    return record.check(path, data)


def samples_path(run_dir: Path, task: str) -> Path:
    # A name from someone else's results.json must not lead outside samples/ ("../../x").
    if not isinstance(task, str) or not re.fullmatch(TASK_NAME, task):
        raise MibeError(
            f"{run_dir}: {task!r} is not a task name (lower-case letters, digits and _ only); "
            "the run folder is damaged"
        )
    return run_dir / "samples" / f"{task}.jsonl"


def read_samples(path: Path, model: type[record.Part] = record.SampleRow) -> list[dict[str, Any]]:
    """Completed samples (or cache rows), read only and validated: text after the last newline (a line
    cut short by a crash) is left out here and trimmed off only by the writer when it resumes."""
    refuse_link(path)
    if not path.is_file():
        return []
    return record.read_lines(path, model)


def trim_partial_line(path: Path) -> None:
    """Resume: drop a line the process died writing, so the next append starts on a fresh line."""
    refuse_link(path)
    if not path.is_file():
        return
    size = path.stat().st_size
    with path.open("r+b") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < size:
            handle.truncate(end)


def done_ids(path: Path, draw: int | None = None, permutation: int | None = None) -> set[str]:
    """The documents a task's samples file already holds for one few-shot draw and one ordering of the
    options (None: a run without them, whose rows have no `draw` / `permutation` key): the writer's
    side of resume."""
    trim_partial_line(path)
    rows = read_samples(path)
    return {r["id"] for r in rows if r.get("draw") == draw and r.get("permutation") == permutation}


def append_samples(path: Path, rows: Iterable[dict[str, Any]], private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link(path.parent)
    refuse_link(path)
    if private and not path.exists():
        # Samples of credentialed tasks hold DUA-covered text: owner-only from the first byte.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with disk_errors(path), path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def shard_path(run_dir: Path, task: str, rank: int) -> Path:
    return run_dir / "samples" / f"{task}.rank{rank}.part"


def merge_shards(run_dir: Path, task: str, private: bool) -> int:
    """Fold every shard of `task` into its samples file, each (draw, permutation, id) once; returns
    rows added."""
    target = samples_path(run_dir, task)
    shards = sorted(target.parent.glob(f"{task}.rank*.part"))
    if not shards:
        return 0

    def key(row: dict[str, Any]) -> tuple:
        return row.get("draw"), row.get("permutation"), row["id"]

    seen = {key(row) for row in read_samples(target)}
    fresh = []
    for shard in shards:
        for row in read_samples(shard):
            if key(row) not in seen:
                seen.add(key(row))
                fresh.append(row)
    if fresh:
        append_samples(target, fresh, private=private)
    for shard in shards:  # only after the rows are safely in the samples file
        shard.unlink()
    return len(fresh)


# --redact-samples: what a row keeps. Never a prompt, an output, a log-prob or a text gold.
REDACTED_KEYS = (
    "id", "index", "draw", "permutation", "option_order", "score", "parse_failed", "shots",
    "truncated_tokens", "invented", "cluster",
)  # fmt: skip
JUDGED_KEY = "judge"  # per-document jury scores (numbers only), kept by redaction for paired tests


def is_redacted(row: dict[str, Any]) -> bool:
    return row.get("redacted") is True


def holds_redacted(path: Path) -> bool:
    """Whether a task's samples were written under --redact-samples: then every later row is too."""
    if not path.is_file():
        return False
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    try:
        return first.endswith("\n") and is_redacted(json.loads(first))
    except ValueError:
        return False


def redact_rows(rows: Sequence[dict[str, Any]], task: Task, parser: str, bertscore_model: str) -> list[dict]:
    """Rows as --redact-samples keeps them: label tasks keep their predicted and gold labels (what
    scoring, resume and compare need); span, entity and text tasks keep each document's statistics
    instead of its text (`kinds.doc_stats`). Rows already redacted pass unchanged."""
    from mibe.scoring import kinds

    full = [r for r in rows if not is_redacted(r)]
    labelled = kinds.get(task.answer_type).labelled
    stats: Iterator[dict[str, float]] = iter(())
    unavailable: dict[str, str] = {}
    if full and not labelled:
        golds = [_value(r["gold"]) for r in full]
        preds = [_value(r["prediction"]) for r in full]
        found, unavailable = kinds.doc_stats(
            task.answer_type, task.metrics, golds, preds, parser, bertscore_model
        )
        stats = iter(found)
    out = []
    for row in rows:
        if is_redacted(row):
            out.append(row)
            continue
        kept: dict[str, Any] = {k: row[k] for k in (*REDACTED_KEYS, JUDGED_KEY) if k in row}
        kept["redacted"] = True
        if labelled:
            kept.update(prediction=row["prediction"], gold=row["gold"])
        else:
            kept["stats"] = next(stats)
            kept.update({"unavailable": unavailable} if unavailable else {})
        out.append(kept)
    return out


def redact_file(path: Path, task: Task, parser: str, bertscore_model: str) -> None:
    """Redact a samples file in place (a run rerun or resumed with --redact-samples)."""
    trim_partial_line(path)
    rows = read_samples(path)
    if all(is_redacted(r) for r in rows):
        return
    text = "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in redact_rows(rows, task, parser, bertscore_model)
    )
    write_text_atomic(path, text, mode=path.stat().st_mode & 0o777)


def _value(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def write_samples(path: Path, rows: Iterable[dict[str, Any]], private: bool) -> None:
    """Replace a samples file whole (atomically): owner-only when it holds credentialed text."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    mode = 0o600 if private else (path.stat().st_mode & 0o777 if path.is_file() else 0o644)
    write_text_atomic(path, text, mode=mode)


def judge_cache_path(run_dir: Path, task: str, judge_key: str) -> Path:
    """judges/<task>.<judge key>.jsonl: one judge's replies on one task, keyed by prompt hash."""
    return run_dir / "judges" / f"{task}.{judge_key}.jsonl"


def read_judge_cache(path: Path, writer: bool) -> dict[str, dict[str, Any]]:
    """prompt key -> the cached call. The writer first drops a line a killed run left cut short."""
    if writer:
        trim_partial_line(path)
    return {row["key"]: row for row in read_samples(path, record.JudgeCacheRow)}


def discard(path: Path) -> None:
    """Remove a file the run no longer keeps (an extraction cache under --redact-samples), and its
    folder once empty: nothing but the contract's files stays behind."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty, or already gone
        path.parent.rmdir()


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
