"""One run folder, one reader: a rescored run and a run folder saved before the regrouping show the
numbers of their results.json in the summary table, `mibe leaderboard`, `mibe compare` and `mibe audit`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from mibe import cli
from mibe.boards.board import build as build_board
from mibe.runfolder import summary
from tests.support.paths import FIXTURES
from tests.support.runfiles import results
from tests.support.scriptedruns import scripted_run

FIXTURE = FIXTURES / "runs" / "v1-zero"


def main(*args: object) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A strict run of realistic outputs and the same run rescored with the paper's parser."""
    tmp = tmp_path_factory.mktemp("chain")
    scripted_run(tmp, tmp / "run")
    assert main("rescore", tmp / "run", "--parser", "paper", "--output-dir", tmp / "paper") == 0
    return tmp / "run", tmp / "paper"


def values(run: Path) -> dict[tuple[str, str], float]:
    return {
        (task, metric): m["value"]
        for task, entry in results(run)["tasks"].items()
        for metric, m in entry["metrics"].items()
        if m.get("value") is not None
    }


def test_the_parsers_give_different_numbers_so_the_checks_below_can_fail(pair: tuple[Path, Path]) -> None:
    strict, paper = (values(run) for run in pair)
    assert strict.keys() == paper.keys()
    assert sum(abs(strict[k] - paper[k]) > 1e-6 for k in strict) >= 3


def test_leaderboard_takes_a_rescored_run_and_shows_its_numbers(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "board.csv"
    # Rescore records rescored_from as a mapping; the leaderboard once put it in a set (TypeError).
    assert main("leaderboard", *pair, "--all-metrics", "--no-published", "-o", out) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows
    board = build_board(list(pair), published=False, all_metrics=True, n_boot=50)
    for run in pair:
        want = values(run)
        cells = {
            (c.task, c.metric): x.row.cells[c].value
            for section in board.sections
            for x in section.rows
            if x.row.run_dir == run
            for c in section.columns
            if c in x.row.cells and x.row.cells[c].value is not None
        }
        assert cells == want
    lineage = next(x.row.lineage for s in board.sections for x in s.rows if x.row.run_dir == pair[1])
    assert "paper parser" in lineage["rescored_from"]


def test_compare_shows_each_runs_own_numbers(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    assert main("compare", *pair, "--format", "json", "-o", out) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    strict, paper = (values(run) for run in pair)
    checked = 0
    for task in report["tasks"]:
        for m in task["metrics"]:
            key = (task["task"], m["metric"])
            if m["a"] is None or key not in strict:
                continue
            # Each run under its own parser: B is the paper-parsed run's number, never B re-parsed as A.
            assert m["a"] == pytest.approx(strict[key], abs=1e-9), key
            assert m["b"] == pytest.approx(paper[key], abs=1e-9), key
            assert m["recomputed"] is None
            checked += 1
    assert checked >= 8
    emrqa_f1 = next(
        m for t in report["tasks"] if t["task"] == "emrqa" for m in t["metrics"] if m["metric"] == "f1"
    )
    assert emrqa_f1["a"] != pytest.approx(emrqa_f1["b"])


def test_audit_and_summary_show_the_same_numbers(pair: tuple[Path, Path], tmp_path: Path) -> None:
    from mibe.runfolder import audit

    for run, parser in zip(pair, ("strict", "paper"), strict=True):
        report = audit.audit(run, [], examples=1)
        want = values(run)
        for task in report["tasks"]:
            for metric, by_parser in task["metrics"].items():
                assert by_parser[parser] == pytest.approx(want[task["task"], metric], abs=1e-9)
        table = summary.table(results(run))
        for (_task, metric), value in want.items():
            assert f"{metric}={value:.3f}" in table
    assert main("audit", pair[1], "-o", tmp_path / "audit.md") == 0


def test_a_run_folder_saved_before_the_regrouping_still_reads(tmp_path: Path) -> None:
    old = tmp_path / "v1"
    shutil.copytree(FIXTURE, old)
    before = {p.name: p.read_bytes() for p in old.rglob("*") if p.is_file()}
    assert results(old)["schema_version"] == 1
    assert main("leaderboard", old, "--no-published", "--all-metrics", "-o", tmp_path / "b.md") == 0
    assert main("compare", old, old, "--format", "json", "-o", tmp_path / "c.json") == 0
    assert main("audit", old, "-o", tmp_path / "a.md") == 0
    assert main("rescore", old, "--parser", "paper", "--output-dir", tmp_path / "re") == 0
    compared = json.loads((tmp_path / "c.json").read_text())
    assert {t["task"] for t in compared["tasks"]} == set(results(old)["tasks"])
    assert {p.name: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before  # read, never written
    assert set(results(tmp_path / "re")["tasks"]) == set(results(old)["tasks"])


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('["d0", "yes"]', "not a JSON object"),
        ('{"raw_output": "yes"}', "field 'id' is missing"),
        ('{"id": {"x": 1}}', "field 'id' must be a string or a whole number"),
        ('{"id": true}', "field 'id' must be a string or a whole number"),
        ('{"id": "d0", "draw": [1]}', "field 'draw' must be a whole number"),
        ('{"id": "d0", "draw": "1"}', "field 'draw' must be a whole number"),
        ('{"id": "d0", "raw_output": 3}', "field 'raw_output' must be a string"),
        ('{"id": "d0", "logprobs": ["a"]}', "field 'logprobs.0' must be a number"),
    ],
)
def test_a_samples_line_of_the_wrong_shape_is_one_line(tmp_path: Path, line: str, said: str) -> None:
    from mibe.runfolder import folder
    from mibe.types import MibeError

    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "ok", "draw": 1}\n{"id": 7}\n' + line + "\n")
    with pytest.raises(MibeError, match=rf"^{path}:3: {said}") as info:
        folder.read_samples(path)
    assert "delete the line" in str(info.value)


