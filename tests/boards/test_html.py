"""The HTML leaderboard in a real headless Chromium (Debian's `chromium`): a screenshot, the DOM's rows
and charts, sorting by a URL fragment and by a click, and names holding `<script>` that run nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mibe import resources
from mibe.boards import table
from mibe.boards.board import build as build_board
from mibe.boards.html import html
from mibe.boards.published import read_table
from tests.support.boardruns import constructed_run
from tests.support.browser import CHROMIUM, needs_chromium

EVIL_MODEL = "<script>document.title='pwned'</script>"
EVIL_TASK = "x<script>document.body.setAttribute('data-pwned','1')</script>"


@pytest.fixture(scope="module")
def runs(board_runs: dict[str, Path]) -> dict[str, Path]:
    return board_runs


@pytest.fixture(scope="module")
def page(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, table.Board]:
    chosen = [runs[k] for k in ("zero", "oneshot", "lora", "other", "demo")]
    board = build_board(chosen, published="paper_zero_shot", n_boot=200)
    path = tmp_path_factory.mktemp("html") / "board.html"
    path.write_text(html(board), encoding="utf-8")
    return path, board


def browse(*args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="mibe-chromium-")  # a fresh profile every time
    try:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dom(url: str) -> str:
    result = browse("--dump-dom", url)
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-2000:]
    return result.stdout


class Tables(HTMLParser):
    """From a DOM dump: each board table's attributes, header cells and body rows (data-v of cells)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.body: dict[str, str | None] = {}
        self.figures = self.whiskers = 0
        self._table: dict | None = None
        self._part = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "table" and "board" in (a.get("class") or ""):
            self._table = {"attrs": a, "head": [], "rows": []}
            self.tables[a["id"] or ""] = self._table
        elif tag in ("thead", "tbody", "tfoot"):
            self._part = tag
        elif self._table is not None and tag == "th" and self._part == "thead":
            self._table["head"].append(a)
        elif self._table is not None and tag == "tr" and self._part == "tbody":
            self._table["rows"].append([])
        elif self._table is not None and tag == "td" and self._part == "tbody":
            self._table["rows"][-1].append(a.get("data-v"))
        elif tag == "figure" and a.get("class") != "reliability":  # reliability diagrams: not bar charts
            self.figures += 1
        elif tag == "g" and a.get("class") == "whisker":
            self.whiskers += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None


def published_table(board: table.Board, page_dom: str) -> tuple[str, dict, list[dict]]:
    s = next(i for i, x in enumerate(board.sections) if x.title.startswith("Published"))
    table = Tables(page_dom).tables[f"t{s + 1}"]
    published = read_table(resources.shipped("leaderboards") / "paper_zero_shot.csv").lines
    return f"t{s + 1}", table, published


def test_page_is_self_contained() -> None:
    text = html(build_board([], n_boot=10))
    assert "<style>" in text and "<script>" in text
    for fetch in (" src=", " href=", "@import", "url(", "https://"):
        assert fetch not in text, fetch  # nothing to load: works offline, from a file
    assert text.count("http://") == text.count(
        'xmlns="http://www.w3.org/2000/svg"'
    )  # a namespace, not a fetch


