"""The run folder: run.json, results.json (atomic) and samples/<task>.jsonl (appended, flushed)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mibe.types import MibeError

SCHEMA_VERSION = 1


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False, sort_keys=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
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
    """Completed samples; a line cut short by a crash is dropped (and trimmed off the file)."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # the process died mid-line: keep whole lines only
        with path.open("r+b") as handle:
            handle.truncate(end)
        data = data[:end]
    rows = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise MibeError(
                    f"{path}:{number}: corrupt sample line; delete it to redo that document"
                ) from None
    return rows


def append_samples(path: Path, rows: Iterable[dict[str, Any]], private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if private and not path.exists():
        # Samples of credentialed tasks hold DUA-covered text: owner-only from the first byte.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
