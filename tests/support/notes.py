"""A local choice task over a handful of notes and a scripted backend: real task files, data files
and run folders for the hostile-input tests, with no model loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe import cli
from mibe.runfolder import folder
from mibe.runner import api
from mibe.types import RunConfig
from tests.support.scripted import Scripted

# The label task: a choice task over local notes.
LABELS = """name: notes
dataset: {source: notes.jsonl}
template: "Specialty of this note?\\nINPUT: {{ text }}\\nOUTPUT:"
target: label
answer: {type: choice, choices: [Surgery, Cardiology]}
generation: {max_new_tokens: 4}
metrics: [accuracy, macro_f1]
"""


SUMMARY = """name: summary
dataset: {source: notes.jsonl}
template: "Summarise: {{ text }}\\nSUMMARY:"
target: label
answer: {type: text}
generation: {max_new_tokens: 8}
metrics: [rouge_l]
"""


ROWS = [{"id": f"n{i}", "text": f"secret note {i} about the heart", "label": ["Surgery", "Cardiology"][i % 2]}
        for i in range(5)]  # fmt: skip


def scripted(fail_after: int | None = None) -> Scripted:
    """Answers every prompt alike: a real run folder, no model; `fail_after` batches, then a kill."""
    return Scripted(reply=lambda request: " Cardiology about the heart", fail_after=fail_after)


def workspace(
    tmp_path: Path, task: str = LABELS, rows: list | bytes | str | None = None, name: str = "notes"
) -> Path:
    """The task file `name`.yaml holding `task`, beside notes.jsonl: `rows` as JSON lines (ROWS when
    None), or the file's bytes or text as given (for data a test breaks on purpose)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / f"{name}.yaml").write_text(task, encoding="utf-8")
    data = tmp_path / "notes.jsonl"
    if isinstance(rows, bytes):
        data.write_bytes(rows)
    elif isinstance(rows, str):
        data.write_text(rows, encoding="utf-8")
    else:
        data.write_text("".join(json.dumps(r) + "\n" for r in (ROWS if rows is None else rows)))
    return tmp_path / f"{name}.yaml"


def run(task_file: Path, out: Path, backend: Scripted | None = None, **options) -> dict:
    config = RunConfig(
        model="scripted", tasks=(str(task_file),), output_dir=str(out), bootstrap=20, **options
    )
    return api.run(config, backend=backend or scripted())


def samples(out: Path, task: str = "notes") -> list[dict]:
    return folder.read_samples(folder.samples_path(out, task))


def main(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    capsys.readouterr()  # what came before (a progress bar) is not the command's
    code = cli.main(list(args))
    err = capsys.readouterr().err
    return code, err


def one_line(code: int, err: str, says: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], err
