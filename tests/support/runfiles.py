"""Reading a run folder's files in tests (results.json, a task's samples) and the shipped example
general-domain task."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.paths import REPO

EXAMPLE = REPO / "tasks" / "examples" / "everyday_yesno.yaml"
EXAMPLE_DATA = REPO / "tasks" / "examples" / "everyday_yesno.jsonl"


def samples(run: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())
