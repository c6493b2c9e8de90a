"""One rule for names (mibe/names.py, docs/task-files.md "Names"): a bare name is a built-in task, a task
file is a path, a hub id only ever loads from the hub, and local rows are never recorded as hub data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import huggingface_hub
import pytest

from mibe import cli, data, names, taskfiles, tasks
from mibe.boards.board import build
from mibe.boards.published import published_rows
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support.paths import REPO
from tests.support.scripted import Scripted

HOOK = """from pathlib import Path
Path(__file__).with_name("HOOK_RAN").write_text("yes")
from mibe.types import Doc
def to_doc(row):
    return Doc(id=row["id"], fields=row, gold=row["label"])
"""
SHADOW_TASK = """name: pubmedqa
dataset: {source: rows.jsonl}
template: "{{ q }}"
target: label
answer: {type: choice, choices: ["yes", "no"]}
metrics: [accuracy]
"""


def test_a_bare_builtin_name_never_reads_a_file_of_that_name_nor_runs_its_hook(tmp_path: Path) -> None:
    # A file `pubmedqa` (no suffix) and its hook `pubmedqa.py` in the current folder: a hostile download.
    (tmp_path / "pubmedqa").write_text(SHADOW_TASK)
    (tmp_path / "pubmedqa.py").write_text(HOOK)
    (tmp_path / "rows.jsonl").write_text(json.dumps({"id": "1", "q": "q?", "label": "yes"}) + "\n")
    for command in (["tasks", "show", "pubmedqa"], ["tasks", "validate", "pubmedqa"]):
        done = subprocess.run(
            [sys.executable, "-m", "mibe", *command], cwd=tmp_path, capture_output=True, text=True,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "HOOK_RAN").exists(), command
        assert str(tasks.builtin_paths()["pubmedqa"]) in done.stdout or "task pubmedqa" in done.stdout
        assert str(tmp_path / "pubmedqa") not in done.stdout
    assert taskfiles.find("pubmedqa").path == tasks.builtin_paths()["pubmedqa"]


def test_a_task_file_is_named_by_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mytask").write_text(SHADOW_TASK.replace("pubmedqa", "mytask"))
    with pytest.raises(
        MibeError, match=r"'mytask' is not a built-in task; .*built-in tasks: .*pubmedqa.*\./mytask"
    ):
        tasks.resolve(["mytask"])
    with pytest.raises(MibeError, match=r"mibe tasks show mytask: .*built-in tasks: .*medqa"):
        taskfiles.find("mytask")
    assert tasks.resolve(["./mytask"])[0][0].name == "mytask"  # the same file, named by a path
    assert names.task("x.YAML", "--tasks").kind == "file" and names.task("a/b", "--tasks").kind == "file"


@pytest.mark.parametrize("reserved", names.RESERVED)
def test_group_names_are_reserved(reserved: str, tmp_path: Path) -> None:
    with pytest.raises(MibeError, match="reserved"):
        taskfiles.new(reserved, "choice", tmp_path)
    (tmp_path / "t.yaml").write_text(SHADOW_TASK.replace("pubmedqa", reserved))
    with pytest.raises(MibeError, match=r"field 'name': .*reserved"):
        tasks.load_task(tmp_path / "t.yaml")
    assert not list(tmp_path.glob(f"{reserved}.*"))
    if reserved != "all":  # `all` is the group --tasks expands
        with pytest.raises(MibeError, match=f"'{reserved}' is a group name, not a task"):
            taskfiles.find(reserved)


@pytest.mark.parametrize(
    ("source", "local"),
    [
        ("owner/name", False),
        ("pubmedqa", False),
        ("./owner/name", True),
        ("../data", True),
        ("/abs/x", True),
        ("~/x", True),
        ("data/notes.jsonl", True),
        ("notes.CSV", True),
        ("notes.jsonl.gz", True),
        ("x.parquet.zst", True),
        (".", True),
    ],
)
def test_which_sources_are_local(source: str, local: bool) -> None:
    assert names.is_local_source(source) is local
    names.check_source(source, "here")  # every row above is one or the other


@pytest.mark.parametrize("source", ["data/sub/notes", ".hidden/x", "a b/c", "owner/na..me"])
def test_a_source_that_is_neither_is_one_line_with_the_fix(source: str) -> None:
    with pytest.raises(MibeError, match=r"neither a hub id .* write \./"):
        names.check_source(source, "here")


def test_a_hub_id_beside_a_folder_of_its_name_stays_a_hub_id(tmp_path: Path) -> None:
    (tmp_path / "owner" / "name").mkdir(parents=True)
    (tmp_path / "t.yaml").write_text(SHADOW_TASK.replace("rows.jsonl", "owner/name").replace("pubmedqa", "t"))
    task = tasks.load_task(tmp_path / "t.yaml")
    assert task.source == "owner/name"  # was the folder's absolute path
    with pytest.raises(
        data.NoData,
        match=r"never fetches; .*named like the hub id owner/name but is not read: .*write \./owner/name",
    ):
        taskfiles.first_document(task, None, {})  # `tasks show` says how to name the folder
    (tmp_path / "t.yaml").write_text(
        SHADOW_TASK.replace("rows.jsonl", "./owner/name").replace("pubmedqa", "t")
    )
    assert tasks.load_task(tmp_path / "t.yaml").source == str(tmp_path / "owner" / "name")


PUBLISHED_ROWS = [
    {"id": f"p{i}", "query": f"Question {i}? Answer yes, no or maybe.", "answer": a,
     "choices": ["yes", "no", "maybe"], "gold": ["yes", "no", "maybe"].index(a)}
    for i, a in enumerate(["yes", "no", "maybe", "yes"])
]  # fmt: skip


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's caches only (read at import time by both libraries): no network is tried."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def hub_named_folder(root: Path) -> Path:
    folder = root / "clinicalnlplab" / "pubmedqa_test"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PUBLISHED_ROWS))
    return folder


def paper_run(out: Path, **options: object) -> RunConfig:
    return RunConfig(
        model="scripted", tasks=("pubmedqa",), output_dir=str(out), bootstrap=20, protocol="paper", **options
    )


def test_local_rows_under_a_hub_ids_name_are_never_hub_data_nor_the_papers_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline(monkeypatch)
    monkeypatch.chdir(tmp_path)
    hub_named_folder(tmp_path)
    reply = Scripted(reply=lambda r: "yes")
    # The built-in task's source is the hub id: the folder of that name here is not read.
    with pytest.raises(MibeError, match=r"from the HF hub: .*write \./clinicalnlplab/pubmedqa_test"):
        api.run(paper_run(tmp_path / "hub"), backend=reply)
    assert not (tmp_path / "hub" / "results.json").exists()
    # Named as a path, as the message says, the rows are local: recorded with their own fingerprint.
    out = tmp_path / "local"
    api.run(
        paper_run(out, data={"pubmedqa": "./clinicalnlplab/pubmedqa_test"}),
        backend=reply,
    )
    protocol = json.loads((out / "results.json").read_text())["tasks"]["pubmedqa"]["protocol"]
    assert protocol["data"]["fingerprint"].startswith("sha256:")
    board = build([out], n_boot=20)
    published = {c.key for r in published_rows() for c in r.cells}
    mine = {c.key for s in board.sections for r in s.rows if not r.row.published for c in r.row.cells}
    assert mine and not mine & published  # never the paper's own column
    shown = [(r, c) for s in board.sections for r in s.rows if r.row.published for c in r.row.cells.values()]
    assert shown and all(r.row.reference and r.rank is None for r, _ in shown)  # references: unranked
    assert all("runs read a local copy (sha256:" in (c.note or "") for _, c in shown)  # not "hub ..."


def test_the_hub_loader_asks_for_the_hub_copy_when_a_folder_bears_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert names.hub_load_path("clinicalnlplab/pubmedqa_test") == "clinicalnlplab/pubmedqa_test"
    hub_named_folder(tmp_path)
    assert names.hub_load_path("clinicalnlplab/pubmedqa_test") == "hf://datasets/clinicalnlplab/pubmedqa_test"
    note = names.hub_shadow("clinicalnlplab/pubmedqa_test")
    assert note and "write ./clinicalnlplab/pubmedqa_test" in note


def test_a_model_folder_named_like_a_hub_id_is_used_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert names.model_note("owner/model") is None  # no such folder: a hub id, nothing to say
    (tmp_path / "owner" / "model").mkdir(parents=True)
    folder = tmp_path / "owner" / "model"
    said = f"mibe: --model owner/model: the local folder {folder} (not the hub model of that name)"
    assert names.model_note("owner/model") == said
    assert names.model_note("./owner/model") is None  # a path says itself which it is


def test_tasks_validate_takes_a_builtin_name(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["tasks", "validate", "medqa"]) == 0
    assert "task medqa" in capsys.readouterr().out
    assert cli.main(["tasks", "validate", "nosuchtask"]) == 2
    assert "built-in tasks:" in capsys.readouterr().err


def test_data_reads_a_hub_id_through_the_hub_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    monkeypatch.chdir(tmp_path)
    hub_named_folder(tmp_path)
    task = tasks.load_task(tasks.builtin_paths()["pubmedqa"])
    location = data.locate(task, None, {})
    assert location == data.Location("hub", "clinicalnlplab/pubmedqa_test")
    with pytest.raises(data.NoData, match="is not read"):
        data.load_docs(task, location)  # before: the folder's rows, recorded as hub:clinicalnlplab/...


def test_a_training_hub_source_never_reads_a_folder_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mibe.training import sources

    offline(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "corpus").mkdir(parents=True)
    (tmp_path / "owner" / "corpus" / "train.jsonl").write_text(json.dumps({"text": "local words"}) + "\n")
    spec = sources.check({"hub": "owner/corpus"}, tmp_path, "mix.yaml")
    with pytest.raises(MibeError, match=r"cannot load from the HF hub .*give it as path: \./owner/corpus"):
        sources.load_rows(spec, tmp_path / "cache")  # before: the folder's rows, as hub:owner/corpus@...
    rows, info = sources.load_rows(
        sources.check({"path": "./owner/corpus"}, tmp_path, "mix.yaml"), tmp_path / "c"
    )
    assert info["fingerprint"].startswith("sha256:") and rows[0]["text"] == "local words"


def test_run_says_a_local_folder_named_like_a_hub_id_is_the_model_used(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "tiny").symlink_to(tiny_llama, target_is_directory=True)
    argv = ["run", "--model", "owner/tiny", "--tasks", "pubmedqa", "--demo", "--limit", "1", "--dry-run"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert f"--model owner/tiny: the local folder {tiny_llama.resolve()} (not the hub model" in err
