"""`--plot`: one figure fit for a paper (size, fonts, reference rows marked) and the LaTeX export."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mibe.boards import latex
from mibe.boards.board import build as build_board
from mibe.boards.plot import DPI, PALETTE, plot
from mibe.types import MibeError
from tests.support.boardruns import constructed_run, run_cli

PAPER = dict(parser="paper", max_new_tokens=256, stop=[], data="hub:clinicalnlplab/pubmedqa_test@abc123")


@pytest.fixture(scope="module")
def hub_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two runs keyed on the paper's hub copy under its protocol: they share its published columns."""
    root = tmp_path_factory.mktemp("figure")
    return [
        constructed_run(root / "a", "model A & co_1", set(range(45)), 60, **PAPER),
        constructed_run(root / "b", "model B", set(range(30)), 60, **PAPER),
    ]


def test_the_main_figure_is_one_small_image_with_reference_rows_marked(
    hub_runs: list[Path], tmp_path: Path
) -> None:
    from PIL import Image

    board = build_board(hub_runs, n_boot=50)
    png, svg = tmp_path / "fig.png", tmp_path / "fig.svg"
    plot(board, png)
    plot(board, svg)
    width, height = Image.open(png).size
    assert max(width, height) <= 2000 and width <= round(7.0 * DPI)  # a two-column paper's width
    text = svg.read_text()
    labels = re.findall(r">([^<>]+)</text>", text)
    assert "Me-LLaMA-70B-chat" in labels and "model A &amp; co_1" in text  # reference rows, and ours
    assert "hollow grey diamonds: published (reference)" in text
    assert PALETTE[0].lower() in text.lower() and "#999999" in text  # a run's colour, the references'


def test_the_pdf_embeds_truetype_fonts(hub_runs: list[Path], tmp_path: Path) -> None:
    pdf = tmp_path / "fig.pdf"
    code, _, err = run_cli("leaderboard", *map(str, hub_runs), "--plot", str(pdf), "--bootstrap", "50")
    assert code == 0, err
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"/FontFile2" in data  # Type 42: TrueType embedded
    assert b"/Subtype /Type3" not in data


def test_extra_views_only_on_request(hub_runs: list[Path], tmp_path: Path) -> None:
    board = build_board(hub_runs, n_boot=50)
    plot(board, tmp_path / "metrics.svg", "metrics")
    assert "macro_f1" in (tmp_path / "metrics.svg").read_text()
    plot(board, tmp_path / "main.svg")
    assert "macro_f1" not in (tmp_path / "main.svg").read_text()  # the main view: each task's main metric
    with pytest.raises(MibeError, match="no run on the board was scored by log-likelihood"):
        plot(board, tmp_path / "cal.png", "calibration")
    code, _, err = run_cli("leaderboard", str(hub_runs[0]), "--plot", str(tmp_path / "x.gif"))
    assert code == 2 and "name a .png, .pdf or .svg file" in err


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("A&B_v2 {50%}", r"A\&B\_v2 \{50\%\}"),
        (
            "x^2 ~ $y #1 <z> | \\",
            r"x\textasciicircum{}2 \textasciitilde{} \$y \#1 "
            r"\textless{}z\textgreater{} \textbar{} \textbackslash{}",
        ),
        ("two\nlines", "two lines"),
    ],
)
def test_latex_escapes_every_special_character(name: str, escaped: str) -> None:
    assert latex.escape(name) == escaped


def test_latex_export_is_booktabs_with_model_names_escaped(hub_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "board.tex"
    code, _, err = run_cli("leaderboard", *map(str, hub_runs), "-o", str(out), "--bootstrap", "50")
    assert code == 0, err
    text = out.read_text()
    assert "\\toprule" in text and "\\midrule" in text and "\\bottomrule" in text
    assert "model A \\& co\\_1" in text and "model A & co_1" not in text
    assert "\\textit{Me-LLaMA-70B-chat}" in text  # reference rows in italics, after a rule
    body = [line for line in text.splitlines() if line.endswith("\\\\")]
    columns = {line.count(" & ") for line in body}
    assert len(columns) == 1  # every row has as many cells as the header
    for line in text.splitlines():
        if not line.startswith("%"):
            unescaped = re.sub(r"\\.", "", line)  # drop escapes and commands' first letters
            assert not re.search(r"[#$%_^~]", unescaped), line
