"""Hostile input, second round: one test per case of docs/reliability.md's later sections.

Run folders are data (no code runs because one names it), redaction holds whatever the order of events,
an output folder mibe did not write is never touched, resume never mixes two versions of a task's
documents, and bad files or flags are one line with exit 2. Every test uses a scripted backend and
real files; none loads a model.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mibe import cli, data, prompts, tasks
from mibe.backends import factory
from mibe.runfolder import audit, folder, rescore
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support.notes import LABELS, ROWS, SUMMARY, main, one_line, run, samples, scripted, workspace
from tests.support.paths import REPO

# ---- 1. a run folder never makes mibe import code -----------------------------------------------------


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
    rescore.rescore(out, "paper", [], tmp_path / "re", say=lambda line: None)
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


# ---- 4. --redact-samples whatever the order of events -------------------------------------------------

FULL_KEYS = {"prompt", "raw_output"}


def test_rerunning_a_finished_run_with_redact_samples_redacts_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run(workspace(tmp_path), out)
    assert set(samples(out)[0]) >= FULL_KEYS
    again = run(workspace(tmp_path), out, redact_samples=True)
    assert again["tasks"] == first["tasks"]
    assert all(not FULL_KEYS & set(r) and r["redacted"] for r in samples(out))


def test_rows_are_redacted_from_the_first_write_and_a_resume_keeps_them_so(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # killed after two batches, before the task is scored
        run(workspace(tmp_path), out, backend=scripted(fail_after=2), batch_size=1, redact_samples=True)
    cut = samples(out)
    assert len(cut) == 2 and all(not FULL_KEYS & set(r) for r in cut)
    assert {"id", "index", "prediction", "gold", "score"} <= set(cut[0])  # what scoring and resume need
    done = run(workspace(tmp_path), out, batch_size=1)  # resumed without the flag: still redacted
    assert all(r.get("redacted") for r in samples(out))
    assert (
        done["tasks"]["notes"]["metrics"]
        == run(workspace(tmp_path), tmp_path / "plain")["tasks"]["notes"]["metrics"]
    )


def test_a_kill_right_after_results_json_is_written_leaves_no_text(tmp_path: Path, monkeypatch) -> None:
    from mibe.runfolder import writer

    real = writer.write_json_atomic

    def then_killed(path: Path, content: object, private: bool = False) -> None:
        real(path, content, private)
        if path.name == "results.json":
            raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_json_atomic", then_killed)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(workspace(tmp_path), out, redact_samples=True)
    monkeypatch.setattr(writer, "write_json_atomic", real)
    assert all(not FULL_KEYS & set(r) for r in samples(out))
    run(workspace(tmp_path), out, redact_samples=True)  # resumed: the task is final, still no text
    assert all(not FULL_KEYS & set(r) and r["redacted"] for r in samples(out))


def test_a_killed_unredacted_run_resumed_with_the_flag_is_redacted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(workspace(tmp_path), out, backend=scripted(fail_after=2), batch_size=1)
    assert set(samples(out)[0]) >= FULL_KEYS
    run(workspace(tmp_path), out, batch_size=1, redact_samples=True)
    rows = samples(out)
    assert len(rows) == 5 and all(not FULL_KEYS & set(r) for r in rows)
    assert all({"id", "index", "prediction", "gold", "score", "redacted"} <= set(r) for r in rows)


def test_text_tasks_keep_statistics_not_text_and_score_the_same(tmp_path: Path) -> None:
    task_file = workspace(tmp_path, SUMMARY, name="summary")
    full = run(task_file, tmp_path / "full")
    hidden = run(task_file, tmp_path / "hidden", redact_samples=True, batch_size=2)
    rows = samples(tmp_path / "hidden", "summary")
    text = (tmp_path / "hidden" / "samples" / "summary.jsonl").read_text()
    assert "secret" not in text and "heart" not in text
    assert all(set(r["stats"]) == {"rouge_l"} and "gold" not in r for r in rows)
    assert hidden["tasks"]["summary"]["metrics"] == full["tasks"]["summary"]["metrics"]


def test_commands_needing_the_text_say_the_task_was_redacted(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out, redact_samples=True)
    code, err = main("rescore", str(out), "--output-dir", str(tmp_path / "re"), capsys=capsys)
    one_line(code, err, "task notes was run with --redact-samples")
    code, err = main("audit", str(out), capsys=capsys)
    one_line(code, err, "task notes was run with --redact-samples")


# ---- 5. an output folder of files mibe did not write --------------------------------------------------


@pytest.mark.parametrize(
    "foreign",
    [
        {"results.json": '{"tasks": {"mine": 1}}'},
        {"samples/notes.jsonl": '{"id": "n0", "prompt": "someone else\'s"}\n'},
        {"notes.txt": "my thesis"},
        {"run.json": '{"not": "mibe"}'},
    ],
)
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_foreign_files_is_refused_and_left_alone(
    tmp_path: Path, foreign: dict[str, str], overwrite: bool
) -> None:
    out = tmp_path / "out"
    for name, text in foreign.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    with pytest.raises(MibeError, match="holds files mibe did not write"):
        run(workspace(tmp_path), out, overwrite=overwrite)
    for name, text in foreign.items():
        assert (out / name).read_text() == text


def test_the_default_output_folder_beside_other_runs_is_fine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "an-earlier-run").mkdir(parents=True)
    config = RunConfig(model="scripted", tasks=(str(workspace(tmp_path / "w")),), bootstrap=20)
    api.run(config, backend=scripted(), say=lambda line: None)
    assert len(list((tmp_path / "runs").glob("scripted-*/results.json"))) == 1


def test_overwrite_deletes_only_what_mibe_wrote(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out)
    (out / "samples" / "kept.jsonl").write_text("mine\n")
    (out / "notes.txt").write_text("mine")
    run(workspace(tmp_path), out, overwrite=True, limit=2)
    assert (out / "samples" / "kept.jsonl").read_text() == "mine\n" and (out / "notes.txt").exists()
    assert len(samples(out)) == 2


@pytest.mark.parametrize("link", ["samples/notes.jsonl", "samples", "samples/other.jsonl", "results.json"])
def test_a_link_in_a_run_folder_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, link: str
) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out, batch_size=1)
    victim = tmp_path / "victim"
    if link == "samples":
        shutil.copytree(out / "samples", victim)
    else:
        shutil.copy(out / "samples" / "notes.jsonl", victim)
    (out / "results.json").unlink()  # a run killed before its results: the next run resumes it
    target = out / link
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(victim)
    before = {p: p.read_bytes() for p in [victim, *victim.rglob("*")] if p.is_file()}
    with pytest.raises(MibeError, match=r"is a link \(to .*victim\); a run folder holds plain files only"):
        run(workspace(tmp_path), out, batch_size=1)
    assert {p: p.read_bytes() for p in [victim, *victim.rglob("*")] if p.is_file()} == before


def test_readers_refuse_a_linked_samples_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out)
    victim = tmp_path / "elsewhere.jsonl"
    (out / "samples" / "notes.jsonl").rename(victim)
    (out / "samples" / "notes.jsonl").symlink_to(victim)
    for argv in (["view", str(out), "-o", str(tmp_path / "p.html")], ["audit", str(out)]):
        assert cli.main(argv) == 2
        assert "is a link" in capsys.readouterr().err


# ---- 6. leaderboard -o over a run's files -------------------------------------------------------------


def test_leaderboard_never_writes_into_a_run_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out)
    before = (out / "results.json").read_text()
    for target in (out / "results.json", out / "samples" / "notes.jsonl", out / "board.md"):
        code, err = main("leaderboard", str(out), "-o", str(target), "--format", "md", capsys=capsys)
        one_line(code, err, "inside the run folder")
    code, err = main("leaderboard", "--no-published", str(out), "-o", str(tmp_path / "b" / "results.json"),
                     "--format", "md", capsys=capsys)  # fmt: skip
    assert code == 0 and (out / "results.json").read_text() == before
    code, err = main("compare", str(out), str(out), "-o", str(out / "results.json"), capsys=capsys)
    one_line(code, err, "inside the run folder")
    assert (out / "results.json").read_text() == before


def test_an_unknown_output_suffix_names_the_allowed_ones(tmp_path: Path, capsys) -> None:
    code, err = main("leaderboard", "-o", str(tmp_path / "board.xlsx"), capsys=capsys)
    one_line(code, err, "unknown suffix .xlsx; use .txt, .md, .markdown, .csv, .html, .htm")
    code, err = main("compare", "a", "b", "-o", str(tmp_path / "c.html"), capsys=capsys)
    one_line(code, err, "use .txt, .md, .markdown, .csv, .json")
    assert not (tmp_path / "board.xlsx").exists()


# ---- 7. resume never mixes two versions of a task's documents -----------------------------------------

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


# ---- 8. two rescores into one folder ------------------------------------------------------------------


def test_a_second_rescore_into_a_locked_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out)
    target = tmp_path / "re"
    target.mkdir()
    with (target / ".lock").open("a+") as other:  # another process's lock: a separate open file
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(MibeError, match="another mibe process"):
            rescore.rescore(out, "paper", [], target, say=lambda line: None)
    assert sorted(p.name for p in target.iterdir()) == [".lock"]
    rescore.rescore(out, "paper", [], target, say=lambda line: None)  # once the other is done
    assert (target / "results.json").is_file()


# ---- 11. Parquet lists and structs; absent options ----------------------------------------------------


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
    rows = data.read_rows(parquet(tmp_path / "p.parquet", published))
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
    assert docs[0].fields["options"] == "A. a\nB. b\nC. c\nD. d"
    assert docs[1].fields["options"].endswith("E. e")
    medmcqa = tasks.load_task(REPO / "tasks" / "medmcqa.yaml")
    row = {"id": "m", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": None, "cop": 1}
    docs = data.load_docs(medmcqa, data.Location("local", str(parquet(tmp_path / "mm.parquet", [row])))).docs
    assert "None" not in docs[0].fields["options"] and docs[0].fields["options"] == "A. a\nB. b\nC. c"


# ---- 12. bad files and flags: one line, exit 2 --------------------------------------------------------


def test_a_csv_with_a_byte_order_mark_keeps_its_id_column(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes("\ufeffid,text,label\nx7,a note,Surgery\n".encode())
    assert data.read_rows(path) == [{"id": "x7", "text": "a note", "label": "Surgery"}]


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
        data.read_rows(path)


def test_a_csv_keeps_quoted_delimiters_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('id,text,label\n1,"a, b",Surgery\n\n2,c,Cardiology\n')
    assert data.read_rows(path) == [
        {"id": "1", "text": "a, b", "label": "Surgery"},
        {"id": "2", "text": "c", "label": "Cardiology"},
    ]
    (tmp_path / "empty.csv").write_text("")
    assert data.read_rows(tmp_path / "empty.csv") == []


@pytest.mark.parametrize("line", ["[1, 2]", '"text"', "3", "null"])
def test_a_jsonl_line_that_is_not_an_object_is_one_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "medqa.jsonl"
    path.write_text(
        '{"id": "1", "question": "Q?", "options": {"A": "a", "B": "b"}, "answer_idx": "A"}\n' + line
    )
    task = tasks.load_task(REPO / "tasks" / "medqa.yaml")
    with pytest.raises(MibeError, match=r"medqa.jsonl:2: a \w+ .*not a record"):
        data.load_docs(task, data.Location("local", str(path)))


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n" + LABELS)
    with pytest.raises(MibeError, match="anchors and aliases"):
        tasks.load_task(tmp_path / "bomb.yaml")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--seed", "-1"], "--seed -1: must be between 0 and"),
        (["--seed", str(2**32)], "--seed 4294967296: must be between"),
        (["--bootstrap", "-5"], "--bootstrap -5: must be 0"),
        (["--data", "mednli=/nowhere"], "--data mednli=...: no task 'mednli' among --tasks (pubmedqa)"),
        (["--request-timeout", "0"], "--request-timeout 0: must be a positive"),
    ],
)
def test_bad_run_flags_are_one_line_before_anything_loads(flags: list[str], says: str, capsys) -> None:
    code, err = main(
        "run", "--model", "/no/such/model", "--tasks", "pubmedqa", "--demo", *flags, capsys=capsys
    )
    one_line(code, err, says)


def test_a_folder_given_as_a_task_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "x.yaml").mkdir()
    code, err = main("tasks", "validate", str(tmp_path / "x.yaml"), capsys=capsys)
    one_line(code, err, "is a folder, not a task file")
    code, err = main("run", "--model", "m", "--tasks", str(tmp_path / "x.yaml"), capsys=capsys)
    one_line(code, err, "is a folder, not a task file")


def test_an_output_folder_that_is_a_file_is_found_before_the_model_loads(tmp_path: Path, capsys) -> None:
    (tmp_path / "out").write_text("a file")
    args = ["run", "--model", "/no/such/model", "--tasks", "pubmedqa", "--demo"]
    code, err = main(*args, "--output-dir", str(tmp_path / "out"), capsys=capsys)
    one_line(code, err, "--output-dir")
    assert "is a file" in err and "model" not in err.replace("--model", "")
    code, err = main(*args, "--output-dir", str(tmp_path / "out" / "run"), capsys=capsys)
    one_line(code, err, "is a file, not a folder")


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


def test_a_template_the_sandbox_refuses_is_one_line(tmp_path: Path, capsys) -> None:
    task = LABELS.replace('"Specialty of this note?\\nINPUT: {{ text }}\\nOUTPUT:"',
                          "'{{ \"{0.__class__}\".format(text) }}'")  # fmt: skip
    code, err = main(
        "run", "--model", "/no/such/model", "--tasks", str(workspace(tmp_path, task)), capsys=capsys
    )
    one_line(code, err, "the template did something the sandbox forbids")


# ---- 13. exports --------------------------------------------------------------------------------------


def test_nan_values_odd_names_and_formulas_in_exports(tmp_path: Path) -> None:
    from mibe.boards import board, render

    runs = []
    for name, accuracy in (('=HYPERLINK("http://x")', 0.4), ("two\nlines", float("nan")), ("ok", 0.6)):
        out = tmp_path / str(len(runs))
        run(workspace(tmp_path / "w"), out)
        results = json.loads((out / "results.json").read_text())
        results["model"]["name"] = name
        for metric in results["tasks"]["notes"]["metrics"].values():
            metric["value"] = accuracy
        (out / "results.json").write_text(json.dumps(results))
        runs.append(str(out))
    built = board.build(runs, False, False, n_boot=10, seed=1)
    ranked = built.sections[0].rows
    assert [r.row.label for r in ranked if r.rank is not None] == ["ok", '=HYPERLINK("http://x")']
    table = render.text(built).replace(str(tmp_path), "")
    cells = "\n".join(line for line in table.splitlines() if "results.json holds" not in line)
    assert not re.search(r"\bnan\b|\binf\b", cells, re.IGNORECASE)
    assert "notes accuracy: results.json holds nan, not a number" in table
    md = render.markdown(built)
    body = [line for line in md.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in body) and any("two lines" in line for line in body)
    csv_rows = render.csv_text(built).splitlines()
    assert any(
        line.startswith("notes") and ",'=HYPERLINK" in line.replace('"', "") for line in csv_rows
    ) or any("'=HYPERLINK" in line for line in csv_rows)
    assert not any(",=HYPERLINK" in line or ',"=HYPERLINK' in line for line in csv_rows)


# ---- endpoints: --request-timeout reaches the backend; the progress bar closes on failure -------------


class Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_request_timeout_reaches_the_backend_and_never_blocks_a_resume() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        args = ["run", "--model", "m", "--backend", "openai", "--base-url", url, "--request-timeout", "7.5"]
        parsed = cli._parser().parse_args(args)
        parsed.model = parsed.model[0]  # --model may be repeated (a sweep): main picks each in turn
        config = cli._config(parsed)
        assert config.request_timeout == 7.5
        assert factory.make_backend(config).http.idle_timeout == 7.5
        assert "request_timeout" not in api.identity(config)
        assert "--request-timeout" in cli._parser()._subparsers._group_actions[0].choices["run"].format_help()
    finally:
        server.shutdown()


def test_the_progress_bar_is_closed_when_a_batch_fails(tmp_path: Path, monkeypatch) -> None:
    from mibe.runner import batches

    made = []
    real = batches.progress
    monkeypatch.setattr(batches, "progress", lambda *a: made.append(real(*a)) or made[-1])
    with pytest.raises(KeyboardInterrupt):
        run(workspace(tmp_path), tmp_path / "run", backend=scripted(fail_after=1), batch_size=1)
    assert len(made) == 1 and made[0].bar.disable  # tqdm's close() disables the bar


# ---- third pass: task-file fields of the wrong type, data the readers choked on -----------------------


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
        data.read_rows(tmp_path / name)


def test_a_csv_cell_longer_than_csvs_default_limit_is_read(tmp_path: Path) -> None:
    note = "x" * 300_000  # a long clinical note in one cell (csv's default limit is 131,072)
    (tmp_path / "notes.csv").write_text(f"id,text,label\nd0,{note},Surgery\n")
    assert data.read_rows(tmp_path / "notes.csv") == [{"id": "d0", "text": note, "label": "Surgery"}]


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
        data.read_rows(tmp_path / "rows.jsonl")
    (tmp_path / "rows.json").write_text('[{"id": "a", "id": "b"}]')
    with pytest.raises(MibeError, match=r"rows.json: .*the key 'id' appears twice"):
        data.read_rows(tmp_path / "rows.json")
    path = workspace(tmp_path)
    path.write_text(path.read_text() + "metrics: [accuracy]\n")
    with pytest.raises(
        MibeError, match=r"YAML error at line \d+: the key 'metrics' appears twice in one mapping"
    ):
        tasks.load_task(path)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["--data", "notes=a.jsonl", "--data", "notes=b.jsonl"],
            "notes was already given --data notes=a.jsonl",
        ),
        (["--bootstrap", "100001"], "--bootstrap 100001: must be 0 (no intervals) to 100,000 resamples"),
    ],
)
def test_run_flags_that_would_be_silently_lost_or_exhaust_memory(
    tmp_path: Path, argv: list[str], said: str, capsys
) -> None:
    base = ["run", "--model", "/nonexistent-model", "--tasks", str(workspace(tmp_path)), "--output-dir"]
    assert cli.main([*base, str(tmp_path / "out"), *argv]) == 2
    assert said in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_board_bootstrap_past_the_cap_is_one_line(tmp_path: Path, capsys) -> None:
    assert cli.main(["leaderboard", "--bootstrap", "10000000000000"]) == 2
    assert "--bootstrap 10000000000000: must be a positive integer up to 100,000" in capsys.readouterr().err


def test_an_answer_cap_that_fills_the_context_is_one_line(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    argv = ["run", "--model", str(tiny_llama), "--tasks", "pubmedqa", "--demo", "--limit", "1"]
    assert cli.main([*argv, "--max-new-tokens", "5000", "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "max_new_tokens 5000 (--max-new-tokens) leaves no room for a prompt in the model's" in err
    assert "allows -" not in err  # no negative allowance


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


def test_data_files_in_odd_wrappings(tmp_path: Path) -> None:
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    line = b'{"id": "a", "text": "t", "label": "Surgery"}\n'
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + line)  # a byte-order mark: still the first row
    assert data.read_rows(tmp_path / "bom.jsonl") == [{"id": "a", "text": "t", "label": "Surgery"}]
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf[" + line.strip() + b"]")
    assert len(data.read_rows(tmp_path / "bom.json")) == 1
    (tmp_path / "z.jsonl").write_bytes(gzip.compress(line))
    with pytest.raises(MibeError, match=r"z.jsonl: is gzip-compressed; decompress it \(gunzip -k z.jsonl\)"):
        data.read_rows(tmp_path / "z.jsonl")
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["id", "id"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(MibeError, match=r"dup.parquet: column names \['id'\] appear more than once"):
        data.read_rows(tmp_path / "dup.parquet")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "--model", "/m", "--tasks", ","], "--tasks: names no task"),
        (["run", "--model", "/m", "--tasks", ""], "--tasks: names no task"),
        (["data", "check", "--tasks", " , "], "--tasks: names no task"),
        (["run", "--model", "/m", "--tasks", "pubmedqa", "--num-fewshot", "1", "--fewshot-seeds", "1,-2"],
         "each seed must be between 0 and 4294967295"),
        (["leaderboard", "{a}", "--delta-vs-base", "--base", "{a}={a}"], "a run is not its own base"),
        (["leaderboard", "{a}", "--delta-vs-base", "--base", "{a}={b}", "--base", "{a}={c}"],
         "was already given a base"),
        (["leaderboard", "{a}", "--no-published", "--plot", "{tmp}/fig.gif"],
         "name a .png, .pdf or .svg file"),
    ],
)  # fmt: skip
def test_flags_that_name_nothing_or_contradict_are_one_line(
    tmp_path: Path, argv: list[str], said: str, capsys
) -> None:
    names = {"a": tmp_path / "a", "b": tmp_path / "b", "c": tmp_path / "c", "tmp": tmp_path}
    for key in "abc":
        if any("{" + key + "}" in x for x in argv):  # the run folders this case names
            run(workspace(tmp_path / f"w{key}"), names[key])
    capsys.readouterr()
    assert cli.main([x.format(**names) for x in argv]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1


def test_an_edited_copy_of_a_built_in_task_needs_its_own_name(tmp_path: Path) -> None:
    # Under the built-in's name it would share the built-in's leaderboard columns and published rows.
    original = REPO / "tasks" / "pubmedqa.yaml"
    copy = tmp_path / "pubmedqa.yaml"
    copy.write_bytes(original.read_bytes())
    assert tasks.resolve([str(copy)])[0][0].path == original.resolve()  # a plain copy is the built-in task
    copy.write_text(original.read_text().replace("max_new_tokens", "max_new_tokens", 1) + "# my edit\n")
    with pytest.raises(MibeError, match=r"'pubmedqa' is a built-in task's name, but this file differs"):
        tasks.resolve([str(copy)])
