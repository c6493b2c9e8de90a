"""The typed run record (mibe/runfolder/record.py): a results.json, run.json or samples field of the wrong
type is one line naming the file and field, from every command, never a TypeError inside one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mibe import cli
from mibe.runfolder import record
from tests.support.scriptedruns import scripted_run


def results_problem(data: Any) -> record.Problem:
    return record.problem(record.Results, data)


def run_json_problem(data: Any) -> record.Problem:
    return record.problem(record.RunJson, data)


GOOD: dict[str, Any] = {
    "schema_version": 2,
    "model": {"name": "m", "path": "/models/m", "adapter": None},
    "config": {"seed": 1},
    "skipped": {},
    "timing": {},
    "tasks": {
        "pubmedqa": {
            "protocol": {"task": "pubmedqa", "parser": "strict", "scoring": "generate", "shots": 0,
                         "data": {"fingerprint": "sha256:x"}},
            "n": 3,
            "parse_failures": 0,
            "answer_type": "choice",
            "per_class": None,
            "metrics": {"accuracy": {"value": 0.5, "ci95": [0.1, 0.9]},
                        "bertscore_f1": {"value": None, "ci95": None, "unavailable": "offline"}},
        }
    },
}  # fmt: skip


def changed(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, last = path.split("/")
    here = data
    for key in parents:
        here = here[key]
    here[last] = value
    return data


PROT = "tasks.pubmedqa.protocol"
ACC, ACCF = "tasks/pubmedqa/metrics/accuracy", "tasks.pubmedqa.metrics.accuracy"


@pytest.mark.parametrize(
    ("path", "value", "field", "what"),
    [
        ("tasks", [], "tasks", "must be an object"),
        ("tasks/pubmedqa/protocol/credentialed", "yes", PROT + ".credentialed", "true or false"),
        ("tasks/Bad", {}, "tasks", "not a task name"),
        ("tasks/pubmedqa/protocol/data", 3, PROT + ".data", "an object or a string"),
        ("model", ["m"], "model", "must be an object"),
        ("config", ["x"], "config", "must be an object"),
        ("skipped", ["x"], "skipped", "must be an object"),
        ("timing", "now", "timing", "must be an object"),
        ("model/name", ["m"], "model.name", "must be a string"),
        ("tasks/pubmedqa", ["x"], "tasks.pubmedqa", "must be an object"),
        ("tasks/pubmedqa/protocol", ["x"], "tasks.pubmedqa.protocol", "must be an object"),
        ("tasks/pubmedqa/protocol/parser", ["strict"], "tasks.pubmedqa.protocol.parser", "must be a string"),
        ("tasks/pubmedqa/protocol/shots", -1, "tasks.pubmedqa.protocol.shots", "whole number"),
        ("tasks/pubmedqa/n", -3, "tasks.pubmedqa.n", "whole number >= 0"),
        ("tasks/pubmedqa/parse_failures", None, "tasks.pubmedqa.parse_failures", "a whole number"),
        ("tasks/pubmedqa/protocol/scoring", None, PROT + ".scoring", "a string"),
        ("tasks/pubmedqa/n", True, "tasks.pubmedqa.n", "a whole number"),
        ("tasks/pubmedqa/answer_type", ["choice"], "tasks.pubmedqa.answer_type", "must be a string"),
        ("tasks/pubmedqa/per_class", "x", "tasks.pubmedqa.per_class", "an object"),
        ("tasks/pubmedqa/metrics/accuracy", [0.5], "tasks.pubmedqa.metrics.accuracy", "must be an object"),
        ("tasks/pubmedqa/metrics/accuracy", None, "tasks.pubmedqa.metrics.accuracy", "must be an object"),
        (ACC + "/value", "0.5", ACCF + ".value", "a number"),
        (ACC + "/value", 10**400, ACCF + ".value", "a number"),
        (ACC + "/value", 1e308, ACCF + ".value", "below 1e6"),
        (ACC + "/ci95", ["a", "b"], ACCF + ".ci95.0", "a number"),
        (ACC + "/ci95", [0.9, 0.1], ACCF + ".ci95", "low <= high"),
        (ACC + "/ci95", [0.1], ACCF + ".ci95", "[low, high]"),
    ],
)  # fmt: skip
def test_each_field_of_the_wrong_type_is_named(path: str, value: Any, field: str, what: str) -> None:
    assert results_problem(GOOD) is None
    problem = results_problem(changed(path, value))
    assert problem is not None and problem[0] == field and what in problem[1]


@pytest.mark.parametrize(
    "ok",
    [
        changed(ACC + "/value", float("nan")),  # shown as absent, never ranked
        changed(ACC + "/ci95", [None, None]),
        changed("tasks/pubmedqa/protocol/data", "hub:clinicalnlplab/PubMedQA"),
        {"tasks": {}},  # an old folder with only what it had
    ],
)
def test_what_the_contract_allows_passes(ok: dict) -> None:
    assert results_problem(ok) is None


def test_run_json_fields() -> None:
    assert (
        run_json_problem(
            {"config": {}, "model": {}, "protocols": {"pubmedqa": {"task": "x", "scoring": "generate"}}}
        )
        is None
    )
    assert run_json_problem({"protocols": {"pubmedqa": {}}}) == ("protocols.pubmedqa.task", "is missing")
    assert run_json_problem({"config": []}) == ("config", "must be an object")
    assert run_json_problem({"protocols": {"pubmedqa": []}}) == (
        "protocols.pubmedqa",
        "must be an object",
    )
    assert run_json_problem([]) == ("(the file)", "must be a JSON object")


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda d: d.__setitem__("model", ["m"]), "field 'model' must be an object"),
        (lambda d: d["tasks"][next(iter(d["tasks"]))].__setitem__("n", "3"), "must be a whole number"),
        (
            lambda d: d["tasks"][next(iter(d["tasks"]))]["protocol"].__setitem__("parser", ["paper"]),
            "a string",
        ),
        (
            lambda d: next(iter(d["tasks"].values()))["metrics"].__setitem__("accuracy", [1]),
            "must be an object",
        ),
    ],
)
def test_every_command_says_the_field_in_one_line(tmp_path: Path, edit: Any, said: str, capsys) -> None:
    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    data = json.loads((run / "results.json").read_text())
    edit(data)
    (run / "results.json").write_text(json.dumps(data))
    capsys.readouterr()  # the run's own progress lines
    for argv in (
        ["leaderboard", str(run), "--no-published"],
        ["compare", str(run), str(run)],
        ["audit", str(run)],
        ["rescore", str(run), "--output-dir", str(tmp_path / "re")],
        ["view", str(run), "-o", str(tmp_path / "p.html")],
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert (
            said in err and f"{run / 'results.json'}: field '" in err and len(err.strip().splitlines()) == 1
        ), argv


def test_json_that_python_cannot_hold_is_one_line(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    text = (run / "results.json").read_text()
    (run / "results.json").write_text(text.rstrip()[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert cli.main(["leaderboard", str(run), "--no-published"]) == 2
    assert "JSON that cannot be read" in capsys.readouterr().err


def test_a_value_outside_its_own_interval_still_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    scripted_run(tmp_path, run)
    data = json.loads((run / "results.json").read_text())
    metric = next(iter(data["tasks"].values()))["metrics"]["accuracy"]
    metric["ci95"] = [metric["value"] + 0.1, metric["value"] + 0.2]  # a percentile interval may miss it
    (run / "results.json").write_text(json.dumps(data))
    figure = tmp_path / "board.png"
    assert (
        cli.main(
            ["leaderboard", str(run), "--no-published", "--plot", str(figure), "-o", str(tmp_path / "b.md")]
        )
        == 0
    )
    assert figure.stat().st_size > 0