def test_every_reader_refuses_a_row_of_the_wrong_shape(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    task = sorted((run / "samples").glob("*.jsonl"))[0]
    rows = task.read_text().splitlines()
    rows[0] = json.dumps({**json.loads(rows[0]), "id": ["a", "list"]})
    task.write_text("\n".join(rows) + "\n")
    for argv in (
        ["compare", str(run), str(run)],
        ["rescore", str(run), "--parser", "paper", "--output-dir", str(tmp_path / "r")],
        ["audit", str(run)],
        ["view", str(run), "-o", str(tmp_path / "v.html")],
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{task}:1: field 'id' must be a string" in err and "Traceback" not in err, argv
    assert not (tmp_path / "r").exists()  # refused before anything is written


def test_reports_are_never_written_into_a_run_folder(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    task = sorted((run / "samples").glob("*.jsonl"))[0]
    refused = [
        (["audit", str(run), "-o", str(run / "run.json")], "the audit is written as markdown"),
        (["audit", str(run), "-o", str(tmp_path / "audit.json")], "the audit is written as markdown"),
        (["audit", str(run), "-o", str(run / "samples" / "a.md")], "inside the run folder"),
        (["audit", str(run), "-o", str(task.with_suffix(".md"))], "inside the run folder"),
        (["view", str(run), "-o", str(run / "samples" / "p.html")], "inside the run folder"),
        (["leaderboard", str(run), "--no-published", "-o", str(run / "board.md")], "inside the run folder"),
        (["compare", str(run), str(run), "-o", str(run / "samples" / "c.md")], "inside the run folder"),
    ]
    for argv, said in refused:
        assert cli.main(argv) == 2, argv
        assert said in capsys.readouterr().err, argv
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing touched
    assert cli.main(["audit", str(run), "-o", str(tmp_path / "audit.md")]) == 0
    assert (tmp_path / "audit.md").read_text().startswith("# Parsing audit")


@pytest.mark.parametrize("name", ["../x", "../../../etc/passwd", "a/b", ".hidden", "Upper", ""])
def test_a_task_name_that_is_a_path_is_refused_by_every_reader(tmp_path: Path, name: str, capsys) -> None:
    # samples/<name>.jsonl of "../../x" would read (or write) a file outside the run folder.
    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    results = json.loads((run / "results.json").read_text())
    first = next(iter(results["tasks"]))
    results["tasks"][name] = results["tasks"].pop(first)
    (run / "results.json").write_text(json.dumps(results))
    for argv in (
        ["view", str(run), "-o", str(tmp_path / "p.html")],
        ["leaderboard", str(run), "--no-published"],
        ["compare", str(run), str(run)],
        ["audit", str(run)],
        ["rescore", str(run), "--output-dir", str(tmp_path / "re")],
    ):
        assert cli.main(argv) == 2, argv
        assert f"field 'tasks' holds {name!r}: not a task name" in capsys.readouterr().err, argv


def test_outputs_never_land_in_or_over_a_run(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    sent = tmp_path / "sent"  # a run folder someone sent without its run.json
    shutil.copytree(run, sent)
    (sent / "run.json").unlink()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.html").mkdir()
    before = {p: p.read_bytes() for p in (*run.rglob("*"), *sent.rglob("*")) if p.is_file()}
    refused = [
        (
            ["leaderboard", str(run), "-o", str(sent / "results.json"), "--format", "md"],
            "inside the run folder",
        ),
        (["leaderboard", str(run), "-o", str(run / "samples" / "sub" / "x.md")], "inside the run folder"),
        (["view", str(run), "-o", str(tmp_path / "afile" / "x.html")], "cannot write"),
        (["view", str(run), "-o", str(tmp_path / "adir.html")], "cannot write"),
        (["rescore", str(run), "--output-dir", str(run / "newsub")], "inside the run it reads"),
        (["leaderboard", str(tmp_path / "no\nsuch")], "no\\nsuch: no such run folder"),  # still one line
    ]
    capsys.readouterr()  # the run's own progress lines
    for argv, said in refused:
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert {p: p.read_bytes() for p in (*run.rglob("*"), *sent.rglob("*")) if p.is_file()} == before


def test_a_results_json_that_is_a_folder_stops_a_resume_before_the_model(tmp_path: Path) -> None:
    from mibe.runfolder import writer
    from mibe.types import MibeError

    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    (run / "results.json").unlink()
    (run / "results.json").mkdir()
    with pytest.raises(MibeError, match=r"results.json: is a folder, not a file; the run folder is damaged"):
        writer.check_output(run)


def test_rescore_of_a_metric_the_task_cannot_have_is_one_line(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    data = json.loads((run / "results.json").read_text())
    name = next(t for t, e in data["tasks"].items() if e.get("answer_type") == "choice")
    data["tasks"][name]["metrics"]["bogus"] = {"value": 0.5, "ci95": [0.1, 0.9]}
    (run / "results.json").write_text(json.dumps(data))
    assert cli.main(["rescore", str(run), "--output-dir", str(tmp_path / "re")]) == 2
    assert "names the metric 'bogus', which a choice task does not have" in capsys.readouterr().err
