"""`mibe audit`: each of the paper's parsing flaws (docs/scoring-rules.md) reproduced by `paper`, fixed by
`strict`, and named by the audit's classifier; the audit of a run with realistic outputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mibe.runfolder import audit
from mibe.runner import api
from mibe.scoring import kinds
from mibe.types import RunConfig
from tests.support.paths import PUBLIC, needs_public_data
from tests.support.scriptedruns import CREDENTIALED, FLAWS, TASKS, scripted_run, task


def test_every_flaw_kind_is_covered() -> None:
    covered = {row[5] for row in FLAWS}
    assert covered == set(audit.DISAGREEMENT_KINDS) | {None}


@pytest.mark.parametrize(("name", "output", "gold", "paper", "strict", "kind"), FLAWS)
def test_paper_reproduces_strict_fixes_audit_names(
    name: str, output: str, gold, paper, strict, kind: str | None
) -> None:
    t = task(name)
    assert kinds.parse_for(t, output, "paper").value == paper
    assert kinds.parse_for(t, output, "strict").value == strict
    assert audit.classify(output, t, gold) == kind
    if kind not in (None, "other"):  # the flaw costs the paper, or strict gets the gold right
        paper_score = kinds.doc_score(t.answer_type, gold, paper, "paper")
        strict_score = kinds.doc_score(t.answer_type, gold, strict, "strict")
        assert paper_score != strict_score or strict is None


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("realistic")
    scripted_run(tmp, tmp / "run")
    return tmp / "run"


def test_audit_counts_kinds_and_scores_both_parsers(realistic: Path) -> None:
    report = audit.audit(realistic, [], examples=5)
    by_task = {t["task"]: t for t in report["tasks"]}
    assert list(by_task) == TASKS
    for name in TASKS:
        rows = [r for r in FLAWS if r[0] == name]
        expected = Counter(r[5] for r in rows if r[5] is not None)
        got = by_task[name]
        assert got["kinds"] == dict(expected), name
        assert got["differ"] == sum(expected.values()) and got["n"] == len(rows)
        t = task(name)
        golds = [r[2] for r in rows]
        for parser, column in (("paper", 3), ("strict", 4)):
            scored = kinds.score_task(
                t.answer_type,
                t.metrics,
                golds,
                [r[column] for r in rows],
                t.choices,
                parser,
                seed=0,
                n_boot=0,
            )
            for metric, value in scored["metrics"].items():
                assert got["metrics"][metric][parser] == pytest.approx(value["value"], abs=1e-12), (
                    name,
                    metric,
                )


def test_examples_shown_and_credentialed_left_out(realistic: Path) -> None:
    report = audit.audit(realistic, [], examples=1)
    for t in report["tasks"]:
        if t["task"] in CREDENTIALED:
            assert t["examples"] is None
        else:
            assert set(t["examples"]) == set(t["kinds"])
            assert all(len(shown) == 1 for shown in t["examples"].values())
    text = audit.render(report, md=True)
    assert "The answer is no, not yes." in text
    assert "lisinopril" not in text and "not entailment but contradiction" not in text
    assert text.count("Examples left out: credentialed data") == 2
    shown = audit.render(audit.audit(realistic, ["emrqa"], 3, show_credentialed=True), md=False)
    assert "aspirin 81 mg daily" in shown and "== emrqa ==" in shown and "character-set F1" in shown


def test_cli_markdown_file_terminal_and_refusals(realistic: Path, tmp_path: Path, capsys) -> None:
    from mibe import cli

    report = tmp_path / "audit.md"
    assert cli.main(["audit", str(realistic), "-o", str(report)]) == 0
    md = report.read_text()
    assert md.startswith("# Parsing audit") and "| pubmedqa | 5 | 4 (80.0%) | macro_f1 |" in md
    assert cli.main(["audit", str(realistic), "--tasks", "medqa"]) == 0
    out = capsys.readouterr().out
    assert "== medqa ==" in out and "stray capital letter  2" in out and "pubmedqa" not in out
    for argv, says in (
        (["audit", str(tmp_path / "nowhere")], "no such run folder"),
        (["audit", str(realistic), "--tasks", "bionli"], "holds no task 'bionli'"),
        (["audit", str(realistic), "--examples", "-1"], "--examples -1"),
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err


@pytest.mark.slow
@needs_public_data()
def test_audit_of_tiny_model_run_over_public_samples(tiny_llama: Path, tmp_path: Path) -> None:
    names = ("pubmedqa", "medqa", "medmcqa", "ddi2013", "hoc", "mtsample")
    config = RunConfig(
        model=str(tiny_llama),
        tasks=(",".join(names),),
        data_dir=str(PUBLIC),
        output_dir=str(tmp_path / "run"),
        limit=4,
        max_new_tokens=8,
        bootstrap=50,
    )
    api.run(config)
    report = audit.audit(tmp_path / "run", [])
    assert [t["task"] for t in report["tasks"]] == list(names)
    for t in report["tasks"]:
        assert t["n"] == 4 and 0 <= t["differ"] <= 4 and sum(t["kinds"].values()) == t["differ"]
        assert set(t["metrics"]) >= {"macro_f1"} and t["note"] is None
