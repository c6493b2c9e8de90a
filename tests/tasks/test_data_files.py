"""Data files as users have them (mibe/data.py): Parquet lists and structs, CSV byte-order marks, quoting
and long cells, JSON and JSONL that Python cannot hold, null fields, keys given twice, compressed and
wrapped files, unreadable files; each is read right or refused in one line naming file and row."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mibe import data, datafiles, prompts, tasks
from mibe.types import MibeError
from tests.support.notes import one_line, workspace
from tests.support.paths import REPO


def parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_parquet_list_and_struct_columns_read_as_lists_and_dicts(tmp_path: Path) -> None:
    published = [
        {"id": f"q{i}", "query": f"Question {i}? Answer:", "answer": "yes", "choices": ["yes", "no", "maybe"],
         "gold": 0}
        for i in range(3)
    ]  # fmt: skip
    rows = datafiles.read_rows(parquet(tmp_path / "p.parquet", published))
    assert rows[0]["choices"] == ["yes", "no", "maybe"] and type(rows[0]["choices"]) is list
    task = tasks.load_task(REPO / "tasks" / "pubmedqa.yaml")
    docs = data.load_docs(task, data.Location("local", str(tmp_path / "p.parquet"))).docs
    assert [d.gold for d in docs] == ["yes"] * 3
    contexts = [{"pmid": str(i), "QUESTION": "Q?", "CONTEXTS": ["first.", "second."], "final_decision": "no"}
                for i in range(2)]  # fmt: skip
    docs = data.load_docs(task, data.Location("local", str(parquet(tmp_path / "c.parquet", contexts)))).docs
    assert docs[0].fields["context"] == "first.\nsecond."


def test_mixed_four_and_five_option_medqa_rows_render_no_none(tmp_path: Path) -> None:
    rows = [
        {"id": "4", "question": "Four?", "options": {"A": "a", "B": "b", "C": "c", "D": "d", "E": None},
         "answer_idx": "B"},
        {"id": "5", "question": "Five?", "options": {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"},
         "answer_idx": "E"},
    ]  # fmt: skip
    task = tasks.load_task(REPO / "tasks" / "medqa.yaml")
    docs = data.load_docs(task, data.Location("local", str(parquet(tmp_path / "m.parquet", rows)))).docs
    shown = [prompts.doc_prompt(task.template, d) for d in docs]  # the options the prompt prints
    assert "Options:\nA. a\nB. b\nC. c\nD. d\n\n" in shown[0] and "None" not in shown[0]
    assert "D. d\nE. e\n\n" in shown[1]
    medmcqa = tasks.load_task(REPO / "tasks" / "medmcqa.yaml")
    row = {"id": "m", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": None, "cop": 1}
    docs = data.load_docs(medmcqa, data.Location("local", str(parquet(tmp_path / "mm.parquet", [row])))).docs
    shown = prompts.doc_prompt(medmcqa.template, docs[0])
    assert "None" not in shown and "Options:\nA. a\nB. b\nC. c\n\nThe answer is" in shown


def test_a_csv_with_a_byte_order_mark_keeps_its_id_column(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes("\ufeffid,text,label\nx7,a note,Surgery\n".encode())
    assert datafiles.read_rows(path) == [{"id": "x7", "text": "a note", "label": "Surgery"}]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("id,text,text,label\n1,a,b,Surgery\n", r"column names \['text'\] appear more than once"),
        ("id,text,label\n1,a,Surgery\n2,b,c,Surgery\n", r"notes.csv:3: 4 fields where the header has 3"),
        ("id,text,label\n1,a\n", r"notes.csv:2: 2 fields where the header has 3"),
    ],
)
def test_a_csv_whose_rows_do_not_fit_its_header_is_one_line(tmp_path: Path, text: str, said: str) -> None:
    # csv.DictReader kept the last of two same-named columns and filed extra fields under no name.
    path = tmp_path / "notes.csv"
    path.write_text(text)
    with pytest.raises(MibeError, match=said):
        datafiles.read_rows(path)


def test_a_csv_keeps_quoted_delimiters_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('id,text,label\n1,"a, b",Surgery\n\n2,c,Cardiology\n')
    assert datafiles.read_rows(path) == [
        {"id": "1", "text": "a, b", "label": "Surgery"},
        {"id": "2", "text": "c", "label": "Cardiology"},
    ]
    (tmp_path / "empty.csv").write_text("")
    assert datafiles.read_rows(tmp_path / "empty.csv") == []


@pytest.mark.parametrize("line", ["[1, 2]", '"text"', "3", "null"])
def test_a_jsonl_line_that_is_not_an_object_is_one_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "medqa.jsonl"
    path.write_text(
        '{"id": "1", "question": "Q?", "options": {"A": "a", "B": "b"}, "answer_idx": "A"}\n' + line
    )
    task = tasks.load_task(REPO / "tasks" / "medqa.yaml")
    with pytest.raises(MibeError, match=r"medqa.jsonl:2: a \w+ .*not a record"):
        data.load_docs(task, data.Location("local", str(path)))


def without_file_powers(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m mibe ARGS` with root's power to read and write past mode bits dropped (setpriv)."""
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*drop, sys.executable, "-m", "mibe", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv (util-linux) to drop the file-permission override",
)
def test_unreadable_files_and_read_only_folders_are_one_line(tmp_path: Path) -> None:
    task_file = workspace(tmp_path / "w")
    task_file.chmod(0o000)
    done = without_file_powers("tasks", "validate", str(task_file), cwd=tmp_path)
    one_line(done.returncode, done.stderr, "cannot read the task file (Permission denied)")
    task_file.chmod(0o644)
    (tmp_path / "w" / "notes.jsonl").chmod(0o000)
    done = without_file_powers("data", "check", "--tasks", str(task_file), cwd=tmp_path)
    one_line(done.returncode, done.stderr, "no usable data for notes")
    assert "notes.jsonl: cannot read (Permission denied)" in done.stdout
    (tmp_path / "w" / "notes.jsonl").chmod(0o644)
    (tmp_path / "ro").mkdir(mode=0o555)
    args = [
        "run",
        "--model",
        "/no/such/model",
        "--tasks",
        str(task_file),
        "--output-dir",
        str(tmp_path / "ro" / "x"),
    ]
    done = without_file_powers(*args, cwd=tmp_path)
    one_line(
        done.returncode,
        done.stderr,
        f"--output-dir {tmp_path / 'ro' / 'x'}: cannot write in {tmp_path / 'ro'}",
    )


