"""What mibe hands a task hook: each row with its place (`__position__`) in a copy, so hooks whose rows
carry no id (BoolQ, MMLU) define only `to_doc` and their own reason reaches the skip line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe import data, datacheck, tasks
from mibe.types import MibeError
from tests.support.paths import REPO

GENERAL = REPO / "tests" / "fixtures" / "general"
EXAMPLE = REPO / "tasks" / "examples" / "everyday_yesno.yaml"
BAD_BOOLQ = {"question": "is it", "passage": "It is.", "answer": "maybe"}
BAD_MMLU = {"question": "Which?", "subject": "x", "choices": ["a", "b", "c"], "answer": 0}


def fixture_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (GENERAL / f"{name}.jsonl").read_text().splitlines()]


def write_rows(folder: Path, rows: list[dict]) -> Path:
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# task, where the bad row goes among the fixture rows, the bad row, the ids kept, the skip line
CASES = [
    ("boolq", 1, BAD_BOOLQ, ["0", "2", "3"], "row 2: ValueError: answer: expected true or false, got 'maybe"),
    ("boolq", 0, {**BAD_BOOLQ, "answer": True, "passage": ""}, ["1", "2", "3"], "row 1: ValueError: passage"),
    ("mmlu", 2, BAD_MMLU, ["0", "1", "3", "4"], "row 3: ValueError: choices: expected a list of four option"),
    ("mmlu", 4, {**BAD_MMLU, "choices": ["a", "b", "c", "d"], "answer": 7}, ["0", "1", "2", "3"],
     "row 5: ValueError: answer: expected an index 0-3 or a letter A-D, got 7"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "at", "bad", "ids", "first"), CASES)
def test_a_bad_rows_own_reason_is_the_skip_line_and_ids_are_places(
    name: str, at: int, bad: dict, ids: list[str], first: str, tmp_path: Path
) -> None:
    rows = fixture_rows(name)
    rows.insert(at, bad)
    path = write_rows(tmp_path, rows)
    (task,), _ = tasks.resolve([name])
    docset = data.load_docs(task, data.locate(task, None, {name: str(path)}))
    assert [d.id for d in docset.docs] == ids  # a hub row has no id: its place among all rows read
    assert docset.n_skipped == 1 and docset.first_problem is not None
    assert docset.first_problem.startswith(first), docset.first_problem
    check = datacheck.check_task(task, None, {name: str(path)})  # what `mibe data check` prints
    assert f"unusable rows: 1; first: {docset.first_problem}" in datacheck.render([check])


@pytest.mark.parametrize(("name", "bad"), [("boolq", BAD_BOOLQ), ("mmlu", BAD_MMLU)])
def test_no_usable_row_names_the_hooks_reason(name: str, bad: dict, tmp_path: Path) -> None:
    (task,), _ = tasks.resolve([name])
    path = write_rows(tmp_path, [bad])
    with pytest.raises(data.NoData, match=r"\(1 rows; the first problem: row 1: ValueError: \w+: "):
        data.load_docs(task, data.locate(task, None, {name: str(path)}))


@pytest.mark.parametrize(
    ("name", "row", "doc_id"),
    [
        ("boolq", {**fixture_rows("boolq")[0], "id": "bq-7"}, "bq-7"),  # a row's own id wins
        ("mmlu", {**fixture_rows("mmlu")[0], "id": 12}, "12"),
        ("boolq", {**fixture_rows("boolq")[0], "__position__": 99}, "0"),  # mibe's place, not the data's
    ],
)
def test_a_rows_own_id_wins_over_its_place(name: str, row: dict, doc_id: str) -> None:
    (task,), _ = tasks.resolve([name])
    docs, skipped, _ = data.to_docs(task, [row], data.load_hook(task))
    assert [d.id for d in docs] == [doc_id] and skipped == 0


@pytest.mark.parametrize("name", ["boolq", "mmlu", "medqa", "hoc"])
def test_the_place_is_in_the_hooks_copy_only(name: str) -> None:
    (task,), _ = tasks.resolve([name])
    source = (
        GENERAL / f"{name}.jsonl" if name in ("boolq", "mmlu") else REPO / "tasks" / "demo" / f"{name}.jsonl"
    )
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    before = json.dumps(rows, sort_keys=True)
    docs, skipped, _ = data.to_docs(task, rows, data.load_hook(task))
    assert len(docs) == len(rows) and skipped == 0
    assert json.dumps(rows, sort_keys=True) == before  # fingerprints hash these rows: untouched
    assert not any(data.POSITION in d.fields for d in docs)


def test_a_task_without_a_hook_keeps_its_rows_as_fields() -> None:
    task = tasks.load_task(EXAMPLE)
    docset = data.load_docs(task, data.locate(task, None, {}))
    rows = [json.loads(line) for line in EXAMPLE.with_suffix(".jsonl").read_text().splitlines()]
    assert [d.fields for d in docset.docs] == rows


@pytest.mark.parametrize(
    ("row", "found"),
    [
        ({"pmid": 7, "id": "x"}, "7"),
        ({"id": "x"}, "x"),
        ({"pmid": 0}, "0"),
        ({"pmid": None, "id": "x"}, None),  # a null id column is no id
        ({"pmid": ""}, None),
        ({"id": None}, None),
        ({}, None),
    ],
)
def test_row_id(row: dict, found: str | None) -> None:
    if found is None:
        with pytest.raises(ValueError, match=r"^pmid: missing \(and no id\)$"):
            data.row_id(row, "pmid", "id")
    else:
        assert data.row_id(row, "pmid", "id") == found


# A hook whose documents are made from rows that belong together: two rows a question (its text, then
# its answer), invented for this test. `to_docs` receives every row as read, without `__position__`.
PAIRING_HOOK = """
from mibe.types import Doc

def to_docs(rows):
    assert all("__position__" not in r for r in rows)
    def doc(question, answer):
        return Doc(id=question["id"], fields={"question": question["question"]}, gold=answer["answer"])

    return [None if b.get("answer") is None else doc(a, b) for a, b in zip(rows[0::2], rows[1::2])]
"""


def test_to_docs_makes_documents_from_rows_that_belong_together(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(EXAMPLE.read_text().replace("name: everyday_yesno", "name: mine"))
    (tmp_path / "mine.py").write_text(PAIRING_HOOK)
    task = tasks.load_task(tmp_path / "mine.yaml")
    rows = [
        {"id": "q1", "question": "Is ice cold?"}, {"answer": "yes"},
        {"id": "q2", "question": "Can a cat fly?"}, {"answer": None},
        {"id": "q3", "question": "Is a week seven days?"}, {"answer": "maybe"},
        {"id": "q4", "question": "Is water wet?"}, {"answer": "no"},
    ]  # fmt: skip
    docs, skipped, first = data.to_docs(task, rows, data.load_hook(task))
    assert [(d.id, d.gold) for d in docs] == [("q1", "yes"), ("q4", "no")]
    assert skipped == 2 and first == "document 2 of to_docs: the task hook found nothing usable"


@pytest.mark.parametrize("hook", ["X = 1\n", "def read(path, split):\n    return None\n"])
def test_a_hook_without_to_doc_or_to_docs_is_one_line(hook: str, tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(EXAMPLE.read_text().replace("name: everyday_yesno", "name: mine"))
    (tmp_path / "mine.py").write_text(hook)
    with pytest.raises(MibeError) as refused:
        data.load_hook(tasks.load_task(tmp_path / "mine.yaml"))
    message = str(refused.value)
    assert message.endswith("a task hook must define to_doc(row) or to_docs(rows)") and "\n" not in message
