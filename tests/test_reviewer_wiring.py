"""The reviewer statistics wired in, end to end: few-shot draws on the tiny model (and resume per
draw), calibration in results and boards, the forgetting view on two tiny runs (one trained from the
other, by the real provenance writer), Holm in `mibe compare` and tie groups on constructed runs.
References are computed here, independently, with numpy, scipy, sklearn and statsmodels."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score
from statsmodels.stats.multitest import multipletests

from mibe import cli
from mibe.boards import compare, compare_text, delta, render
from mibe.boards.board import build as build_board
from mibe.runfolder.record import SCHEMA_VERSION
from mibe.runner import api
from mibe.scoring import kinds
from mibe.types import MibeError, RunConfig
from tests.support.paths import REPO

EXAMPLE = REPO / "tasks" / "examples" / "everyday_yesno.yaml"
EXAMPLE_DATA = REPO / "tasks" / "examples" / "everyday_yesno.jsonl"


def samples(run: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


# ---------------------------------------------------------------- few-shot draws


def draw_run(model: Path, out: Path, seeds: tuple[int, ...], scoring: str = "loglikelihood") -> dict:
    config = RunConfig(
        model=str(model),
        tasks=("pubmedqa",),
        demo=True,
        limit=3,
        num_fewshot=1,
        fewshot_seeds=seeds,
        scoring=scoring,
        bootstrap=200,
        output_dir=str(out),
    )
    return api.run(config, say=lambda line: None)


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


# ---------------------------------------------------------------- calibration and the forgetting view


def checkpoint(base: Path, target: Path) -> Path:
    """A 'fine-tuned' copy of the tiny model: weights nudged, lineage written by mibe's own writer."""
    import torch
    from safetensors.torch import load_file, save_file

    from mibe.training import provenance

    shutil.copytree(base, target)
    weights = load_file(target / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    for name, tensor in weights.items():
        if tensor.is_floating_point():
            weights[name] = tensor + 0.05 * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
    save_file(weights, target / "model.safetensors")
    recipe = {"model": str(base), "output_dir": str(target)}
    doc = provenance.start("sft", recipe, {"path": None, "sha256": None}, ["mibe", "train", "sft"], {})
    provenance.write(target, {**doc, "complete": True})
    return target


def loglik_run(model: Path, out: Path) -> Path:
    config = RunConfig(
        model=str(model),
        tasks=("pubmedqa", str(EXAMPLE)),
        demo=True,
        data={"everyday_yesno": str(EXAMPLE_DATA)},
        scoring="loglikelihood",
        bootstrap=200,
        output_dir=str(out),
    )
    api.run(config, say=lambda line: None)
    return out


@pytest.fixture(scope="module")
def two_runs(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("forgetting")
    trained = checkpoint(tiny_llama, root / "checkpoint")
    return loglik_run(tiny_llama, root / "base-run"), loglik_run(trained, root / "checkpoint-run")


def reference_calibration(rows: list[dict], choices: list[str]) -> tuple[float, float]:
    """ECE (10 right-closed equal bins) and multi-class Brier, written out here by hand."""
    bins: dict[int, list[tuple[float, float]]] = {}
    brier = 0.0
    for row in rows:
        z = np.array(row["logprobs"])
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        top = int(np.argmax(p))
        b = max(0, math.ceil(round(p[top] * 10, 12)) - 1)
        bins.setdefault(b, []).append((p[top], float(choices[top] == row["gold"])))
        brier += sum((p[k] - (choices[k] == row["gold"])) ** 2 for k in range(len(choices)))
    ece = sum(abs(sum(c for c, _ in v) - sum(a for _, a in v)) for v in bins.values()) / len(rows)
    return ece, brier / len(rows)


def test_calibration_is_stored_and_drawn(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    base, _ = two_runs
    entry = results(base)["tasks"]["everyday_yesno"]
    cal = entry["calibration"]
    ece, brier = reference_calibration(samples(base, "everyday_yesno"), ["yes", "no"])
    assert cal["ece"]["value"] == pytest.approx(ece, abs=1e-12)
    assert cal["brier"]["value"] == pytest.approx(brier, abs=1e-12)
    assert cal["ece"]["ci95"][0] <= cal["ece"]["value"] <= cal["ece"]["ci95"][1]
    assert sum(b["count"] for b in cal["reliability"]) == entry["n"] == 24
    page = tmp_path / "board.html"
    assert cli.main(["leaderboard", str(base), "--no-published", "-o", str(page), "--bootstrap", "50"]) == 0
    html = page.read_text()
    assert html.count('class="reliability"') == 2 and f"ECE {cal['ece']['value']:.3f}" in html


def test_plot_draws_reliability_diagrams(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    base, _ = two_runs
    figure = tmp_path / "board.png"
    argv = ["leaderboard", str(base), "--no-published", "--plot", str(figure), "-o", str(tmp_path / "b.md")]
    assert cli.main([*argv, "--plot-kind", "calibration"]) == 0  # an extra view, only on request
    assert figure.stat().st_size > 0


def mcnemar_p(a: list[bool], b: list[bool]) -> float:
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    return 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue


def test_delta_view_finds_the_base_through_the_lineage(two_runs: tuple[Path, Path], capsys) -> None:
    base, trained = two_runs
    report = delta.delta([trained, base], n_boot=200)
    (pair,) = report["pairs"]
    assert pair["base"]["run"] == str(base) and pair["found_by"].startswith("training lineage")
    rows = {r["task"]: r for r in pair["tasks"]}
    assert {t: r["domain"] for t, r in rows.items()} == {"pubmedqa": "medical", "everyday_yesno": "general"}
    for task, row in rows.items():
        assert row["metric"] == "accuracy"
        values = [results(r)["tasks"][task]["metrics"]["accuracy"]["value"] for r in (trained, base)]
        assert row["diff"] == pytest.approx(values[0] - values[1])
        right = [[s["prediction"] == s["gold"] for s in samples(r, task)] for r in (trained, base)]
        assert row["p"] == pytest.approx(mcnemar_p(*right)) and row["test"] == "McNemar exact"
    assert pair["averages"]["medical"]["diff"] == pytest.approx(rows["pubmedqa"]["diff"])
    assert pair["averages"]["general"]["diff"] == pytest.approx(rows["everyday_yesno"]["diff"])
    assert cli.main(["leaderboard", str(base), str(trained), "--delta-vs-base", "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "general average (1 tasks)" in out and "medical average (1 tasks)" in out
    # Named by hand (here: the other way round), the pairing follows --base.
    (named,) = delta.delta([base], bases=[f"{base}={trained}"], n_boot=200)["pairs"]
    assert named["found_by"] == "--base" and named["tasks"][0]["diff"] == pytest.approx(
        -rows["pubmedqa"]["diff"]
    )


def test_delta_view_without_a_base_run_is_one_line(two_runs: tuple[Path, Path], capsys) -> None:
    _, trained = two_runs
    assert cli.main(["leaderboard", str(trained), "--delta-vs-base"]) == 2
    assert "no run's base model has a run" in capsys.readouterr().err
    assert cli.main(["leaderboard", str(trained), "--base", "x"]) == 2
    assert cli.main(["leaderboard", str(trained), "--delta-vs-base", "--base", "x"]) == 2


def test_the_example_general_task_is_not_part_of_all() -> None:
    from mibe import tasks

    assert "everyday_yesno" not in tasks.builtin_paths()
    loaded = tasks.load_task(EXAMPLE)
    assert (
        loaded.domain == "general" and tasks.load_task(tasks.builtin_paths()["pubmedqa"]).domain == "medical"
    )
    assert all(json.loads(x)["invented"] is True for x in EXAMPLE_DATA.read_text().splitlines())


def test_a_bad_domain_is_one_line(tmp_path: Path) -> None:
    from mibe import tasks

    bad = tmp_path / "t.yaml"
    bad.write_text(EXAMPLE.read_text().replace("domain: general", "domain: sports"))
    with pytest.raises(MibeError, match="field 'domain'"):
        tasks.load_task(bad)


# ---------------------------------------------------------------- Holm in compare, tie groups

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


def test_the_board_keeps_general_tasks_out_of_the_medical_average(two_runs: tuple[Path, Path]) -> None:
    board = build_board(list(two_runs), published=False, n_boot=20)
    # The checkpoint was trained without a chat template, the base run used one: two sections.
    sections = [s for s in board.sections if any(c.task == "everyday_yesno" for c in s.columns)]
    assert len(sections) == 2
    for section in sections:
        assert {c.task for c in section.averaged} == {"pubmedqa"}  # medical only
        general_columns = {(c.task, c.metric) for c in section.general}
        assert general_columns == {("everyday_yesno", "accuracy"), ("everyday_yesno", "macro_f1")}
        for ranked, general in zip(section.rows, section.general_average, strict=True):
            entry = results(ranked.row.run_dir)["tasks"]
            medical, own = entry["pubmedqa"]["metrics"], entry["everyday_yesno"]["metrics"]
            assert ranked.average == pytest.approx(
                (medical["accuracy"]["value"] + medical["macro_f1"]["value"]) / 2
            )
            assert general == pytest.approx((own["accuracy"]["value"] + own["macro_f1"]["value"]) / 2)
    assert "General-domain average (over everyday_yesno accuracy, everyday_yesno macro_f1" in render.text(
        board
    )


# ---------------------------------------------------------------- compare on runs of several draws


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


def test_rescore_and_audit_take_runs_of_several_draws(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.runfolder import audit, rescore

    run = tmp_path / "gen"
    entry = draw_run(tiny_llama, run, (1, 2, 3), scoring="generate")["tasks"]["pubmedqa"]
    parser = entry["protocol"]["parser"]
    # The run's own parser again: every number as the run wrote it, each draw's and the summary.
    again = rescore.rescore(run, parser, [], tmp_path / "again", say=lambda line: None)["tasks"]["pubmedqa"]
    assert again["metrics"] == entry["metrics"] and again["fewshot_seeds"] == [1, 2, 3]
    assert {d: e["metrics"] for d, e in again["draws"].items()} == {
        d: e["metrics"] for d, e in entry["draws"].items()
    }
    other = "paper" if parser == "strict" else "strict"
    new = rescore.rescore(run, other, [], tmp_path / "other", say=lambda line: None)["tasks"]["pubmedqa"]
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


def test_redacted_draws_of_span_and_text_tasks_score_as_unredacted(tiny_llama: Path, tmp_path: Path) -> None:
    # Redacted span/text rows keep statistics, not text: the draws are summarised from those.
    def drawn(out: Path, redact: bool) -> dict:
        config = RunConfig(
            model=str(tiny_llama), tasks=("emrqa", "pubmed_sum"), demo=True, limit=3, num_fewshot=1,
            fewshot_seeds=(1, 2), bootstrap=100, max_new_tokens=4, output_dir=str(out), redact_samples=redact,
            bertscore_model=str(tmp_path / "no-bert"),
        )  # fmt: skip
        return api.run(config, say=lambda line: None)["tasks"]

    plain, redacted = drawn(tmp_path / "plain", False), drawn(tmp_path / "red", True)
    for task in ("emrqa", "pubmed_sum"):
        for metric, value in plain[task]["metrics"].items():
            if value.get("value") is not None:
                got = redacted[task]["metrics"][metric]
                for key in ("value", "ci95", "sd", "values"):
                    assert got[key] == pytest.approx(value[key]), (task, metric, key)
    assert all("raw_output" not in r for r in samples(tmp_path / "red", "emrqa"))
