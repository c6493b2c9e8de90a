"""Reading defects of the run record (issue 23): each test fails on the code before runfolder/record.py.

Samples are one record per "\\n" (model outputs hold U+2028, U+2029 and U+0085); bytes or fields a
reader cannot take are one line naming the file and line; a -inf log-prob is shown; what is
credentialed comes from the run's record, not from a task file the receiver may lack."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mibe import cli
from mibe.runfolder import record, schemas
from mibe.runner import api
from mibe.types import RunConfig
from tests.support.paths import REPO
from tests.support.scripted import Scripted

SEPARATORS = "\u2028\u2029\x85"
NOTE = "The patient was started on an insulin drip"  # text of the demo MedNLI notes


def separated_run(tmp: Path, out: Path, fail_after: int | None = None) -> dict:
    """A run whose every output holds the three separators str.splitlines() breaks at."""
    config = RunConfig(
        model="scripted",
        tasks=("pubmedqa,pubmed_sum",),
        demo=True,
        limit=3,
        output_dir=str(out),
        batch_size=1,
    )
    backend = Scripted(reply=lambda r: f"yes{SEPARATORS} because{SEPARATORS}", fail_after=fail_after)
    return api.run(config, backend=backend)


def test_outputs_holding_line_separators_run_rescore_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        separated_run(tmp_path, out, fail_after=2)  # killed mid-task: the resume reads its rows back
    done = separated_run(tmp_path, out)  # before: "corrupt sample line" at read-back
    assert set(done["tasks"]) == {"pubmedqa", "pubmed_sum"}
    rows = record.read_lines(out / "samples" / "pubmedqa.jsonl")
    assert len(rows) == 3 and all(SEPARATORS in r["raw_output"] for r in rows)
    assert [r["prediction"] for r in rows] == ["yes"] * 3
    assert cli.main(["rescore", str(out), "--parser", "paper", "--output-dir", str(tmp_path / "re")]) == 0
    again = json.loads((tmp_path / "re" / "results.json").read_text())
    assert again["tasks"]["pubmedqa"]["metrics"] == done["tasks"]["pubmedqa"]["metrics"]


def test_an_lm_eval_file_holding_line_separators_imports(tmp_path: Path) -> None:
    from mibe.runfolder.harness_readers import read_lm_eval

    name = "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl"
    rows = [
        json.loads(line) for line in (REPO / "tests/fixtures/imports" / name).read_text().split("\n") if line
    ]
    rows[0]["resps"][0][0] += SEPARATORS + "more"
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    got = read_lm_eval([path])  # before: "not valid JSON" at line 1
    assert len(got.rows) == len(rows) and got.rows[0].raw_output.endswith(SEPARATORS + "more")


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("separated")
    separated_run(tmp, tmp / "run")
    return tmp / "run"


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda line: line[:20] + b"\xff" + line[20:], "not UTF-8 text (byte 0xff at column 21)"),
        (lambda line: _edit(line, raw_output=7), "field 'raw_output' must be a string"),
        (lambda line: _edit(line, prediction=3.5), "field 'prediction' must be a string or a list"),
        (lambda line: _edit(line, score="1"), "field 'score' must be a number"),
        (lambda line: _edit(line, parse_failed="no"), "field 'parse_failed' must be true or false"),
    ],
)
def test_a_line_no_reader_can_take_is_one_line_from_every_command(
    good_run: Path, tmp_path: Path, damage, said: str, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    for task in ("pubmedqa", "pubmed_sum"):
        path = run / "samples" / f"{task}.jsonl"
        lines = path.read_bytes().split(b"\n")
        lines[1] = damage(lines[1])
        path.write_bytes(b"\n".join(lines))
    for argv in (
        ["view", str(run), "-o", str(tmp_path / "v.html")],
        ["rescore", str(run), "--parser", "paper", "--output-dir", str(tmp_path / "re")],
        ["audit", str(run), "--tasks", "pubmedqa"],
        ["compare", str(run), str(run)],
        ["judge", str(run), "--judge", "hf:/nowhere", "--output-dir", str(tmp_path / "j")],
    ):
        capsys.readouterr()
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert ".jsonl:2: " + said in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "re").exists() and not (tmp_path / "j").exists()


def _edit(line: bytes, **change: object) -> bytes:
    return json.dumps({**json.loads(line), **change}, ensure_ascii=False).encode()


def test_a_minus_infinite_log_prob_is_shown(tiny_llama: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["run", "--model", str(tiny_llama), "--tasks", "pubmedqa", "--demo", "--limit", "2"]
    assert cli.main([*argv, "--scoring", "loglikelihood", "--output-dir", str(run), "--bootstrap", "20"]) == 0
    path = run / "samples" / "pubmedqa.jsonl"
    rows = record.read_lines(path)
    rows[0]["logprobs"][1] = float("-inf")  # a choice an endpoint gives no probability (docs/backends.md)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = tmp_path / "page.html"
    assert cli.main(["view", str(run), "-o", str(page)]) == 0  # before: exit 1 (allow_nan=False)
    assert '"-inf"' in page.read_text()


# ------------------------------------------------------------------------------------ credentialed


def credentialed_task(tmp: Path) -> Path:
    """A user's own credentialed task (a copy of MedNLI under another name): no built-in backs it."""
    text = (REPO / "tasks" / "mednli.yaml").read_text().replace("name: mednli", "name: ward_nli")
    path = tmp / "ward_nli.yaml"
    path.write_text(text)
    return path


