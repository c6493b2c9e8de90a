"""The one run-folder writer: every byte `mibe run`, `rescore`, `judge` and `import` (and any later
command that writes a run folder) puts into a run folder goes through this module.

Its rules (docs/run-folder.md, *Writes*):
- one output-folder check (`check_output`), run before anything is loaded or written;
- one writer at a time (`flock` on `DIR/.lock`), released however the process ends;
- plain files only: a link among the folder's own entries is refused, its ancestors may be links
  (clusters mount home and scratch folders through links);
- owner-only files (0600) for a run holding a credentialed task, from the first byte;
- atomic whole-file writes (temporary file, fsync, rename) and flushed appends;
- `--overwrite` means one thing: delete what mibe wrote (run.json, results.json, the samples and rank files
  of the tasks its run.json names) and every derived cache (`judges/`, `extractions/`), nothing else;
- caches are read only from the folder being written, never from a folder a command reads from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from mibe.runfolder import record
from mibe.runfolder.folder import is_mibe_run_json, read_json, read_samples, refuse_link, samples_path
from mibe.types import TASK_NAME, MibeError

_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
CACHES = ("judges", "extractions")  # derived caches: rebuilt from the samples, never trusted from elsewhere
MINE = ("run.json", "results.json", "samples", *CACHES, ".lock")  # what mibe writes at a folder's top
Difference = Callable[[dict[str, Any], dict[str, Any]], "str | None"]


# ------------------------------------------------------------------------------------ low-level writes


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """A full disk becomes one line; what was flushed before stays, so the same command resumes."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL:
            raise MibeError(
                f"{path}: cannot write ({exc.strerror}); free space, then run the same command to resume"
            ) from None
        raise


def _umask_mode() -> int:
    # mkstemp makes 0600 files; an ordinary file gets 0666 less the umask, as open() would give it.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: never a half-written file. Also
    what a report or page (`-o FILE`, never inside a run folder) is written with."""
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


def write_json_atomic(path: Path, data: Any, private: bool = False) -> None:
    """`private` (a run holding a credentialed task): owner-only; otherwise the file follows the umask."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_text_atomic(path, text, mode=0o600 if private else _umask_mode())


