"""Reading a run folder's files in tests (results.json, a task's samples) and the shipped example
general-domain task."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.paths import REPO

EXAMPLE = REPO / "tasks" / "examples" / "everyday_yesno.yaml"
EXAMPLE_DATA = REPO / "tasks" / "examples" / "everyday_yesno.jsonl"


def samples(run: Path, task: str) -> list[dict]:
    """A task's samples rows, in file order (split on "\\n" only: an output may hold U+2028)."""
    text = (run / "samples" / f"{task}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.removesuffix("\n").split("\n")] if text else []


def samples_by_id(run: Path, task: str) -> dict[str, dict]:
    return {row["id"]: row for row in samples(run, task)}


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))