MULTI = """name: tags
dataset: {source: tags.jsonl}
template: "Tags of {{ text }}?"
target: labels
answer: {type: multi_label, choices: [fever, cough, rash]}
metrics: [macro_f1]
"""


@pytest.mark.parametrize(
    ("gold", "said"),
    [
        ({"fever": True, "cough": False}, "not an object"),  # its keys are not the labels that apply
        (None, "null"),
        (5, "not a number"),
        (True, "not true/false"),
    ],
)
def test_a_multi_label_gold_that_is_not_a_list_is_an_unusable_row(
    tmp_path: Path, gold: object, said: str
) -> None:
    (tmp_path / "tags.yaml").write_text(MULTI)
    rows = [{"id": "a", "text": "n1", "labels": gold}, {"id": "b", "text": "n2", "labels": ["fever", "rash"]}]
    (tmp_path / "tags.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tasks.load_task(tmp_path / "tags.yaml")
    loaded = data.load_docs(task, data.Location("local", str(tmp_path / "tags.jsonl")))
    assert [d.gold for d in loaded.docs] == [("fever", "rash")]
    assert loaded.n_skipped == 1 and said in (loaded.first_problem or "")


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        (
            "big.jsonl",
            '{"id": ' + "9" * 5000 + ', "text": "x", "label": "Surgery"}\n',
            r"big.jsonl:1: JSON that cannot",
        ),
        (
            "deep.jsonl",
            '{"id": "a", "text": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            r"deep.jsonl:1: JSON that",
        ),
        ("deep.json", "[" + "[" * 100_000 + "]" * 100_000 + "]", r"deep.json: JSON that cannot be read"),
    ],
)
def test_json_python_cannot_hold_is_one_line(tmp_path: Path, name: str, text: str, said: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(MibeError, match=said):
        datafiles.read_rows(tmp_path / name)


def test_a_csv_cell_longer_than_csvs_default_limit_is_read(tmp_path: Path) -> None:
    note = "x" * 300_000  # a long clinical note in one cell (csv's default limit is 131,072)
    (tmp_path / "notes.csv").write_text(f"id,text,label\nd0,{note},Surgery\n")
    assert datafiles.read_rows(tmp_path / "notes.csv") == [{"id": "d0", "text": note, "label": "Surgery"}]


TEXT = """name: notes_sum
dataset: {source: notes.jsonl}
template: "Summarise: {{ text }}{% if extra %} ({{ extra }}){% endif %} [{{ note }}]"
target: summary
answer: {type: text}
metrics: [rouge_l]
"""


def test_null_fields_and_golds_are_never_the_word_none(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "chest pain", "note": None, "extra": None, "summary": "angina"},
        {"id": "b", "text": "cough", "note": "n", "extra": "x", "summary": None},  # no reference
        {"id": "c", "text": "rash", "note": "n", "extra": "", "summary": ["a", "list"]},
        {"id": None, "text": "fever", "note": "n", "extra": "", "summary": "flu"},
        {"id": ["x"], "text": "fever", "note": "n", "extra": "", "summary": "flu"},
        {"id": "", "text": "fever", "note": "n", "extra": "", "summary": "flu"},
    ]
    task = tasks.load_task(workspace(tmp_path, TEXT, rows, name="notes_sum"))
    loaded = data.load_docs(task, data.Location("local", str(tmp_path / "notes.jsonl")))
    assert [d.id for d in loaded.docs] == ["a"] and loaded.n_skipped == 5
    assert "the gold column 'summary' is null" in (loaded.first_problem or "")
    prompt = prompts.compose(task.template, loaded.docs[0], [])
    assert prompt == "Summarise: chest pain []" and "None" not in prompt


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ({"id": None, "text": "t", "label": "Surgery"}, "`id` is null"),
        ({"id": ["x"], "text": "t", "label": "Surgery"}, '`id` is ["x"]'),
        ({"id": " ", "text": "t", "label": "Surgery"}, '`id` is " "'),
        ({"text": "t", "lable": "Surgery"}, "no gold column 'label' (set `target:` in the task file; the"),
    ],
)  # fmt: skip
def test_rows_without_a_usable_id_or_gold_say_why(tmp_path: Path, row: dict, said: str) -> None:
    task = tasks.load_task(workspace(tmp_path, rows=[row, {"id": "ok", "text": "t", "label": "Surgery"}]))
    loaded = data.load_docs(task, data.Location("local", str(tmp_path / "notes.jsonl")))
    assert [d.id for d in loaded.docs] == ["ok"] and said in (loaded.first_problem or "")