def test_a_credentialed_run_received_without_its_task_file_shows_no_note(tmp_path: Path) -> None:
    task = credentialed_task(tmp_path)
    run = tmp_path / "run"
    config = RunConfig(
        model="scripted", tasks=(str(task),), data={"ward_nli": str(REPO / "tasks/demo/mednli.jsonl")},
        limit=3, output_dir=str(run),
    )  # fmt: skip
    api.run(config, backend=Scripted(reply=lambda r: "entailment"))
    assert json.loads((run / "run.json").read_text())["protocols"]["ward_nli"]["credentialed"] is True
    task.unlink()  # received: the task file stays with the sender, and copying dropped the 0600 mode
    for path in run.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    page = tmp_path / "page.html"
    assert cli.main(["view", str(run), "-o", str(page)]) == 0
    assert NOTE not in page.read_text()  # before: every note in the page


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("builtin")
    config = RunConfig(
        model="scripted", tasks=("mednli,pubmedqa",), demo=True, limit=2, output_dir=str(tmp / "run")
    )
    api.run(config, backend=Scripted(reply=lambda r: "entailment yes"))
    return tmp / "run"


@pytest.mark.parametrize(
    ("edit", "hidden"),
    [
        ({}, {"mednli"}),  # recorded
        ({"credentialed": None}, {"mednli"}),  # a schema 2 folder: the built-ins' own status (hashes match)
        ({"credentialed": None, "task_file_hash": "0" * 16}, {"mednli", "pubmedqa"}),  # unknown
        ({"credentialed": False}, {"mednli"}),  # the built-in file says credentialed: it wins
    ],
)
def test_what_is_credentialed_comes_from_the_record(
    builtin_run: Path, tmp_path: Path, edit: dict, hidden: set
) -> None:
    run = tmp_path / "run"
    shutil.copytree(builtin_run, run)
    results = json.loads((run / "results.json").read_text())
    for entry in results["tasks"].values():
        entry["protocol"].update(edit)
        if edit.get("credentialed", 0) is None:
            del entry["protocol"]["credentialed"]
    (run / "results.json").write_text(json.dumps(results))
    for path in run.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    page = tmp_path / "page.html"
    assert cli.main(["view", str(run), "-o", str(page)]) == 0
    text = page.read_text()
    for task in ("mednli", "pubmedqa"):
        prompt = record.read_lines(run / "samples" / f"{task}.jsonl")[0]["prompt"]
        assert (json.dumps(prompt)[1:60] not in text) == (task in hidden), task


# ------------------------------------------------------------------------------------ versions


def test_a_folder_of_a_newer_mibe_is_one_line(good_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    results = json.loads((run / "results.json").read_text())
    results["schema_version"] = record.SCHEMA_VERSION + 1
    (run / "results.json").write_text(json.dumps(results))
    assert cli.main(["leaderboard", str(run), "--no-published"]) == 2
    err = capsys.readouterr().err
    said = (
        f"written by a newer mibe (schema {record.SCHEMA_VERSION + 1}; this mibe reads up to 3): upgrade mibe"
    )
    assert said in err and len(err.strip().splitlines()) == 1


def test_docs_schemas_match_the_models() -> None:
    folder = REPO / "docs" / "schemas"
    for name, schema in schemas.schemas().items():
        assert (folder / name).read_text() == schemas.schema_text(schema), (
            f"run python -m mibe.runfolder.schemas ({name})"
        )
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(schemas.schemas())
    assert schemas.main(["--check"]) == 0


# ------------------------------------------------------------------------------------ no answer


def test_no_answer_before_schema_3_is_read_as_none_for_label_kinds_only() -> None:
    rows = [
        {"id": "a", "prediction": "missing", "parse_failed": True},
        {"id": "b", "prediction": "missing", "parse_failed": False},  # a model wrote the word
        {"id": "c", "prediction": "yes", "parse_failed": False},
    ]
    assert [r["prediction"] for r in record.no_answer(rows, 2, "choice")] == [None, None, "yes"]
    assert [r["prediction"] for r in record.no_answer(rows, 2, "text")] == [None, "missing", "yes"]
    assert [r["prediction"] for r in record.no_answer(rows, 3, "choice")] == ["missing", "missing", "yes"]
    assert rows[0]["prediction"] == "missing"  # the rows read (and cached) are never changed


@pytest.mark.parametrize("task", ["pubmedqa", "mednli", "ddi2013"])
def test_an_old_folder_recomputes_its_recorded_missing_rate(task: str) -> None:
    from mibe.runfolder import saved
    from mibe.scoring import kinds

    run = saved.read_run(REPO / "tests/fixtures/runs/v1-zero")  # schema 1: "missing" was no answer
    entry, rows = run.results["tasks"][task], saved.rows(run, task) or ()
    assert any(r["prediction"] is None for r in rows)
    golds, preds = [r["gold"] for r in rows], [r["prediction"] for r in rows]
    labels = entry["per_class"]["labels"]
    got = kinds.score_task("choice", ["accuracy", "missing_rate"], golds, preds, labels, "strict", seed=1234)
    for metric in ("accuracy", "missing_rate"):  # before: "missing" read as a label, missing_rate 0
        assert got["metrics"][metric]["value"] == pytest.approx(entry["metrics"][metric]["value"]), metric
