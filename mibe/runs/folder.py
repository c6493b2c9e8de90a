"""The run folder: run.json, results.json (atomic) and samples/<task>.jsonl (appended, flushed)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mibe.types import MibeError

SCHEMA_VERSION = 1
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
    """One writer per run folder: a second `mibe run` on it is refused, never interleaved."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    handle = (run_dir / ".lock").open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise MibeError(
                f"{run_dir}: another mibe process (pid {owner}) is writing this run folder; "
                "wait for it to finish or use another --output-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock, also when the process is killed


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: never a half-written file."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_text_atomic(path, text)


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
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise MibeError(f"{path}: not valid JSON; delete it or pass --overwrite") from None


def samples_path(run_dir: Path, task: str) -> Path:
    return run_dir / "samples" / f"{task}.jsonl"


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Completed samples, read only: text after the last newline (a line cut short by a crash) is
    left out here and trimmed off only by the writer when it resumes (`done_ids`)."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    rows = []
    for number, line in enumerate(data[: data.rfind(b"\n") + 1].decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise MibeError(
                    f"{path}:{number}: corrupt sample line; delete it to redo that document"
                ) from None
    return rows


def trim_partial_line(path: Path) -> None:
    """Resume: drop a line the process died writing, so the next append starts on a fresh line."""
    if not path.is_file():
        return
    size = path.stat().st_size
    with path.open("r+b") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < size:
            handle.truncate(end)


def done_ids(path: Path) -> set[str]:
    """The documents a task's samples file already holds (the writer's side of resume)."""
    trim_partial_line(path)
    return {row["id"] for row in read_samples(path)}


def append_samples(path: Path, rows: Iterable[dict[str, Any]], private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if private and not path.exists():
        # Samples of credentialed tasks hold DUA-covered text: owner-only from the first byte.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with disk_errors(path), path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def shard_path(run_dir: Path, task: str, rank: int) -> Path:
    return run_dir / "samples" / f"{task}.rank{rank}.part"


def merge_shards(run_dir: Path, task: str, private: bool) -> int:
    """Fold every shard of `task` into its samples file, each id once; returns rows added."""
    target = samples_path(run_dir, task)
    shards = sorted(target.parent.glob(f"{task}.rank*.part"))
    if not shards:
        return 0
    seen = {row["id"] for row in read_samples(target)}
    fresh = []
    for shard in shards:
        for row in read_samples(shard):
            if row["id"] not in seen:
                seen.add(row["id"])
                fresh.append(row)
    if fresh:
        append_samples(target, fresh, private=private)
    for shard in shards:  # only after the rows are safely in the samples file
        shard.unlink()
    return len(fresh)


REDACTED_KEYS = ("id", "score")


def redact_samples(path: Path) -> None:
    """Keep only ids and per-document scores (`--redact-samples`), once a task is scored."""
    rows = read_samples(path)
    if rows and set(rows[0]) == set(REDACTED_KEYS):
        return
    text = "".join(json.dumps({k: r.get(k) for k in REDACTED_KEYS}) + "\n" for r in rows)
    write_text_atomic(path, text, mode=path.stat().st_mode & 0o777)


def discard(path: Path) -> None:
    """Remove a file the run no longer keeps (an extraction cache under --redact-samples)."""
    path.unlink(missing_ok=True)


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