def _lines(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def append_rows(path: Path, rows: Iterable[dict[str, Any]], private: bool = False) -> None:
    """Append JSON lines (samples, rank files, caches) and fsync: a kill loses at most this batch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link(path.parent)
    refuse_link(path)
    if private and not path.exists():
        # Credentialed rows hold DUA-covered text: owner-only from the first byte.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    text = _lines(rows)
    with disk_errors(path), path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def replace_rows(path: Path, rows: Iterable[dict[str, Any]], private: bool) -> None:
    """Replace a JSON-lines file whole (atomically): owner-only when it holds credentialed text."""
    refuse_link(path.parent)
    refuse_link(path)
    mode = 0o600 if private else (path.stat().st_mode & 0o777 if path.is_file() else _umask_mode())
    write_text_atomic(path, _lines(rows), mode=mode)


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


def discard(path: Path) -> None:
    """Remove a file the run no longer keeps (a cache under --redact-samples, a merged shard), and its
    folder once empty: nothing but the contract's files stays behind."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty, or already gone
        path.parent.rmdir()


# ------------------------------------------------------------------------------------------- the check


def check_writable(path: Path, flag: str = "--output-dir") -> None:
    if path.exists() and not path.is_dir():
        raise MibeError(f"{flag} {path}: is a file, not a folder; choose another {flag}")
    near = path
    while not near.exists():
        near = near.parent
    if not near.is_dir():
        raise MibeError(f"{flag} {path}: {near} is a file, not a folder; choose another {flag}")
    try:  # a real write: permission bits say nothing to root or on a read-only mount
        tempfile.TemporaryFile(dir=near).close()
    except OSError as exc:
        raise MibeError(
            f"{flag} {path}: cannot write in {near} ({exc.strerror}); choose a writable {flag}"
        ) from None


def check_output(path: Path, source: Path | None = None, flag: str = "--output-dir") -> None:
    """The one output-folder check, run before any model loads: a folder mibe can write, not the run
    a command reads nor inside it, no links among its entries, and either empty (or new) or holding
    mibe's own run.json: a results.json, samples or anything else mibe did not write is never
    overwritten, appended to, reused or deleted."""
    check_writable(path, flag)
    if source is not None:
        here, origin = path.resolve(), source.resolve()
        if here == origin:
            raise MibeError(f"{flag} {path}: is the run itself; this command writes a new folder")
        if origin in here.parents:
            raise MibeError(f"{flag} {path}: inside the run it reads; write the new folder elsewhere")
    if not path.is_dir():
        return
    for entry in path.rglob("*"):  # a link would send mibe's writes to a file outside the folder
        refuse_link(entry)
    for name in ("run.json", "results.json"):
        if (path / name).exists() and not (path / name).is_file():
            raise MibeError(f"{path / name}: is a folder, not a file; the run folder is damaged")
    held = sorted(p.name for p in path.iterdir() if p.name != ".lock")
    if not held or is_mibe_run_json(path / "run.json"):
        return
    shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
    raise MibeError(
        f"{flag} {path}: exists and is not empty: holds files mibe did not write ({shown}) and no "
        "run.json of mibe's; choose a new or empty folder (--overwrite deletes only what mibe wrote)"
    )


# -------------------------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """One writer per run folder: a second process on it is refused, never interleaved.

    The `.lock` file is removed when the writer ends, so a finished folder holds only the run's files."""
    check_writable(run_dir, "--output-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    refuse_link(path)
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


# ------------------------------------------------------------------------------------------ the writer


@dataclasses.dataclass
class Writer:
    """A run folder open for writing (locked by this process): where every command's writes go."""

    path: Path
    private: bool  # the run holds a credentialed task: every file owner-only

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        write_json_atomic(self.path / name, data, private=self.private)

    def samples(self, task: str) -> Path:
        return samples_path(self.path, task)

    def append_samples(self, task: str, rows: Iterable[dict[str, Any]], private: bool | None = None) -> None:
        append_rows(self.samples(task), rows, self.private if private is None else private)

    def replace_samples(self, task: str, rows: Iterable[dict[str, Any]], private: bool | None = None) -> None:
        replace_rows(self.samples(task), rows, self.private if private is None else private)

    def cache(self, kind: str, name: str) -> Path:
        """`judges/<name>.jsonl` or `extractions/<name>.jsonl` in this folder (never another's)."""
        if kind not in CACHES or not re.fullmatch(r"[a-z0-9_.]{1,200}", name) or ".." in name:
            raise MibeError(f"{self.path}: {kind}/{name}: not a cache of a run folder")
        return self.path / kind / f"{name}.jsonl"

    def strip_judge_replies(self) -> None:
        """--redact-samples: judge caches keep each call's scores, never the reply (it quotes text)."""
        found = sorted((self.path / "judges").glob("*.jsonl")) if (self.path / "judges").is_dir() else []
        for path in found:
            rows = read_cache(path, self)
            if any("reply" in r for r in rows):
                kept = [{k: v for k, v in r.items() if k != "reply"} for r in rows]
                replace_rows(path, kept, private=_is_private(path))

    def clear(self, previous: dict[str, Any] | None) -> None:
        """`--overwrite`: what mibe wrote (the files of the tasks `previous` names) and every cache."""
        for name in (previous or {}).get("protocols") or {}:
            if not re.fullmatch(TASK_NAME, str(name)):  # a task name, never a path
                continue
            path = self.samples(str(name))
            for leftover in [path, *path.parent.glob(f"{path.stem}.rank*.part")]:
                leftover.unlink(missing_ok=True)
        for kind in CACHES:
            for leftover in sorted((self.path / kind).glob("*.jsonl")) if (self.path / kind).is_dir() else ():
                discard(leftover)
        for leftover in (self.path / "run.json", self.path / "results.json"):
            leftover.unlink(missing_ok=True)
        samples = self.path / "samples"
        if samples.is_dir() and not any(samples.iterdir()):
            samples.rmdir()


def read_cache(
    path: Path, writer: Writer, model: type[record.Part] = record.JudgeCacheRow
) -> list[dict[str, Any]]:
    """A cache's rows, read for the folder being written only (a line a kill cut short is dropped)."""
    if writer.path.resolve() not in path.resolve().parents:
        raise MibeError(f"{path}: a cache is read only from the run folder being written")
    trim_partial_line(path)
    return read_samples(path, model)


def identity_difference(previous: dict[str, Any], run_json: dict[str, Any]) -> str | None:
    """The first difference between a folder's run.json and the run asked for, over the keys the
    new run.json holds (schema_version and mibe_version apart); None when the run is the same."""
    for key in sorted(set(run_json) - {"schema_version", "mibe_version"}):
        if previous.get(key) != run_json[key]:
            return first_difference(previous.get(key), run_json[key], key)
    return None


@contextlib.contextmanager
def open_folder(
    path: Path,
    run_json: dict[str, Any],
    overwrite: bool,
    private: bool,
    source: Path | None = None,
    difference: Difference = identity_difference,
) -> Iterator[tuple[Writer, dict[str, Any] | None]]:
    """Check, lock, then start, resume or refuse: yields the writer and the folder's run.json when it
    holds the same run (its rows may be reused), None when the folder starts anew. A different run is
    refused with its first difference named, unless `overwrite`, which clears it first. run.json is
    written before the body runs."""
    check_output(path, source)
    with locked(path):
        check_output(path, source)  # again under the lock: another writer may have finished meanwhile
        writer = Writer(path, private)
        previous = read_json(path / "run.json")
        if previous is not None and overwrite:
            writer.clear(previous)
            previous = None
        changed = difference(previous, run_json) if previous is not None else None
        if changed:
            raise MibeError(
                f"--output-dir {path}: exists and is not empty: holds another run ({changed}); use "
                "another --output-dir, or --overwrite to replace it (only what mibe wrote)"
            )
        if previous is None:  # the same run's run.json stays as it is
            writer.write_json("run.json", run_json)
        yield writer, previous


def first_difference(old: Any, new: Any, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
    return f"{where or 'value'}: {old!r} -> {new!r}"


# ---------------------------------------------------------------------------- samples of `mibe run`


def done_ids(path: Path, draw: int | None = None, permutation: int | None = None) -> set[str]:
    """The documents a task's samples file already holds for one few-shot draw and one ordering of the
    options (None: a run without them, whose rows have no `draw` / `permutation` key): the writer's
    side of resume."""
    trim_partial_line(path)
    rows = read_samples(path)
    return {r["id"] for r in rows if r.get("draw") == draw and r.get("permutation") == permutation}


def fold_ranks(run_dir: Path, task: str, private: bool) -> int:
    """Fold every data-parallel rank file of `task` into its samples file, each (draw, permutation,
    id) once; returns the rows added. ("Shard" means one thing: a `--shard I/N` run, docs/scale-out.md.)"""
    target = samples_path(run_dir, task)
    parts = sorted(target.parent.glob(f"{task}.rank*.part"))
    if not parts:
        return 0

    def key(row: dict[str, Any]) -> tuple:
        return row.get("draw"), row.get("permutation"), row["id"]

    seen = {key(row) for row in read_samples(target)}
    fresh = []
    for part in parts:
        for row in read_samples(part):
            if key(row) not in seen:
                seen.add(key(row))
                fresh.append(row)
    if fresh:
        append_rows(target, fresh, private=private)
    for part in parts:  # only after the rows are safely in the samples file
        part.unlink()
    return len(fresh)


def redact_file(path: Path, task: Any, parser: str, bertscore_model: str) -> None:
    """Redact a samples file in place (a run rerun or resumed with --redact-samples)."""
    from mibe.runfolder.folder import is_redacted, redact_rows

    trim_partial_line(path)
    rows = read_samples(path)
    if all(is_redacted(r) for r in rows):
        return
    replace_rows(path, redact_rows(rows, task, parser, bertscore_model), private=_is_private(path))


def _is_private(path: Path) -> bool:
    return path.stat().st_mode & 0o077 == 0
