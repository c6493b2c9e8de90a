"""Start, resume or refuse a run folder: the one place that decides whether earlier work is reused.

A run folder holds run.json (the resolved config, the model and each task's protocol). Started again
with the same folder, a run resumes when all three match, and is refused with one line naming the
first difference otherwise (unless --overwrite). Within a task, documents already in its samples file
are not scored again (`folder.done_ids`); a task already in results.json is final.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mibe.runs.folder import check_run_folder, read_json, samples_path, write_json_atomic
from mibe.types import MibeError


def prepare(run_dir: Path, run_json: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Start, resume or refuse; returns the previous results.json when resuming."""
    check_run_folder(run_dir)  # a folder of someone else's files is never resumed, reused or deleted
    previous = read_json(run_dir / "run.json")
    if previous is not None and not overwrite:
        for key in ("config", "model", "protocols"):
            if previous.get(key) != run_json[key]:
                changed = first_difference(previous.get(key), run_json[key])
                raise MibeError(
                    f"{run_dir}: holds a run with a different {key} ({changed}); "
                    "use another --output-dir, or --overwrite to replace it"
                )
        return read_json(run_dir / "results.json")
    if overwrite and previous is not None:
        # Only what mibe wrote: the samples of the tasks its run.json names (and their shards).
        for name in previous.get("protocols") or {}:
            if not re.fullmatch(r"[a-z0-9_]+", str(name)):  # a task name, never a path
                continue
            path = samples_path(run_dir, str(name))
            for leftover in [path, *path.parent.glob(f"{path.stem}.rank*.part")]:
                leftover.unlink(missing_ok=True)
        for leftover in [run_dir / "run.json", run_dir / "results.json"]:
            leftover.unlink(missing_ok=True)
    write_json_atomic(run_dir / "run.json", run_json)
    return None


def first_difference(old: Any, new: Any, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
    return f"{where or 'value'}: {old!r} -> {new!r}"
