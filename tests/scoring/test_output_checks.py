"""mibe.scoring.output_checks: warnings for broken outputs (cut, empty, why), and the run summary that
shows them and says why a metric is n/a."""

from __future__ import annotations

import pytest

from mibe.runfolder import summary
from mibe.scoring import output_checks


@pytest.mark.parametrize(
    ("outputs", "cut", "expected"),
    [
        (["", " ", "\n", "", "x"], [False] * 5, ["4 of 5 outputs are empty"]),
        (["", "", "a", "b", "c"], [False] * 5, []),
        (["yes"] * 4 + ["no"], [False] * 5, ["4 of 5 outputs are the same text ('yes')"]),
        (["yes", "yes"], [False] * 2, []),  # two documents agreeing say nothing
        (["a", "b", "c", "d", "e"], [True] * 4 + [False], ["4 of 5 outputs were cut at the 16-token limit"]),
        (["a", "b", "c", "d", "e"], [True] * 3 + [False] * 2, []),
        ([], [], []),
    ],
)
def test_output_checks_table(outputs: list[str], cut: list[bool], expected: list[str]) -> None:
    found = output_checks.check(outputs, cut, "Q: x\nThe answer is:", ["\n\n"], False, 16)
    assert len(found) == len(expected)
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start) and "likely cause" in line and "\n" not in line


@pytest.mark.parametrize(
    ("stop", "chat", "has", "lacks"),
    [
        (["\n\n"], False, ["The answer is:'", "stop string", "--chat-template"], []),
        ([], True, ["The answer is:'"], ["stop string", "--chat-template"]),
    ],
)
def test_empty_output_causes(stop: list[str], chat: bool, has: list[str], lacks: list[str]) -> None:
    (line,) = output_checks.check([""] * 5, [False] * 5, "Q: x\nThe answer is:", stop, chat, 16)
    assert all(h in line for h in has) and not any(x in line for x in lacks)


def test_summary_shows_warnings_and_why_a_metric_is_na() -> None:
    entry = {
        "protocol": {"scoring": "generate"},
        "n": 5,
        "parse_failures": 0,
        "metrics": {"rouge_l": {"value": 0.1, "ci95": [0, 0.2]}, "bertscore_f1": {
            "value": None, "ci95": None, "unavailable": "BERTScore model 'bert' unavailable: offline"}},
        "warnings": ["5 of 5 outputs are empty; likely cause: x"],
    }  # fmt: skip
    text = summary.table({"tasks": {"t": entry}})
    assert "warning: t: 5 of 5 outputs are empty" in text
    assert "bertscore_f1=n/a (note below)" in text and "--bertscore-model PATH" in text
