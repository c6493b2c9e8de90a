"""A summary task with a judge rubric, written into a folder (its task file and its data): what
`mibe judge`'s tests and the one-writer test run and judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# Two criteria, so a jury's reply and its means stay short.
RUBRIC = {
    "scale": [1, 5],
    "criteria": [
        {"name": "faithfulness", "description": "5 = supported by the source"},
        {"name": "concision", "description": "5 = brief"},
    ],
}


def task_file(
    folder: Path,
    name: str,
    rows: list[dict],
    judge: Any = RUBRIC,
    answer: str = "{type: text}",
    credentialed: bool = False,
) -> Path:
    """`name`.yaml (judged by `judge`, none when None) beside `name`.jsonl holding `rows` (id, text,
    answer), each marked invented."""
    body = {
        "name": name,
        "dataset": {"source": f"./{name}.jsonl"},
        "credentialed": credentialed,
        "template": "Summarize: {{ text }}\nSummary:",
        "target": "answer",
        "answer": yaml.safe_load(answer),
        "generation": {"max_new_tokens": 8, "stop": []},
        "metrics": ["rouge_l"] if "text" in answer else ["accuracy"],
    }
    if judge is not None:
        body["judge"] = judge
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    lines = "".join(json.dumps({**r, "invented": True}) + "\n" for r in rows)
    (folder / f"{name}.jsonl").write_text(lines, encoding="utf-8")
    return path
