"""Few-shot draws (`--fewshot-seeds`) on the tiny model: resume per draw, flag errors, and every reader
(compare, leaderboard, rescore, audit, calibration, redaction) on runs of several draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from mibe import cli
from mibe.boards import compare, render
from mibe.boards.board import build as build_board
from mibe.runfolder.record import SCHEMA_VERSION
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support import demo
from tests.support.references import reference_calibration
from tests.support.runfiles import results, samples


def draw_run(model: Path, out: Path, seeds: tuple[int, ...], scoring: str = "loglikelihood") -> dict:
    options = {"limit": 3, "num_fewshot": 1, "scoring": scoring, "bootstrap": 200}
    return demo.run(model, out, ("pubmedqa",), fewshot_seeds=seeds, **options)


def test_fewshot_draws_resume_per_draw_and_extend(tiny_llama: Path, tmp_path: Path) -> None:
    run = tmp_path / "draws"
    draw_run(tiny_llama, run, (1,))
    first = (run / "samples" / "pubmedqa.jsonl").read_text()
    assert [r["draw"] for r in samples(run, "pubmedqa")] == [1, 1, 1]
    # Killed between draws, or a seed added later: the same command with seeds 1,2 scores draw 2 only.
    out = draw_run(tiny_llama, run, (1, 2))
    text = (run / "samples" / "pubmedqa.jsonl").read_text()
    assert text.startswith(first) and len(text.splitlines()) == 6  # draw 1's rows kept, not redone
    rows = samples(run, "pubmedqa")
    by_draw = {d: sorted((r for r in rows if r["draw"] == d), key=lambda r: r["index"]) for d in (1, 2)}
    assert [r["id"] for r in by_draw[1]] == [r["id"] for r in by_draw[2]]  # the same documents
    assert [r["shots"] for r in by_draw[1]] != [r["shots"] for r in by_draw[2]]  # other shots
    entry = out["tasks"]["pubmedqa"]
    assert entry["fewshot_seeds"] == [1, 2] and entry["protocol"]["fewshot_seeds"] == [1, 2]
    per_draw = [
        accuracy_score([r["gold"] for r in by_draw[d]], [r["prediction"] for r in by_draw[d]]) for d in (1, 2)
    ]
    acc = entry["metrics"]["accuracy"]
    assert acc["values"] == pytest.approx(per_draw)
    assert [entry["draws"][str(d)]["metrics"]["accuracy"]["value"] for d in (1, 2)] == pytest.approx(per_draw)
    assert acc["value"] == pytest.approx(np.mean(per_draw)) and acc["sd"] == pytest.approx(
        np.std(per_draw, ddof=1)
    )
    assert acc["ci95"][0] <= acc["value"] <= acc["ci95"][1]
    # Resumed and extended equals one uninterrupted run of both draws.
    whole = draw_run(tiny_llama, tmp_path / "whole", (1, 2))["tasks"]["pubmedqa"]
    assert whole["metrics"] == entry["metrics"] and whole["draws"] == entry["draws"]
    assert results(run)["schema_version"] == SCHEMA_VERSION
    with pytest.raises(MibeError, match="different config"):  # dropping a draw is not an extension
        draw_run(tiny_llama, run, (2,))
    board = render.text(build_board([run], published=False, n_boot=100))
    assert f"{acc['value']:.3f} ± {acc['sd']:.3f}" in board and "×2 draws" in board


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fewshot-seeds", "1,2"], "--num-fewshot"),
        (["--num-fewshot", "1", "--fewshot-seeds", "1,x"], "integers"),
        (["--num-fewshot", "1", "--fewshot-seeds", "3,3"], "twice"),
    ],
)
def test_fewshot_seeds_flag_errors_are_one_line(argv: list[str], message: str, capsys) -> None:
    assert cli.main(["run", "--model", "x", "--tasks", "pubmedqa", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_compare_and_board_on_tiny_draw_runs(tiny_llama: Path, tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    entry_a = draw_run(tiny_llama, a, (1, 2))["tasks"]["pubmedqa"]
    entry_b = draw_run(tiny_llama, b, (3, 4))["tasks"]["pubmedqa"]
    report = compare.compare(a, b, n_boot=100, seed=1)
    (task,) = report["tasks"]
    assert task["n_shared"] == 3 and task["draws"] == {"a": [1, 2], "b": [3, 4]}
    for m in task["metrics"]:  # every number is the one results.json reports
        assert m["a"] == pytest.approx(entry_a["metrics"][m["metric"]]["value"])
        assert m["b"] == pytest.approx(entry_b["metrics"][m["metric"]]["value"])
        assert m["recomputed"] is None
    board = build_board([a, b], published=False, n_boot=100)
    assert "×2 draws" in render.text(board)


@pytest.mark.slow
def test_rescore_and_audit_take_runs_of_several_draws(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.runfolder import audit, rescore

    run = tmp_path / "gen"
    entry = draw_run(tiny_llama, run, (1, 2, 3), scoring="generate")["tasks"]["pubmedqa"]
    parser = entry["protocol"]["parser"]
    # The run's own parser again: every number as the run wrote it, each draw's and the summary.
    again = rescore.rescore(run, parser, [], tmp_path / "again")["tasks"]["pubmedqa"]
    assert again["metrics"] == entry["metrics"] and again["fewshot_seeds"] == [1, 2, 3]
    assert {d: e["metrics"] for d, e in again["draws"].items()} == {
        d: e["metrics"] for d, e in entry["draws"].items()
    }
    other = "paper" if parser == "strict" else "strict"
    new = rescore.rescore(run, other, [], tmp_path / "other")["tasks"]["pubmedqa"]
    rows = samples(tmp_path / "other", "pubmedqa")
    assert len(rows) == 9 and {r["draw"] for r in rows} == {1, 2, 3}
    # No answer (None) is a label no gold holds, as mibe's metrics count it (docs/scoring-rules.md).
    per_draw = [
        accuracy_score(
            [r["gold"] for r in rows if r["draw"] == d],
            ["(no answer)" if r["prediction"] is None else r["prediction"] for r in rows if r["draw"] == d],
        )
        for d in (1, 2, 3)
    ]
    acc = new["metrics"]["accuracy"]
    assert acc["values"] == pytest.approx(per_draw) and acc["value"] == pytest.approx(np.mean(per_draw))
    assert acc["sd"] == pytest.approx(np.std(per_draw, ddof=1)) and new["protocol"]["parser"] == other
    assert [new["draws"][str(d)]["metrics"]["accuracy"]["value"] for d in (1, 2, 3)] == pytest.approx(
        per_draw
    )
    assert new["parse_failures"] == sum(r["parse_failed"] for r in rows)
    # The audit reads all nine outputs and reports each parser's mean over the draws.
    (task,) = audit.audit(run, [])["tasks"]
    assert task["n"] == 9 and task["draws"] == 3
    for metric in ("accuracy", "macro_f1"):
        assert task["metrics"][metric][parser] == pytest.approx(entry["metrics"][metric]["value"])
        assert task["metrics"][metric][other] == pytest.approx(new["metrics"][metric]["value"])
    assert "of 9 outputs (3 shot draws; metrics: mean over draws)" in audit.render(
        audit.audit(run, []), md=False
    )


@pytest.mark.slow
def test_calibration_of_a_run_of_several_draws(tiny_llama: Path, tmp_path: Path) -> None:
    run = tmp_path / "drawn"
    entry = draw_run(tiny_llama, run, (1, 2, 3))["tasks"]["pubmedqa"]
    rows = samples(run, "pubmedqa")
    choices = ["yes", "no", "maybe"]
    per_draw = [reference_calibration([r for r in rows if r["draw"] == d], choices) for d in (1, 2, 3)]
    cal = entry["calibration"]
    for k, name in enumerate(("ece", "brier")):
        values = [ref[k] for ref in per_draw]
        assert cal[name]["values"] == pytest.approx(values, abs=1e-12)
        assert cal[name]["value"] == pytest.approx(np.mean(values), abs=1e-12)
        assert cal[name]["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        low, high = cal[name]["ci95"]
        assert low <= cal[name]["value"] <= high
        # Each draw's own calibration stays beside it, equal to the reference too.
        assert [entry["draws"][str(d)]["calibration"][name]["value"] for d in (1, 2, 3)] == pytest.approx(
            values
        )
    assert cal["n"] == 3 and cal["n_draws"] == 3 and cal["reliability_pooled"] is True
    assert sum(b["count"] for b in cal["reliability"]) == 9  # every draw's predictions, pooled
    page = tmp_path / "board.html"
    assert cli.main(["leaderboard", str(run), "--no-published", "-o", str(page), "--bootstrap", "50"]) == 0
    assert f"ECE {cal['ece']['value']:.3f}" in page.read_text()


@pytest.mark.slow
def test_redacted_draws_of_span_and_text_tasks_score_as_unredacted(tiny_llama: Path, tmp_path: Path) -> None:
    # Redacted span/text rows keep statistics, not text: the draws are summarised from those.
    def drawn(out: Path, redact: bool) -> dict:
        config = RunConfig(
            model=str(tiny_llama), tasks=("emrqa", "pubmed_sum"), demo=True, limit=3, num_fewshot=1,
            fewshot_seeds=(1, 2), bootstrap=100, max_new_tokens=4, output_dir=str(out), redact_samples=redact,
            bertscore_model=str(tmp_path / "no-bert"),
        )  # fmt: skip
        return api.run(config)["tasks"]

    plain, redacted = drawn(tmp_path / "plain", False), drawn(tmp_path / "red", True)
    for task in ("emrqa", "pubmed_sum"):
        for metric, value in plain[task]["metrics"].items():
            if value.get("value") is not None:
                got = redacted[task]["metrics"][metric]
                for key in ("value", "ci95", "sd", "values"):
                    assert got[key] == pytest.approx(value[key]), (task, metric, key)
    assert all("raw_output" not in r for r in samples(tmp_path / "red", "emrqa"))


def test_fewshot_draws_compute_each_draws_statistics_once(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BERTScore is the costly statistic: a run of 2 draws calls it twice (once per draw), not 4 times.
    from mibe.scoring import metrics

    calls: list[int] = []
    real = metrics._bertscore

    def counted(golds, preds, model):  # the real scorer, counted
        calls.append(len(golds))
        return real(golds, preds, model)

    monkeypatch.setattr(metrics, "_bertscore", counted)
    config = RunConfig(
        model=str(tiny_llama), tasks=("pubmed_sum",), demo=True, limit=2, num_fewshot=1,
        fewshot_seeds=(1, 2), max_new_tokens=3, bootstrap=20, bertscore_model=str(tmp_path / "no-bert"),
        output_dir=str(tmp_path / "r"),
    )  # fmt: skip
    entry = api.run(config)["tasks"]["pubmed_sum"]
    assert calls == [2, 2]
    assert entry["metrics"]["bertscore_f1"]["unavailable"].startswith("BERTScore model")
    assert len(entry["metrics"]["rouge_l"]["values"]) == 2
