"""Layout as a person sees it: the board, the viewer (one run, two runs) and the delta page, rendered
by headless Chromium at 1,400 x 1,000 and at 390 px wide, measured with the DOM: the page never
scrolls sideways (a wide table may scroll inside its own frame), and no element spills its card."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import screenshots

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        screenshots.CHROMIUM is None,
        reason="Debian's chromium is not installed (tests/prepare.sh installs it: apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def pages(
    tiny_llama: Path, board_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    base = tmp_path_factory.getbasetemp()
    runs = screenshots.make_runs(tiny_llama, base / "layout-runs")
    return screenshots.make_pages(runs, [board_runs["zero"], board_runs["lora"]], base / "layout-pages")


@pytest.mark.parametrize("size", sorted(screenshots.SIZES))
@pytest.mark.parametrize("name", ["board", "view-one", "view-two", "delta"])
def test_the_page_fits_its_screen_and_nothing_spills_its_card(
    pages: dict[str, Path], name: str, size: str
) -> None:
    width, height = screenshots.SIZES[size]
    found = screenshots.measure(pages[name], width, height)
    assert found["viewport"] == width
    assert found["page"] <= width, f"{name} scrolls sideways at {width} px: {found}"
    assert found["n_spills"] == 0, found["spills"]
    if name == "board" and size == "desktop":
        boards = [w for w in found["wraps"] if w["board"]]
        assert boards and all(w["scroll"] <= 0 for w in boards), boards  # the board's own frame fits


def test_the_screenshot_script_writes_each_page_at_each_size(pages: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    shot = screenshots.screenshot(pages["view-one"], 390, 844, tmp_path / "phone.png")
    image = Image.open(shot).convert("RGB")
    assert image.size == (390, 844) and len(image.getcolors(maxcolors=1 << 20)) > 20  # text, not blank


def test_the_demo_figure_is_one_image_under_2000_px(
    tiny_llama: Path, tmp_path_factory, tmp_path: Path
) -> None:
    from PIL import Image

    from mibe.boards.board import build
    from mibe.boards.plot import plot

    runs = screenshots.make_runs(tiny_llama, tmp_path_factory.getbasetemp() / "layout-runs")
    figure = tmp_path / "demo.png"
    plot(build([runs["base"], runs["tuned"]], n_boot=100), figure)
    width, height = Image.open(figure).size
    assert max(width, height) <= 2000 and min(width, height) > 200
