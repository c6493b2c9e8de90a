"""Task files are validated on load: a bad one gives one line naming the file, the field and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mibe import data, datafiles, resources, tasks
from mibe.types import MibeError

GOOD = {
    "name": "my_task",
    "dataset": "{source: rows.jsonl, split: test}",
    "template": '"Q: {{ text }}\\nA:"',
    "answer": "{type: choice, choices: ['yes', 'no']}",
    "metrics": "[accuracy, macro_f1]",
}


def write_task(folder: Path, **fields: str | None) -> Path:
    merged = {**GOOD, **fields}
    body = "".join(f"{k}: {v}\n" for k, v in merged.items() if v is not None)
    path = folder / "my_task.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("fields", "field", "fix"),
    [
        ({"name": "My Task"}, "'name'", "lower-case"),
        ({"dataset": None}, "'dataset'", "source"),
        ({"answer": "{type: choise, choices: [a, b]}"}, "'answer.type'", "choice"),
        ({"answer": "{type: choice, choices: [only]}"}, "'answer.choices'", "at least two"),
        ({"answer": "{type: choice, choices: [Maybe, maybe]}"}, "'answer.choices'", "differ"),
        ({"answer": "{type: choice, choices: [yes, no]}"}, "'answer.choices'", "quote yes/no"),
        ({"metrics": "[acuracy]"}, "'metrics'", "did you mean 'accuracy'"),
        ({"metrics": None}, "'metrics'", "required"),
        ({"templat": "x"}, "'templat'", "did you mean 'template'"),
        ({"template": "no_such_prompt"}, "'template'", "prompts/no_such_prompt.jinja"),
        ({"template": '"{{ text "'}, "template syntax error", "fix the Jinja syntax"),
        ({"generation": "{max_new_tokens: 0}"}, "'generation.max_new_tokens'", "positive integer"),
        ({"generation": "{stop: '\\n'}"}, "'generation.stop'", "list"),
        ({"dataset": "{source: rows.jsonl, splt: test}"}, "'dataset.splt'", "did you mean 'split'"),
        ({"credentialed": "maybe"}, "'credentialed'", "true or false"),
        ({"version": "one"}, "'version'", "integer"),
    ],
)
def test_bad_task_file_one_line_naming_field_and_fix(
    tmp_path: Path, fields: dict, field: str, fix: str
) -> None:
    path = write_task(tmp_path, **fields)
    with pytest.raises(MibeError) as caught:
        tasks.load_task(path)
    message = str(caught.value)
    assert "\n" not in message and field in message and fix in message
    assert "template syntax" in message or str(path) in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed\n", "YAML error at line"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        (b"name: caf\xe9\n", "not UTF-8"),
    ],
)
def test_unreadable_task_files(tmp_path: Path, text: str | bytes, expected: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(MibeError, match=expected):
        tasks.load_task(path)


def test_builtin_tasks_are_the_twelve_and_valid() -> None:
    names = sorted(tasks.builtin_paths())
    expected = "pubmedqa medqa medmcqa emrqa i2b2_2010 ddi2013 hoc mtsample pubmed_sum mimic_cxr bionli"
    expected += " mednli"
    assert names == sorted(expected.split())
    loaded = {n: tasks.load_task(p) for n, p in tasks.builtin_paths().items()}
    assert {n for n, t in loaded.items() if t.credentialed} == {"emrqa", "i2b2_2010", "mimic_cxr", "mednli"}
    assert loaded["medqa"].choices == ("A", "B", "C", "D", "E")
    assert loaded["pubmedqa"].choices == ("yes", "no", "maybe")


def test_resolve_all_names_and_paths(tmp_path: Path) -> None:
    path = write_task(tmp_path)
    chosen, explicit = tasks.resolve(["all", f"pubmedqa,{path}"])
    assert len(chosen) == 13 and explicit == {"pubmedqa", "my_task"}
    with pytest.raises(MibeError, match="did you mean 'pubmedqa'"):
        tasks.resolve(["pubmedq"])


def test_cli_validate_and_show(tmp_path: Path) -> None:
    good = write_task(tmp_path)
    ok = subprocess.run(
        [sys.executable, "-m", "mibe.cli", "tasks", "validate", str(good)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = write_task(tmp_path, metrics="[nope]")
    fail = subprocess.run(
        [sys.executable, "-m", "mibe.cli", "tasks", "validate", str(bad)], capture_output=True, text=True
    )
    assert (
        fail.returncode == 2 and len(fail.stderr.strip().splitlines()) == 1 and "Traceback" not in fail.stderr
    )
    shown = subprocess.run(
        [sys.executable, "-m", "mibe.cli", "tasks", "show", "pubmedqa"], capture_output=True, text=True
    )
    assert "As an expert doctor in clinical science" in shown.stdout and "parse rule" in shown.stdout


def test_data_dir_with_two_matches_is_an_error(tmp_path: Path) -> None:
    task = tasks.load_task(tasks.builtin_paths()["ddi2013"])
    (tmp_path / "ddi2013.jsonl").write_text("")
    (tmp_path / "ddi2013.csv").write_text("")
    with pytest.raises(MibeError, match="keep one"):
        data.locate(task, str(tmp_path), {})


def test_data_override_wins_and_bad_rows_are_counted(tmp_path: Path) -> None:
    task = tasks.load_task(tasks.builtin_paths()["ddi2013"])
    rows = [json.loads(line) for line in (resources.demo_dir() / "ddi2013.jsonl").read_text().splitlines()]
    rows.append({"id": "bad", "sentence": "x @DRUG$ y @DRUG$", "label": "DDI-unknown"})
    file = tmp_path / "mine.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    location = data.locate(task, str(tmp_path), {"ddi2013": str(file)})
    docset = data.load_docs(task, location)
    assert len(docset.docs) == 3 and docset.n_skipped == 1
    assert "DDI-unknown" in (docset.first_problem or "")


def test_published_rows_gold_index_maps_to_task_choices(tmp_path: Path) -> None:
    task = tasks.load_task(tasks.builtin_paths()["pubmedqa"])
    rows = [
        {
            "id": "a",
            "query": "Q1 The answer is:",
            "answer": "no",
            "choices": ["yes", "no", "maybe"],
            "gold": 1,
        },
        {
            "id": "b",
            "query": "Q2 The answer is:",
            "answer": "x",
            "choices": ["yes", "no", "maybe"],
            "gold": 7,
        },
    ]
    file = tmp_path / "pubmedqa.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    docset = data.load_docs(task, data.Location("local", str(file)))
    assert [(d.id, d.gold, d.query) for d in docset.docs] == [("a", "no", "Q1 The answer is:")]
    assert docset.n_skipped == 1 and "outside choices" in (docset.first_problem or "")


def test_non_utf8_data_file_is_one_clear_line(tmp_path: Path) -> None:
    file = tmp_path / "ddi2013.csv"
    file.write_bytes("id,sentence,label\n1,caf\xe9 @DRUG$,DDI-false\n".encode("latin-1"))
    with pytest.raises(MibeError, match="not UTF-8"):
        datafiles.read_rows(file)


def test_fewshot_draw_is_seeded_and_excludes_the_document() -> None:
    task = tasks.load_task(tasks.builtin_paths()["ddi2013"])
    docs = data.load_docs(task, data.Location("local", str(resources.demo_dir() / "ddi2013.jsonl"))).docs
    first = data.draw_shots(docs[0], docs, 2, seed=3)
    assert first == data.draw_shots(docs[0], docs, 2, seed=3)
    assert docs[0].id not in {d.id for d in first}
    with pytest.raises(MibeError, match="only 2 other documents"):
        data.draw_shots(docs[0], docs, 3, seed=3)
