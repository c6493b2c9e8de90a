"""Paper parity end to end: `--protocol paper` scores every task by the paper's rules through the same
code whatever the backend (here a loopback OpenAI-compatible endpoint with canned outputs), HoC joins
hallmarks with ";", DDI's rule comes from its task file, and the scorer version keeps numbers scored
under different rules out of one leaderboard column."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mibe import cli, prompts, tasks
from mibe.boards import table as board_model
from mibe.boards.board import build as build_board
from mibe.scoring import kinds, paper
from tests.support.loopback import JSONHandler, serving

# Outputs that expose the paper's rules: repeated characters (emrQA), a tag prefixed by "Output: " and
# a cut-off output (i2b2), capitalised and empty hallmarks (HoC), two DDI labels.
CANNED = {
    "emrqa": ["aspirin", "Metoprolol 25 mg daily.", "the patient", ""],
    "i2b2_2010": [
        'Output: <span class="problem">chest pain</span> now',
        '<span class="problem">chest</span>-pain',
        "no tags at all",
    ],
    "hoc": ["", "Inducing angiogenesis", "sustaining proliferative signaling;evading growth suppressors"],
    "ddi2013": ["DDI-effect", "DDI-effect or DDI-int", "ddi-false"],
    "pubmedqa": ["I cannot tell.", "maybe", "Yes."],
}


SERVED: dict[str, int] = {}  # outputs handed out per task so far: each canned output is used in turn
LOCK = threading.Lock()


def canned(prompt: str) -> str:
    for task, outputs in CANNED.items():
        if TAGS[task] in prompt:
            with LOCK:
                SERVED[task] = SERVED.get(task, -1) + 1
                return outputs[SERVED[task] % len(outputs)]
    return "yes"


# A phrase each task's prompt holds (its template), to route a prompt to its canned outputs.
TAGS = {
    "emrqa": "extract the relevant text segment",
    "i2b2_2010": "HTML",
    "hoc": "Hallmarks of Cancer",
    "ddi2013": "DRUG",
    "pubmedqa": "yes, no, or maybe",
}


class _Canned(JSONHandler):
    def do_GET(self) -> None:
        self._reply({"data": [{"id": "canned", "max_model_len": 100000}]})

    def do_POST(self) -> None:
        self._reply({"choices": [{"index": 0, "text": canned(self._body()["prompt"])}]})


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with serving(_Canned) as url:
        yield url


def rows(run: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def paper_run(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("parity") / "run"
    names = ",".join(CANNED)
    args = ["run", "--backend", "openai", "--base-url", endpoint, "--model", "canned", "--tasks", names]
    assert cli.main([*args, "--demo", "--protocol", "paper", "--output-dir", str(out)]) == 0
    return out


def test_the_canned_outputs_reach_every_task(paper_run: Path) -> None:
    for task, outputs in CANNED.items():
        seen = {r["raw_output"] for r in rows(paper_run, task)}
        assert seen == set(outputs[: len(seen)]) and len(seen) == min(3, len(outputs)), task


def _value(x: object) -> object:
    return tuple(x) if isinstance(x, list) else x


def test_paper_mode_reproduces_the_rules_whatever_the_backend(paper_run: Path) -> None:
    results = json.loads((paper_run / "results.json").read_text())["tasks"]
    for name in CANNED:
        task = tasks.load_task(tasks.builtin_paths()[name])
        got = rows(paper_run, name)
        golds = [_value(r["gold"]) for r in got]
        for row, gold in zip(got, golds, strict=True):
            assert _value(row["prediction"]) == kinds.parse_for(task, row["raw_output"], "paper", gold).value
        entry = results[name]
        assert entry["protocol"]["parser"] == "paper"
        assert entry["protocol"]["scorer_version"] == kinds.scorer_version(task.answer_type, "paper")
        if name == "emrqa":  # the paper's F1 written out here: distinct shared / full counts, best gold
            f1 = np.mean(
                [
                    paper.emrqa_paper_scores(g, r["raw_output"].strip())[1]
                    for g, r in zip(golds, got, strict=True)
                ]
            )
            assert entry["metrics"]["f1"]["value"] == pytest.approx(f1)
        if name == "i2b2_2010":
            counts = np.sum(
                [
                    paper.i2b2_paper_counts(g, r["raw_output"].strip())
                    for g, r in zip(golds, got, strict=True)
                ],
                0,
            )
            p, r = counts[0] / max(counts[1], 1), counts[0] / max(counts[2], 1)
            f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
            assert entry["metrics"]["entity_f1"]["value"] == pytest.approx(f1)


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ("aspirin", "aspirin", (1.0, 6 / 7)),  # 6 distinct characters of 7
        ("metoprolol 25 mg daily", "Metoprolol 25 mg daily.", (1.0, 14 / 19)),  # 14 distinct of 19
        ("abc", "cba", (0.0, 1.0)),  # no repeats: the same character set scores 1
    ],
)
def test_emrqa_worked_cases(gold: str, pred: str, expected: tuple[float, float]) -> None:
    assert paper.emrqa_paper_scores(gold, pred) == pytest.approx(expected)


def test_hoc_joins_hallmarks_with_a_bare_semicolon_and_empty_on_empty_is_no_failure() -> None:
    assert prompts.gold_text(("evading growth suppressors", "inducing angiogenesis")) == (
        "evading growth suppressors;inducing angiogenesis"
    )
    hoc = tasks.load_task(tasks.builtin_paths()["hoc"])
    assert kinds.parse_for(hoc, "", "paper", ()).failed is False  # the paper compares two empty vectors
    assert kinds.parse_for(hoc, "", "paper", ("inducing angiogenesis",)).failed is True
    assert kinds.parse_for(hoc, "", "strict", ()).failed is True


def test_ddi_rule_comes_from_its_task_file(tmp_path: Path) -> None:
    ddi = tasks.load_task(tasks.builtin_paths()["ddi2013"])
    assert ddi.paper_match == "exactly_one"
    assert kinds.parse_for(ddi, "DDI-effect or DDI-int", "paper").value is None
    plain = tmp_path / "ddi_first.yaml"
    text = (tasks.builtin_paths()["ddi2013"]).read_text().replace(", paper_match: exactly_one", "")
    plain.write_text(text.replace("name: ddi2013", "name: ddi_first"))
    first = tasks.load_task(plain)
    assert kinds.parse_for(first, "DDI-effect or DDI-int", "paper").value == "DDI-effect"


def test_bad_paper_match_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(tasks.builtin_paths()["ddi2013"].read_text().replace("exactly_one", "sometimes"))
    with pytest.raises(Exception, match=r"answer\.paper_match"):
        tasks.load_task(bad)


def test_scorer_versions_never_share_a_column(paper_run: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    results = json.loads((paper_run / "results.json").read_text())
    for entry in results["tasks"].values():  # as a run scored before the corrected rules
        entry["protocol"].pop("scorer_version")
    (old / "results.json").write_text(json.dumps(results))
    board = build_board([paper_run, old], published=False, all_metrics=True, n_boot=20)
    emrqa = {c for s in board.sections for c in s.columns if c.task == "emrqa" and c.metric == "f1"}
    assert len(emrqa) == 2
    keys = {dict(board_model.protocol_key("emrqa", c.protocol))["scorer_version"] for c in emrqa}
    assert keys == {"3", "1"}  # a folder from before versioning was scored by version 1


def test_published_rows_share_the_column_of_a_paper_run_scored_today() -> None:
    board = build_board([], n_boot=10)
    (section,) = board.sections
    versions = {c.task: c.protocol["scorer_version"] for c in section.columns}
    # emrQA and i2b2 3: "missing" is text (and i2b2 outputs unstripped); HoC 2; summaries 2
    assert versions["emrqa"] == versions["i2b2_2010"] == 3
    assert versions["hoc"] == versions["pubmed_sum"] == 2
    assert versions["pubmedqa"] == 1
