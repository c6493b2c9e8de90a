"""What a name means: the one rule for task names, task-file paths, dataset sources and model names.

- A bare name (`pubmedqa`) is a built-in task, never a file of that name in the current folder (whose
  `.py` hook would otherwise run). A task file is named by a path: it starts with `./`, `../`, `/` or
  `~`, holds a `/`, or ends in `.yaml`/`.yml`.
- A task file's `dataset.source` is local when it names a data file (a .jsonl/.json/.csv/.tsv/.parquet
  suffix, compressed or not) or starts with `./`, `../`, `/` or `~`; any other `owner/name` is a hub
  id, only ever loaded from the hub (the `datasets` library would read a local folder of that name
  first: mibe asks it for the hub copy only). `--data`/`--data-dir` are always local.
- `--model` is a local folder when one of that name exists, else a hub id; the ambiguous case is said.
- `all`, `public` and `general` name groups of tasks: no task may take them.
docs/task-files.md ("Names") is this module's contract.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mibe import resources
from mibe.types import MibeError

RESERVED = ("all", "public", "general")  # groups of tasks (--tasks all|public|general)
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
COMPRESSED = ("", ".gz", ".bz2", ".xz", ".zst", ".zip")
_PATH_STARTS = ("./", "../", "/", "~")
# The hub's repo ids: `name` or `owner/name`, letters, digits, `-`, `_`, `.` (no `..`, no `--`).
HUB_ID = re.compile(r"(?!.*\.\.)(?!.*--)[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")


@dataclass(frozen=True)
class TaskName:
    """What one `--tasks` entry names: a built-in task or a task file (both as a path to load)."""

    kind: str  # "builtin" or "file"
    path: Path


def builtin_tasks() -> dict[str, Path]:
    """The shipped MIBE task files by name (the group `all`)."""
    return {p.stem: p for p in sorted(resources.tasks_dir().glob("*.yaml"))}


def general_tasks() -> dict[str, Path]:
    """The shipped general-domain task files by name (tasks/general/: the group `general`, for the
    forgetting study; never part of `all`)."""
    return {p.stem: p for p in sorted((resources.tasks_dir() / "general").glob("*.yaml"))}


def is_task_path(spec: str) -> bool:
    return spec.startswith(_PATH_STARTS) or "/" in spec or spec.lower().endswith((".yaml", ".yml"))


def task(spec: str, where: str) -> TaskName:
    """One task named on a command line; `where` names the flag or command in the message."""
    if is_task_path(spec):
        return TaskName("file", Path(spec).expanduser())
    builtin = builtin_tasks()
    if spec in builtin:
        return TaskName("builtin", builtin[spec])
    general = general_tasks()
    if spec in general:
        return TaskName("builtin", general[spec])
    if spec in RESERVED:  # a group the caller did not expand here
        raise MibeError(f"{where}: '{spec}' is a group name, not a task; name tasks here (`mibe tasks list`)")
    match = difflib.get_close_matches(spec.lower(), sorted(builtin), n=1)
    near = f"did you mean '{match[0]}'? " if match else ""
    local = f"; a file named {spec} is here: name it as ./{spec}" if Path(spec).is_file() else ""
    raise MibeError(
        f"{where}: '{spec[:80]}' is not a built-in task; {near}built-in tasks: {', '.join(builtin)}; "
        f"a task file is named by a path (./{spec[:80]}.yaml){local}"
    )


def check_task_name(name: str, where: str) -> None:
    """A task's own name may be none of the group names (its runs would be unreachable by name)."""
    if name in RESERVED:
        groups = ", ".join(RESERVED)
        raise MibeError(f"{where}: '{name}' is reserved ({groups} name groups of tasks); pick another")


def is_data_file(value: str) -> bool:
    lower = value.lower()
    return any(lower.endswith(s + c) for s in DATA_SUFFIXES for c in COMPRESSED)


def is_local_source(value: str) -> bool:
    """A `dataset.source` that is read from disk (relative to its task file)."""
    return value in (".", "..") or value.startswith(_PATH_STARTS) or is_data_file(value)


def check_source(value: str, where: str) -> None:
    """A `dataset.source` that is neither local by the rule nor a hub id is one line with the fix."""
    if not is_local_source(value) and not HUB_ID.fullmatch(value):
        raise MibeError(
            f"{where}: '{value[:80]}' is neither a hub id (owner/name) nor a local path; "
            f"write ./{value[:80]} for a file or folder beside the task file"
        )


def hub_shadow(source: str, task_dir: Path | None = None, fix: str = "") -> str | None:
    """A note when a local folder or file bears a hub id's name (beside the task file or in the current
    folder): mibe never reads it under the hub id, and says how to name it (`fix`, else as a task file's
    `dataset.source`)."""
    places = [Path(source)] + ([task_dir / source] if task_dir is not None else [])
    here = next((p for p in places if p.exists()), None)
    if here is None:
        return None
    return (
        f"{here} is named like the hub id {source} but is not read: a hub id is only loaded from the hub; "
        f"to read the local copy, {fix or f'write ./{source} in dataset.source (or pass --data TASK=PATH)'}"
    )


def hub_load_path(source: str) -> str:
    """What to hand `datasets.load_dataset` for a hub id: the `datasets` library reads a local folder of
    that name first, so when one exists it gets the remote-only form (an older `datasets` then fails
    instead of reading the folder)."""
    return f"hf://datasets/{source}" if os.path.lexists(source) else source


def model_note(model: str) -> str | None:
    """`--model owner/name` resolves a local folder first; when that folder exists, say which was used."""
    if model.startswith(_PATH_STARTS) or not HUB_ID.fullmatch(model):
        return None
    path = Path(model)
    if not path.is_dir():
        return None
    return f"mibe: --model {model}: the local folder {path.resolve()} (not the hub model of that name)"