@needs_chromium
def test_screenshot_shows_the_tables_and_the_charts(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from PIL import Image

    # The tiny random models may tie on every column of their 3 documents (then no cell is best and
    # nothing is highlighted), so two constructed runs with known, different scores sit beside them:
    # their section has a best cell whatever the random weights answer.
    known = [constructed_run(tmp_path / n, n, set(range(k)), 12) for n, k in (("known-a", 9), ("known-b", 3))]
    chosen = [runs[k] for k in ("zero", "oneshot", "lora", "other", "demo")]
    board = build_board([*chosen, *known], published="paper_zero_shot", n_boot=200)
    path = tmp_path / "board.html"
    path.write_text(html(board), encoding="utf-8")
    assert any(section.best for section in board.sections)
    shot = path.with_suffix(".png")
    result = browse(f"--screenshot={shot}", "--window-size=1400,8000", path.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with capsys.disabled():  # in the test output even when output is captured
        print(f"\nscreenshot of the HTML leaderboard: {shot}")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 8000)
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert (0x3B, 0x6F, 0xB6) in colours  # the runs' bars
    assert (0xFF, 0xF3, 0xC4) in colours  # a best cell's highlight
    assert len(colours) > 50  # text, not a blank page


@needs_chromium
def test_dom_has_every_row_column_protocol_and_chart(page: tuple[Path, table.Board]) -> None:
    path, board = page
    parsed = Tables(dom(path.as_uri()))
    assert len(parsed.tables) == len(board.sections) >= 4
    charts = whiskers = 0
    for s, section in enumerate(board.sections):
        table = parsed.tables[f"t{s + 1}"]
        assert len(table["rows"]) == len(section.rows)
        assert len(table["head"]) == 3 + len(section.columns)
        for th, column in zip(table["head"][3:], section.columns, strict=True):
            assert th["data-col"] == board.column_ids[s, column]
            assert f"{column.protocol['shots']}-shot" in th["title"] and "parser" in th["title"]
        for column in section.columns:
            cells = [x.row.cells.get(column) for x in section.rows]
            charts += any(c is not None and c.value is not None for c in cells)
            whiskers += sum(1 for c in cells if c is not None and c.value is not None and c.ci95)
    assert parsed.figures == charts and parsed.whiskers == whiskers > 0


@needs_chromium
@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_a_url_fragment_sorts_on_load(page: tuple[Path, table.Board], direction: str) -> None:
    path, board = page
    s = next(i for i, x in enumerate(board.sections) if x.title.startswith("Published"))
    column = next(c for c in board.sections[s].columns if (c.task, c.metric) == ("hoc", "macro_f1"))
    col = board.column_ids[s, column]
    _, table, published = published_table(board, dom(f"{path.as_uri()}#sort={col}:{direction}"))
    assert table["attrs"]["data-sorted"] == f"{col}:{direction}"
    hoc = next(r for r in published if (r["task"], r["metric"]) == ("hoc", "macro_f1"))
    models = [m for m in published[0] if m.startswith(("LLaMA", "Me-LLaMA"))]
    expected = sorted(models, key=lambda m: float(hoc[m]), reverse=direction == "desc")
    assert [row[1] for row in table["rows"]] == expected


@needs_chromium
def test_a_click_on_a_header_sorts_and_a_second_click_reverses(page: tuple[Path, table.Board]) -> None:
    path, board = page
    s = next(i for i, x in enumerate(board.sections) if x.title.startswith("Published"))
    column = next(c for c in board.sections[s].columns if (c.task, c.metric) == ("bionli", "macro_f1"))
    col = board.column_ids[s, column]
    click = f"document.querySelector('th[data-col=\"{col}\"]').click();"
    clicks = f"<script>for(const n of [1, 2]){{if(n <= CLICKS){click}}}</script>"
    orders = {}
    for n in (1, 2):
        copy = path.with_name(f"clicked-{n}.html")
        copy.write_text(path.read_text().replace("</body>", clicks.replace("CLICKS", str(n)) + "</body>"))
        _, table, published = published_table(board, dom(copy.as_uri()))
        orders[n] = [row[1] for row in table["rows"]]
        assert table["attrs"]["data-sorted"] == f"{col}:{'desc' if n == 1 else 'asc'}"
    bionli = next(r for r in published if (r["task"], r["metric"]) == ("bionli", "macro_f1"))
    models = [m for m in published[0] if m.startswith(("LLaMA", "Me-LLaMA"))]
    assert orders[1] == sorted(models, key=lambda m: -float(bionli[m]))
    assert orders[2] == orders[1][::-1]
    unsorted = [row[1] for row in published_table(board, dom(path.as_uri()))[1]["rows"]]
    assert unsorted != orders[1]  # the page opens in rank order: the click did the sorting


def evil_page(runs: dict[str, Path], target: Path) -> tuple[Path, str]:
    run = target / "evil-run"
    shutil.copytree(runs["zero"], run)
    data = json.loads((run / "results.json").read_text())
    data["model"]["name"] = EVIL_MODEL
    # A task name is never markup (the run-folder contract refuses it); a protocol's free text may hold it.
    data["tasks"]["medqa"]["protocol"]["split"] = EVIL_TASK
    (run / "results.json").write_text(json.dumps(data))
    text = html(build_board([run], published=False, n_boot=50))
    path = target / "evil.html"
    path.write_text(text)
    return path, text


def test_names_holding_script_are_escaped_text(runs: dict[str, Path], tmp_path: Path) -> None:
    _, text = evil_page(runs, tmp_path)
    assert EVIL_MODEL not in text and EVIL_TASK not in text
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in text  # escaped by the template
    assert "x&lt;script&gt;document.body.setAttribute(" in text  # the protocol's split, as text
    assert text.count("<script>") == 1  # ours, at the end


@needs_chromium
def test_names_holding_script_run_nothing_in_the_browser(runs: dict[str, Path], tmp_path: Path) -> None:
    path, _ = evil_page(runs, tmp_path)
    page_dom = dom(path.as_uri())
    parsed = Tables(page_dom)
    assert "data-pwned" not in parsed.body and "<title>mibe leaderboard</title>" in page_dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in page_dom  # shown as text
