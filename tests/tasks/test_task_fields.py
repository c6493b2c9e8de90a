"""Task files on hostile input: YAML alias bombs, fields of the wrong type, fields that could never score,
a template the sandbox refuses, a folder given as a task file, an edited copy of a built-in task."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mibe import tasks
from mibe.types import MibeError
from tests.support.notes import LABELS, main, one_line, workspace
from tests.support.paths import REPO
from tests.support.runfiles import EXAMPLE, EXAMPLE_DATA


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n" + LABELS)
    with pytest.raises(MibeError, match="anchors and aliases"):
        tasks.load_task(tmp_path / "bomb.yaml")


def test_a_folder_given_as_a_task_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "x.yaml").mkdir()
    code, err = main("tasks", "validate", str(tmp_path / "x.yaml"), capsys=capsys)
    one_line(code, err, "is a folder, not a task file")
    code, err = main("run", "--model", "m", "--tasks", str(tmp_path / "x.yaml"), capsys=capsys)
    one_line(code, err, "is a folder, not a task file")


def test_a_template_the_sandbox_refuses_is_one_line(tmp_path: Path, capsys) -> None:
    task = LABELS.replace('"Specialty of this note?\\nINPUT: {{ text }}\\nOUTPUT:"',
                          "'{{ \"{0.__class__}\".format(text) }}'")  # fmt: skip
    code, err = main(
        "run", "--model", "/no/such/model", "--tasks", str(workspace(tmp_path, task)), capsys=capsys
    )
    one_line(code, err, "the template did something the sandbox forbids")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("answer: {type: choice,", "answer: {type: [choice],", "answer.type"),
        ("answer: {type: choice,", "answer: {type: {a: 1},", "answer.type"),
        ("generation: {max_new_tokens: 4}", "generation: 5", "generation"),
        ("generation: {max_new_tokens: 4}", "generation: [max_new_tokens]", "generation"),
        ("generation: {max_new_tokens: 4}", 'generation: "max_new_tokens"', "generation"),
        (
            "generation: {max_new_tokens: 4}",
            "generation: {max_new_tokens: true}",
            "generation.max_new_tokens",
        ),
        ("metrics: [accuracy, macro_f1]", "metrics: [[accuracy]]", "metrics"),
        ("metrics: [accuracy, macro_f1]", "metrics: [accuracy, {a: 1}]", "metrics"),
    ],
)
def test_a_task_field_of_the_wrong_type_is_one_line(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in LABELS
    path = tmp_path / "notes.yaml"
    path.write_text(LABELS.replace(old, new) + "version: 1\n")
    with pytest.raises(MibeError, match=rf"^{path}: field '{re.escape(field)}': "):
        tasks.load_task(path)


@pytest.mark.parametrize(
    ("old", "new", "field", "said"),
    [
        ("target: label", "target: [label]", "target", "the name of the data's gold column"),
        ("target: label", "target: 7", "target", "the name of the data's gold column"),
        ("choices: [Surgery, Cardiology]", 'choices: [" Surgery", Cardiology]', "answer.choices", "a space"),
        ("metrics: [accuracy, macro_f1]", "metrics: [accuracy, accuracy]", "metrics", "listed twice"),
        ("answer: {type: choice,", "answer: {type: letter,", "answer.choices", "option letters"),
    ],
)
def test_task_fields_that_could_never_score_are_one_line(
    tmp_path: Path, old: str, new: str, field: str, said: str
) -> None:
    assert old in LABELS
    path = tmp_path / "notes.yaml"
    path.write_text(LABELS.replace(old, new))
    with pytest.raises(MibeError, match=rf"^{path}: field '{re.escape(field)}': .*{re.escape(said)}"):
        tasks.load_task(path)


def test_an_edited_copy_of_a_built_in_task_needs_its_own_name(tmp_path: Path) -> None:
    # Under the built-in's name it would share the built-in's leaderboard columns and published rows.
    original = REPO / "tasks" / "pubmedqa.yaml"
    copy = tmp_path / "pubmedqa.yaml"
    copy.write_bytes(original.read_bytes())
    assert tasks.resolve([str(copy)])[0][0].path == original.resolve()  # a plain copy is the built-in task
    copy.write_text(original.read_text().replace("max_new_tokens", "max_new_tokens", 1) + "# my edit\n")
    with pytest.raises(MibeError, match=r"'pubmedqa' is a built-in task's name, but this file differs"):
        tasks.resolve([str(copy)])


def test_the_example_general_task_is_not_part_of_all() -> None:
    from mibe import tasks

    assert "everyday_yesno" not in tasks.builtin_paths()
    loaded = tasks.load_task(EXAMPLE)
    assert (
        loaded.domain == "general" and tasks.load_task(tasks.builtin_paths()["pubmedqa"]).domain == "medical"
    )
    assert all(json.loads(x)["invented"] is True for x in EXAMPLE_DATA.read_text().splitlines())


def test_a_bad_domain_is_one_line(tmp_path: Path) -> None:
    from mibe import tasks

    bad = tmp_path / "t.yaml"
    bad.write_text(EXAMPLE.read_text().replace("domain: general", "domain: sports"))
    with pytest.raises(MibeError, match="field 'domain'"):
        tasks.load_task(bad)
