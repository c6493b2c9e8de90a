"""Resume never mixes two versions of a task's documents: a changed few-shot split or a hook that changes
the documents blocks it; a hook reformatted without changing them blocks nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe.types import MibeError
from tests.support.notes import LABELS, ROWS, run, workspace

FEWSHOT = LABELS.replace("dataset: {source: notes.jsonl}", "dataset: {source: ./data, fewshot_split: train}")


def fewshot_workspace(tmp_path: Path, train_label: str) -> Path:
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    # training notes of their own: a train split that repeats the test notes is not used for shots
    train = [{"id": f"t{i}", "text": f"training case {i}", "label": train_label} for i in range(5)]
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    return workspace(tmp_path, FEWSHOT)


def test_a_changed_fewshot_split_blocks_the_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(fewshot_workspace(tmp_path, "Surgery"), out, num_fewshot=1)
    with pytest.raises(MibeError, match=r"different protocols .*fewshot_pool"):
        run(fewshot_workspace(tmp_path, "Cardiology"), out, num_fewshot=1)


HOOK = """from mibe.types import Doc
{comment}
def to_doc(row):
    return Doc(id=row["id"], fields=row, gold={gold})
"""


def test_a_hook_that_changes_documents_blocks_the_resume_and_one_that_does_not_blocks_nothing(
    tmp_path: Path,
) -> None:
    task_file, out = workspace(tmp_path), tmp_path / "run"
    (tmp_path / "notes.py").write_text(HOOK.format(comment="", gold='row["label"]'))
    run(task_file, out)
    (tmp_path / "notes.py").write_text(
        HOOK.format(comment="# reformatted, same documents", gold='row["label"]')
    )
    run(task_file, out)  # resumes: nothing the model sees or is scored against changed
    (tmp_path / "notes.py").write_text(HOOK.format(comment="", gold='"Surgery"'))
    with pytest.raises(MibeError, match=r"different protocols .*documents"):
        run(task_file, out)
