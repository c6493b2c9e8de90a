"""`mibe compare` and the board on constructed runs whose answers are known: Holm over the family of
metrics, tie groups, and runs of several draws paired draw by draw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score
from statsmodels.stats.multitest import multipletests

from mibe.boards import compare, compare_text, render
from mibe.boards.board import build as build_board
from mibe.scoring import kinds
from tests.support.references import mcnemar_p

LABELS = ("yes", "no", "maybe")


METRICS = ("accuracy", "macro_f1", "missing_rate")


def constructed(folder: Path, name: str, right: dict[str, set[int]], n: int = 60) -> Path:
    """A run folder by hand: per task, documents `right[task]` answered right, the rest wrong."""
    golds = [LABELS[i % 3] for i in range(n)]
    tasks = {}
    (folder / "samples").mkdir(parents=True)
    for task, ok in right.items():
        preds = [g if i in ok else LABELS[(i + 1) % 3] for i, g in enumerate(golds)]
        scored = kinds.score_task("choice", METRICS, golds, preds, LABELS, "strict", seed=1, n_boot=100)
        protocol = {"task": task, "task_version": 1, "data": {"fingerprint": "sha256:c"}, "split": "test"}
        protocol |= {"limit": None, "shots": 0, "scoring": "generate", "parser": "strict"}
        protocol |= {"chat_template": None, "system_prompt": None, "max_new_tokens": 8, "stop": []}
        tasks[task] = {"protocol": protocol, "n": n, "answer_type": "choice", "metrics": scored["metrics"]}
        lines = [
            json.dumps({"id": f"d{i}", "raw_output": p, "prediction": p, "gold": g, "score": float(g == p)})
            for i, (g, p) in enumerate(zip(golds, preds, strict=True))
        ]
        (folder / "samples" / f"{task}.jsonl").write_text("\n".join(lines) + "\n")
    model = {"name": name, "path": f"/models/{name}", "adapter": None}
    (folder / "results.json").write_text(json.dumps({"model": model, "tasks": tasks}))
    return folder


def test_compare_adjusts_the_family_by_holm(tmp_path: Path) -> None:
    # t1: a clear difference; t2: 8 documents only A got right, 1 only B: McNemar p = 20/512 < 0.05,
    # lost after Holm; t3: none.
    a = constructed(
        tmp_path / "a",
        "a",
        {"t1": set(range(50)), "t2": set(range(30)) | set(range(40, 48)), "t3": set(range(30))},
    )
    b = constructed(
        tmp_path / "b",
        "b",
        {"t1": set(range(20)), "t2": set(range(30)) | {50}, "t3": set(range(30))},
    )
    report = compare.compare(a, b, n_boot=400, seed=3)
    tests = [(t["task"], m) for t in report["tasks"] for m in t["metrics"]]
    family = [(task, m) for task, m in tests if m["metric"] != "missing_rate" and m["p"] is not None]
    assert report["family"]["size"] == len(family) == 6
    expected = multipletests([m["p"] for _, m in family], method="holm")[1]
    assert [m["p_holm"] for _, m in family] == pytest.approx(expected.tolist())
    for _, m in family:
        assert m["significant"] == (m["p_holm"] < 0.05)
    acc = {task: m for task, m in tests if m["metric"] == "accuracy"}
    assert acc["t2"]["p"] == pytest.approx(binomtest(1, 9, 0.5).pvalue) == pytest.approx(20 / 512)
    assert acc["t2"]["p"] < 0.05 <= acc["t2"]["p_holm"] and acc["t2"]["significant"] is False
    assert acc["t1"]["significant"] is True
    assert all(m["p_holm"] is None for _, m in tests if m["metric"] == "missing_rate")
    table = compare_text.render(report, "table")
    assert "p Holm" in table and f"{acc['t2']['p_holm']:.3g}" in table
    assert "p_holm" in compare_text.render(report, "csv").splitlines()[0]


def test_tie_groups_on_constructed_runs(tmp_path: Path) -> None:
    right = {"strong": set(range(50)), "near": set(range(47)), "mid": set(range(42)), "weak": set(range(20))}
    runs = [constructed(tmp_path / k, k, {"pubmedqa": v}) for k, v in right.items()]
    board = build_board(runs, published=False, n_boot=200)
    (section,) = board.sections
    column = next(c for c in section.columns if c.metric == "accuracy")
    label = {i: x.row.label for i, x in enumerate(section.rows)}
    # The reference: McNemar (scipy's exact binomial test) of each row against the best, Holm by statsmodels.
    others = ["near", "mid", "weak"]
    raw = [
        mcnemar_p([i in right["strong"] for i in range(60)], [i in right[k] for i in range(60)])
        for k in others
    ]
    adjusted = dict(zip(others, multipletests(raw, method="holm")[1], strict=True))
    expected = {"strong"} | {k for k, q in adjusted.items() if q >= 0.05}
    assert (
        {label[i] for i in section.best[column]}
        == expected
        == {"strong", "near", "mid"} - ({"mid"} if adjusted["mid"] < 0.05 else set())
    )
    group = section.ties[column]
    assert {label[i]: q for i, q in group.adjusted.items()} == pytest.approx(adjusted)
    verdict = section.verdicts[column]
    assert verdict.significant is False and verdict.tied[0] == "strong" and set(verdict.tied) == expected
    text = render.text(board)
    assert "tie group: strong, " in text and f"tie of {len(expected)}" in text
    md, csv = render.markdown(board), render.csv_text(board)
    assert md.count("**") >= 2 * len(expected)
    lines = [line for line in csv.splitlines()[1:] if ",accuracy," in line]
    assert sum(line.split(",")[-3] == "True" for line in lines) == len(expected)  # tie_group
    html_page = __import__("mibe.boards.html", fromlist=["html"]).html(board)
    assert html_page.count('class="best"') >= len(expected)


def constructed_draws(folder: Path, name: str, right: dict[int, set[int]], n: int = 60) -> Path:
    """A run folder by hand scored over shot draws: in draw d, documents `right[d]` answered right."""
    golds = [LABELS[i % 3] for i in range(n)]
    (folder / "samples").mkdir(parents=True)
    lines, per_draw = [], []
    for draw, ok in right.items():
        preds = [g if i in ok else LABELS[(i + 1) % 3] for i, g in enumerate(golds)]
        per_draw.append(kinds.score_task("choice", METRICS, golds, preds, LABELS, "strict", seed=1, n_boot=0))
        lines += [
            json.dumps({"id": f"d{i}", "draw": draw, "raw_output": p, "prediction": p, "gold": g})
            for i, (g, p) in enumerate(zip(golds, preds, strict=True))
        ]
    (folder / "samples" / "pubmedqa.jsonl").write_text("\n".join(lines) + "\n")
    seeds = list(right)
    means = {m: {"value": float(np.mean([d["metrics"][m]["value"] for d in per_draw]))} for m in METRICS}
    protocol = {"task": "pubmedqa", "task_version": 1, "data": {"fingerprint": "sha256:c"}, "split": "test"}
    protocol |= {"limit": None, "shots": 1, "scoring": "generate", "parser": "strict", "fewshot_seeds": seeds}
    entry = {"protocol": protocol, "n": n, "answer_type": "choice", "metrics": means, "fewshot_seeds": seeds}
    model = {"name": name, "path": f"/models/{name}", "adapter": None}
    (folder / "results.json").write_text(json.dumps({"model": model, "tasks": {"pubmedqa": entry}}))
    return folder


def _per_draw(right: dict[int, set[int]], n: int = 60) -> dict[str, list[float]]:
    from sklearn.metrics import f1_score

    golds = [LABELS[i % 3] for i in range(n)]
    preds = [[g if i in ok else LABELS[(i + 1) % 3] for i, g in enumerate(golds)] for ok in right.values()]
    return {
        "accuracy": [accuracy_score(golds, p) for p in preds],
        "macro_f1": [f1_score(golds, p, average="macro") for p in preds],
    }


def test_compare_pairs_runs_of_several_draws(tmp_path: Path) -> None:
    right_a = {1: set(range(40)), 2: set(range(45)), 3: set(range(35))}
    right_b = {1: set(range(20)), 2: set(range(25)), 3: set(range(30))}
    a = constructed_draws(tmp_path / "a", "a", right_a)
    b = constructed_draws(tmp_path / "b", "b", right_b)
    report = compare.compare(a, b, n_boot=300, seed=3)
    assert report["skipped"] == {}
    (task,) = report["tasks"]
    assert (task["n_a"], task["n_b"], task["n_shared"]) == (60, 60, 60)
    assert task["draws"] == {"a": [1, 2, 3], "b": [1, 2, 3]}
    got = {m["metric"]: m for m in task["metrics"]}
    ref_a, ref_b = _per_draw(right_a), _per_draw(right_b)
    for metric in ("accuracy", "macro_f1"):  # each side: the mean over its draws, as results.json says
        assert got[metric]["a"] == pytest.approx(np.mean(ref_a[metric]))
        assert got[metric]["b"] == pytest.approx(np.mean(ref_b[metric]))
        assert got[metric]["recomputed"] is None and "mcnemar" not in got[metric]
        assert got[metric]["test"] == "paired bootstrap"
        low, high = got[metric]["ci95"]
        assert low <= got[metric]["diff"] <= high
    assert got["accuracy"]["significant"] is True and got["accuracy"]["p_holm"] is not None
    # Agreement draw for draw: the same prediction where both or neither got the document right.
    same = [sum((i in right_a[d]) == (i in right_b[d]) for i in range(60)) for d in (1, 2, 3)]
    assert task["agreement"] == pytest.approx(sum(same) / 180)
    table = compare_text.render(report, "table")
    words = " ".join(table.split())  # notes wrap at 100 columns
    assert "A: mean over shot draws 1, 2, 3; B: mean over shot draws 1, 2, 3" in words
    assert "agreement draw for draw" in words


def test_draws_that_agree_compare_as_one_run(tmp_path: Path) -> None:
    # Three identical draws are one run three times over: the same values, interval and p.
    ok_a, ok_b = set(range(44)), set(range(31)) | {50, 51}
    drawn_a = constructed_draws(tmp_path / "da", "a", {1: ok_a, 2: ok_a, 3: ok_a})
    single_b = constructed(tmp_path / "sb", "b", {"pubmedqa": ok_b})
    single_a = constructed(tmp_path / "sa", "a", {"pubmedqa": ok_a})
    mixed = compare.compare(drawn_a, single_b, n_boot=250, seed=9)
    plain = compare.compare(single_a, single_b, n_boot=250, seed=9)
    for m_mixed, m_plain in zip(mixed["tasks"][0]["metrics"], plain["tasks"][0]["metrics"], strict=True):
        assert m_mixed["metric"] == m_plain["metric"]
        for key in ("a", "b", "diff", "ci95", "p_bootstrap"):
            assert m_mixed[key] == pytest.approx(m_plain[key]), (m_mixed["metric"], key)
    assert mixed["tasks"][0]["draws"] == {"a": [1, 2, 3], "b": []}
    assert mixed["tasks"][0]["agreement"] == pytest.approx(plain["tasks"][0]["agreement"])
    assert "every draw of A against every draw of B" in " ".join(compare_text.render(mixed, "table").split())
