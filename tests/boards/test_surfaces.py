"""One number per fact: the same two runs through every surface (results.json, the run's summary,
`leaderboard`, `compare`, `audit`, `view`, `rescore`) give the same parse-failure counts and the same
p-values; a document whose parse failed never has a full per-document score."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from mibe.boards import compare, compare_text, render
from mibe.boards.board import build as build_board
from mibe.boards.view import diff_runs, render_view
from mibe.boards.view_runs import load
from mibe.runfolder import audit, rescore, summary
from mibe.runfolder import saved as saved_run
from mibe.runner import api
from mibe.textout import p_text
from mibe.types import RunConfig
from tests.support.scripted import Scripted

N = 40
HALLMARKS = ("angiogenesis", "invasion", "immune")


def _gold_labels(i: int) -> list[str]:
    return [] if i % 5 == 0 else [HALLMARKS[i % 3]]  # every fifth abstract has no hallmark


def _data(folder: Path) -> tuple[Path, Path]:
    """Two user task files: a single-label one (accuracy: McNemar) and a multi-label one (HoC-like,
    with documents whose gold is empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"q{i}", "text": f"question {i}", "label": ("yes", "no")[i % 2]} for i in range(N)]
    (folder / "yesno.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "yesno.yaml").write_text(
        "name: yesno\ndataset: {source: yesno.jsonl}\n"
        'template: "Q: {{ text }}\\nA:"\ntarget: label\n'
        "answer: {type: choice, choices: ['yes', 'no']}\nmetrics: [accuracy, macro_f1, missing_rate]\n"
    )
    rows = [{"id": f"h{i}", "text": f"abstract {i}", "labels": _gold_labels(i)} for i in range(N)]
    (folder / "marks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "marks.yaml").write_text(
        "name: marks\ndataset: {source: marks.jsonl}\n"
        'template: "Hallmarks of: {{ text }}\\nAnswer:"\ntarget: labels\n'
        f"answer: {{type: multi_label, choices: [{', '.join(HALLMARKS)}]}}\nmetrics: [macro_f1]\n"
    )
    return folder / "yesno.yaml", folder / "marks.yaml"


def _reply(wrong: set[int], empty: set[int]):
    def reply(request) -> str:
        i = int(re.search(r"(\d+)", request.prompt.split("\n")[0]).group(1))
        if request.prompt.startswith("Q:"):
            right = ("yes", "no")[i % 2]
            return "" if i in empty else (("no", "yes")[i % 2] if i in wrong else right)
        if i in empty:
            return ""  # no hallmark named: a parse failure under the strict parser
        gold = _gold_labels(i)
        return "; ".join(HALLMARKS[(i + 1) % 3 : (i + 1) % 3 + 1] if i in wrong else gold) or "none"

    return reply


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("surfaces")
    tasks = tuple(map(str, _data(root / "data")))
    out = []
    for name, wrong, empty in (
        ("a", set(range(0, 40, 7)), {0, 5, 9}),
        ("b", set(range(1, 40, 3)), {5, 10, 11}),
    ):
        config = RunConfig(model=f"scripted-{name}", tasks=tasks, output_dir=str(root / name), bootstrap=200)
        api.run(config, backend=Scripted(reply=_reply(wrong, empty)))
        out.append(root / name)
    return out[0], out[1]


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _rows(run: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]


def test_parse_failure_counts_agree_on_every_surface(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    report = compare.compare(a, b, n_boot=200)
    board = build_board([a, b], n_boot=200)
    lines = list(__import__("csv").DictReader(__import__("io").StringIO(render.csv_text(board))))
    for side, run in (("a", a), ("b", b)):
        results = _results(run)
        table = summary.table(results)
        audited = {t["task"]: t for t in audit.audit(str(run), [], 0, False)["tasks"]}
        page = render_view([load(run)])
        for task in ("yesno", "marks"):
            rows = _rows(run, task)
            counted = sum(1 for r in rows if r["parse_failed"])
            assert counted > 0 and results["tasks"][task]["parse_failures"] == counted
            assert re.search(rf"^{task}\s+{N}\s+generate\s+{counted}\s", table, flags=re.M), table
            on_board = {int(x["parse_failures"]) for x in lines if x["task"] == task and x["run"] == str(run)}
            assert on_board == {counted}
            entry = next(t for t in report["tasks"] if t["task"] == task)
            assert entry["parse_failures"][side] == counted
            assert f"parse failures A {entry['parse_failures']['a']}, B {entry['parse_failures']['b']}" in (
                compare_text.render(report, "md")
            )
            assert audited[task]["parse_failures"]["strict"] == counted  # the run's own parser
            assert f"parse failures {counted}," in page
            # A failed parse never scores, so the viewer's "full score" filter never lists it.
            assert all(r["score"] == 0 for r in rows if r["parse_failed"])
        again = rescore.rescore(run, "strict", [], tmp_path / f"strict-{side}")
        paper = rescore.rescore(run, "paper", [], tmp_path / f"paper-{side}")
        for task in ("yesno", "marks"):
            assert again["tasks"][task]["parse_failures"] == results["tasks"][task]["parse_failures"]
            assert paper["tasks"][task]["parse_failures"] == audited[task]["parse_failures"]["paper"]
        # The paper's rule: an empty answer to an empty gold is no parse failure (documents 0 and 5,
        # 10 have no hallmark), so the strict and paper counts differ exactly there, as audit says.
        marks = audited["marks"]
        assert (
            marks["failure_differs"]
            == marks["parse_failures"]["strict"] - marks["parse_failures"]["paper"]
            > 0
        )


def test_p_values_agree_between_compare_view_and_leaderboard(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    report = compare.compare(a, b)  # the defaults the viewer uses: 1,000 resamples, seed 1234
    diffs = {d.task: d for d in diff_runs(load(a), load(b))}
    page = render_view([load(a), load(b)])
    for task, metric in (("yesno", "accuracy"), ("marks", "macro_f1")):
        entry = next(
            m for t in report["tasks"] if t["task"] == task for m in t["metrics"] if m["metric"] == metric
        )
        d = diffs[task]
        assert d.metric == metric and d.tested is not None
        assert d.tested["p_bootstrap"] == entry["p_bootstrap"] and d.tested["ci95"] == entry["ci95"]
        assert html.escape(p_text(entry["p_bootstrap"])) in page  # "< 0.001" at the floor 1/(B+1)
        # compare's Holm-adjusted p, over compare's whole family, in its own column
        assert d.tested["p_holm"] == entry["p_holm"] is not None and d.family == report["family"]["size"]
        assert f"<td>{html.escape(p_text(entry['p_holm']))}</td></tr>" in page
        if metric == "accuracy":
            assert d.tested["mcnemar"]["p"] == entry["mcnemar"]["p"]
    board = build_board([a, b], n_boot=1000)
    (section,) = board.sections
    checked = 0
    for column in section.columns:
        verdict = section.verdicts.get(column)
        entry = next(
            m
            for t in report["tasks"]
            if t["task"] == column.task
            for m in t["metrics"]
            if m["metric"] == column.metric
        )
        if verdict is not None and verdict.p is not None:  # two rows: Holm over one test is the raw p
            assert verdict.p == pytest.approx(entry["p"])
            checked += 1
    assert checked >= 2
    saved_run.read_run(a)  # the folders are still read as they were