def test_a_json_file_keyed_by_id_keeps_its_ids(tmp_path: Path) -> None:
    task = tasks.load_task(workspace(tmp_path))
    keyed = {"pmid-7": {"text": "a", "label": "Surgery"}, "pmid-9": {"text": "b", "label": "Cardiology"}}
    (tmp_path / "keyed.json").write_text(json.dumps(keyed))
    loaded = data.load_docs(task, data.Location("local", str(tmp_path / "keyed.json")))
    assert [d.id for d in loaded.docs] == ["pmid-7", "pmid-9"]  # were "0", "1"


def test_a_key_given_twice_is_one_line(tmp_path: Path) -> None:
    # JSON and YAML keep the last of two equal keys without a word.
    (tmp_path / "rows.jsonl").write_text(
        '{"id": "a", "text": "t", "label": "Surgery", "label": "Cardiology"}\n'
    )
    with pytest.raises(MibeError, match=r"rows.jsonl:1: .*the key 'label' appears twice in one object"):
        datafiles.read_rows(tmp_path / "rows.jsonl")
    (tmp_path / "rows.json").write_text('[{"id": "a", "id": "b"}]')
    with pytest.raises(MibeError, match=r"rows.json: .*the key 'id' appears twice"):
        datafiles.read_rows(tmp_path / "rows.json")
    path = workspace(tmp_path)
    path.write_text(path.read_text() + "metrics: [accuracy]\n")
    with pytest.raises(
        MibeError, match=r"YAML error at line \d+: the key 'metrics' appears twice in one mapping"
    ):
        tasks.load_task(path)


def test_data_files_in_odd_wrappings(tmp_path: Path) -> None:
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    line = b'{"id": "a", "text": "t", "label": "Surgery"}\n'
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + line)  # a byte-order mark: still the first row
    assert datafiles.read_rows(tmp_path / "bom.jsonl") == [{"id": "a", "text": "t", "label": "Surgery"}]
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf[" + line.strip() + b"]")
    assert len(datafiles.read_rows(tmp_path / "bom.json")) == 1
    (tmp_path / "z.jsonl").write_bytes(gzip.compress(line))
    with pytest.raises(MibeError, match=r"z.jsonl: is gzip-compressed; decompress it \(gunzip -k z.jsonl\)"):
        datafiles.read_rows(tmp_path / "z.jsonl")
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["id", "id"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(MibeError, match=r"dup.parquet: column names \['id'\] appear more than once"):
        datafiles.read_rows(tmp_path / "dup.parquet")
