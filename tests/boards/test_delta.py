"""Calibration in results and boards, and the forgetting (delta) view on two tiny runs, one trained
from the other by the real provenance writer; references computed here with numpy and scipy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mibe import cli
from mibe.boards import delta, render
from mibe.boards.board import build as build_board
from mibe.runner import api
from mibe.types import RunConfig
from tests.support.references import mcnemar_p, reference_calibration
from tests.support.runfiles import EXAMPLE, EXAMPLE_DATA, results, samples


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
    api.run(config)
    return out


@pytest.fixture(scope="module")
def two_runs(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("forgetting")
    trained = checkpoint(tiny_llama, root / "checkpoint")
    return loglik_run(tiny_llama, root / "base-run"), loglik_run(trained, root / "checkpoint-run")


@pytest.mark.slow
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


@pytest.mark.slow
def test_plot_draws_reliability_diagrams(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    base, _ = two_runs
    figure = tmp_path / "board.png"
    argv = ["leaderboard", str(base), "--no-published", "--plot", str(figure), "-o", str(tmp_path / "b.md")]
    assert cli.main([*argv, "--plot-kind", "calibration"]) == 0  # an extra view, only on request
    assert figure.stat().st_size > 0


@pytest.mark.slow
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


@pytest.mark.slow
def test_delta_view_without_a_base_run_is_one_line(two_runs: tuple[Path, Path], capsys) -> None:
    _, trained = two_runs
    assert cli.main(["leaderboard", str(trained), "--delta-vs-base"]) == 2
    assert "no run's base model has a run" in capsys.readouterr().err
    assert cli.main(["leaderboard", str(trained), "--base", "x"]) == 2
    assert cli.main(["leaderboard", str(trained), "--delta-vs-base", "--base", "x"]) == 2


@pytest.mark.slow
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
