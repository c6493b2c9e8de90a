"""`mibe compare RUN_A RUN_B` on real tiny-LLaMA runs and on constructed run folders whose right
answers are known, so the p-values can be checked against scipy and statsmodels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from mibe.boards import compare, compare_text
from tests.support.boardruns import TASKS, constructed_run
from tests.support.runfiles import results


def test_compare_recomputes_the_runs_numbers_on_shared_documents(board_runs: dict[str, Path]) -> None:
    report = compare.compare(board_runs["zero"], board_runs["other"], n_boot=300)
    assert [t["task"] for t in report["tasks"]] == sorted(
        TASKS, key=list(results(board_runs["zero"])["tasks"]).index
    )
    a, b = results(board_runs["zero"])["tasks"], results(board_runs["other"])["tasks"]
    for task in report["tasks"]:
        name = task["task"]
        assert task["n_shared"] == a[name]["n"] and task["protocol_differences"] == []
        rows_a = [
            json.loads(x) for x in (board_runs["zero"] / "samples" / f"{name}.jsonl").read_text().splitlines()
        ]
        rows_b = {
            json.loads(x)["id"]: json.loads(x)
            for x in (board_runs["other"] / "samples" / f"{name}.jsonl").read_text().splitlines()
        }
        same = sum(r["prediction"] == rows_b[r["id"]]["prediction"] for r in rows_a)
        assert task["agreement"] == pytest.approx(same / len(rows_a))
        for m in task["metrics"]:
            assert m["a"] == pytest.approx(a[name]["metrics"][m["metric"]]["value"], abs=1e-12)
            assert m["b"] == pytest.approx(b[name]["metrics"][m["metric"]]["value"], abs=1e-12)
            assert m["ci95"][0] <= m["diff"] <= m["ci95"][1]
            if m["metric"] == "accuracy":
                a_only = sum(r["score"] == 1 and rows_b[r["id"]]["score"] == 0 for r in rows_a)
                b_only = sum(r["score"] == 0 and rows_b[r["id"]]["score"] == 1 for r in rows_a)
                assert (m["mcnemar"]["a_only"], m["mcnemar"]["b_only"]) == (a_only, b_only)
                assert m["mcnemar"]["p"] == pytest.approx(
                    binomtest(a_only, a_only + b_only).pvalue if a_only + b_only else 1.0
                )
    shots = compare.compare(board_runs["zero"], board_runs["oneshot"], n_boot=50)
    assert all("shots: 0 vs 1" in t["protocol_differences"] for t in shots["tasks"])


def test_compare_pairs_redacted_samples_on_their_scores(board_runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from mibe.runfolder import folder as run_files

    hidden = tmp_path / "redacted"
    shutil.copytree(board_runs["other"], hidden)
    for path in (hidden / "samples").glob("*.jsonl"):
        # What `mibe run --redact-samples` left before text tasks kept statistics: ids and scores.
        kept = [{"id": r["id"], "score": r["score"]} for r in run_files.read_samples(path)]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    full = compare.compare(board_runs["zero"], board_runs["other"], n_boot=100)
    cut = compare.compare(board_runs["zero"], hidden, n_boot=100)
    for whole, part in zip(full["tasks"], cut["tasks"], strict=True):
        assert part["redacted"] and part["agreement"] is None and part["n_shared"] == whole["n_shared"]
        by_metric = {m["metric"]: m for m in part["metrics"]}
        for m in whole["metrics"]:
            if m["metric"] == "accuracy":
                assert by_metric["accuracy"]["diff"] == pytest.approx(m["diff"])
                assert by_metric["accuracy"]["mcnemar"] == m["mcnemar"]
            else:
                assert "samples redacted" in by_metric[m["metric"]]["note"]
    assert "no agreement" in compare_text.render(cut, "table")


def macro(golds: list, preds: list) -> float:
    return f1_score(golds, preds, average="macro", labels=sorted(set(golds)), zero_division=0)


def answers(run: Path) -> tuple[list, list]:
    rows = [json.loads(x) for x in (run / "samples" / "pubmedqa.jsonl").read_text().splitlines()]
    return [r["gold"] for r in rows], [r["prediction"] for r in rows]


def test_p_values_on_a_clear_difference(tmp_path: Path) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    a = constructed_run(tmp_path / "a", "a", set(range(50)), 60)
    b = constructed_run(tmp_path / "b", "b", set(range(15)) | set(range(50, 55)), 60)
    report = compare.compare(a, b, n_boot=2000)
    (task,) = report["tasks"]
    m = {x["metric"]: x for x in task["metrics"]}
    acc = m["accuracy"]
    assert (acc["mcnemar"]["a_only"], acc["mcnemar"]["b_only"]) == (35, 5)
    assert acc["mcnemar"]["p"] == pytest.approx(binomtest(5, 40, 0.5).pvalue, rel=1e-9)
    assert acc["mcnemar"]["p"] == pytest.approx(mcnemar([[15, 35], [5, 5]], exact=True).pvalue, rel=1e-9)
    assert acc["diff"] == pytest.approx(50 / 60 - 20 / 60) and acc["significant"] is True
    assert acc["p_bootstrap"] == pytest.approx(1 / 2001)  # 6 standard errors out: no resample reaches 0
    (golds, pred_a), (_, pred_b) = answers(a), answers(b)
    assert m["macro_f1"]["diff"] == pytest.approx(macro(golds, pred_a) - macro(golds, pred_b), abs=1e-12)
    assert m["macro_f1"]["ci95"][0] <= m["macro_f1"]["diff"] <= m["macro_f1"]["ci95"][1]
    assert m["macro_f1"]["test"] == "paired bootstrap" and m["macro_f1"]["significant"] is True
    assert task["agreement"] == pytest.approx(20 / 60)  # both right (15) or the same wrong label (5)
    assert "McNemar" in compare_text.render(report, "md") and "35|5" in compare_text.render(report, "table")


def test_the_exact_test_decides_where_the_bootstrap_is_optimistic(tmp_path: Path) -> None:
    from scipy.stats import ttest_rel

    a = constructed_run(tmp_path / "a", "a", set(range(112)), 200)
    b = constructed_run(tmp_path / "b", "b", set(range(100)) | set(range(112, 116)), 200)
    acc = compare.compare(a, b, n_boot=4000)["tasks"][0]["metrics"][0]
    right_a = np.array([1.0] * 112 + [0.0] * 88)
    right_b = np.array([1.0] * 100 + [0.0] * 12 + [1.0] * 4 + [0.0] * 84)
    assert acc["p_bootstrap"] == pytest.approx(ttest_rel(right_a, right_b).pvalue, abs=0.01)  # ~0.05
    assert (
        acc["mcnemar"]["p"] == pytest.approx(binomtest(4, 16, 0.5).pvalue) == pytest.approx(0.0768, abs=1e-4)
    )
    assert acc["significant"] is False and acc["test"] == "McNemar exact"


def test_only_documents_both_scored_with_the_same_gold_are_paired(tmp_path: Path) -> None:
    a = constructed_run(tmp_path / "a", "a", set(range(30)), 60)
    b = constructed_run(tmp_path / "b", "b", set(range(0, 60, 2)), 60)
    samples = b / "samples" / "pubmedqa.jsonl"
    rows = [json.loads(x) for x in samples.read_text().splitlines()][:50]  # B scored 50 of the 60
    for row in rows[:5]:
        row["gold"] = "maybe" if row["gold"] != "maybe" else "yes"  # other data under the same ids
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (task,) = compare.compare(a, b, n_boot=200)["tasks"]
    assert (task["n_a"], task["n_b"], task["n_shared"], task["gold_mismatch"]) == (60, 50, 45, 5)
    kept = rows[5:]
    acc = task["metrics"][0]
    assert acc["a"] == pytest.approx(sum(1 for r in kept if int(r["id"][1:]) < 30) / 45)
    assert acc["b"] == pytest.approx(sum(r["score"] for r in kept) / 45)


def test_a_task_only_one_run_has_is_skipped_with_the_reason(tmp_path: Path) -> None:
    a = constructed_run(tmp_path / "a", "a", {1, 2, 3}, 30)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    data = json.loads((b / "results.json").read_text())
    data["tasks"]["medqa"] = data["tasks"].pop("pubmedqa")
    (b / "results.json").write_text(json.dumps(data))
    report = compare.compare(a, b, n_boot=50)
    assert report["tasks"] == [] and set(report["skipped"]) == {"pubmedqa", "medqa"}
    assert "only in A" in report["skipped"]["pubmedqa"] and "skipped: only in B" in compare_text.render(
        report, "table"
    )
