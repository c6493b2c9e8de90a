"""A run folder is data: rescore, audit and compare never import a hook it names; a task file
given with --tasks is the user's and is trusted. Scripted backend, real files, no model."""

from __future__ import annotations

import json
from pathlib import Path

from mibe import tasks
from mibe.runfolder import audit, folder, rescore
from tests.support.notes import main, run, workspace


def hostile_run(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A real run whose task file later gains a hook beside it that leaves a marker when imported, and
    whose samples lost their positions (an older run folder, or one someone edited): mibe would read
    the data back through the hook to restore the document order."""
    task_file = workspace(tmp_path / "w")
    out = tmp_path / "run"
    run(task_file, out)
    path = folder.samples_path(out, "notes")
    rows = [{k: v for k, v in r.items() if k != "index"} for r in folder.read_samples(path)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    marker = tmp_path / "hook-ran"
    (tmp_path / "w" / "notes.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "def to_doc(row):\n    raise ValueError('never')\n"
    )
    return task_file, out, marker


def test_rescore_and_audit_never_import_a_hook_a_run_folder_names(tmp_path: Path) -> None:
    _, out, marker = hostile_run(tmp_path)
    rescore.rescore(out, "paper", [], tmp_path / "re")
    audit.audit(out, [])
    from mibe.boards import board, compare

    board.build([str(out)], False, False, n_boot=10, seed=1)
    compare.compare(out, tmp_path / "re", n_boot=10)
    assert not marker.exists()


def test_a_task_file_named_with_tasks_is_trusted(tmp_path: Path, capsys) -> None:
    task_file, out, marker = hostile_run(tmp_path)
    (tmp_path / "w" / "notes.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from mibe.types import Doc\n"
        "def to_doc(row):\n    return Doc(id=row['id'], fields=row, gold=row['label'])\n"
    )
    code, err = main("rescore", str(out), "--tasks", str(task_file), "--output-dir", str(tmp_path / "re"),
                     capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert marker.read_text() == "ran"
    assert tasks.load_task(task_file, trusted=False).hook is None
