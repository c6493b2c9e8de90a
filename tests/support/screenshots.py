"""The pages a person looks at, rendered from real runs of the tiny model and measured in headless
Chromium: the leaderboard, the run viewer (one run, two runs) and the checkpoint-vs-base page.

Used by tests/boards/test_layout_pages.py, and run as a script to regenerate the screenshots in docs/images/:

    python -m tests.support.screenshots            # builds the tiny model and the runs in a temporary folder

A page is shown at a given width inside an <iframe> of that width (a headless window is never
narrower than 500 px), with a script that measures it through the DOM and posts the numbers out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from html import unescape
from pathlib import Path

from tests.support import tinymodel
from tests.support.boardruns import make_board_runs, reseeded
from tests.support.browser import CHROMIUM
from tests.support.paths import REPO

SIZES = {"desktop": (1400, 1000), "phone": (390, 844)}
DEMO_TASKS = ("pubmedqa", "medqa", "mtsample", "hoc", "ddi2013", "emrqa")
IMAGES = REPO / "docs" / "images"

# Cards: boxes whose content must stay inside them. A box that scrolls (overflow auto/scroll) may
# hold wider content: it scrolls inside itself, and is then reported in `scrolls`, not as a spill.
MEASURE = """
(function(){
  var CARDS='figure, section.task, .wrap, .banner, .warn, .card, details, li, h1, h2, h3, p';
  function scrolls(e){var o=getComputedStyle(e).overflowX;return o==='auto'||o==='scroll'||o==='hidden';}
  function name(e){return e.tagName.toLowerCase()+(e.id?'#'+e.id:'')+
    (typeof e.className==='string'&&e.className?'.'+e.className.trim().split(/\\s+/).join('.'):'');}
  var spills=[],scrolling=[];
  document.querySelectorAll(CARDS).forEach(function(card){
    var box=card.getBoundingClientRect();
    if(box.width===0)return;
    if(scrolls(card)){if(card.scrollWidth>card.clientWidth+1)scrolling.push(name(card));return;}
    card.querySelectorAll('*').forEach(function(e){
      for(var up=e.parentElement;up&&up!==card;up=up.parentElement){if(scrolls(up))return;}
      var r=e.getBoundingClientRect();
      if(r.width===0||r.height===0)return;
      if(r.right>box.right+1||r.left<box.left-1)
        spills.push(name(card)+' > '+name(e)+' by '+
          Math.round(Math.max(r.right-box.right,box.left-r.left))+'px');
    });
  });
  var boards=Array.prototype.map.call(document.querySelectorAll('.wrap'),function(w){
    return {board:!!w.querySelector('table.board'),scroll:w.scrollWidth-w.clientWidth};});
  parent.postMessage(JSON.stringify({viewport:window.innerWidth,page:document.documentElement.scrollWidth,
    spills:spills.slice(0,20),n_spills:spills.length,scrolling:scrolling,wraps:boards}),'*');
})();
"""


def browse(*args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "Debian's chromium is not installed (tests/prepare.sh installs it)"
    profile = tempfile.mkdtemp(prefix="mibe-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=8000", *args],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _frame(page: Path, width: int, height: int, measure: bool) -> Path:
    """A harness page holding `page` in an iframe of the given size (the page's own viewport)."""
    inner = page
    if measure:
        inner = page.with_name(f"{page.stem}.measured.html")
        inner.write_text(page.read_text().replace("</body>", f"<script>{MEASURE}</script></body>"))
    harness = page.with_name(f"{page.stem}.{width}.{'m' if measure else 's'}.html")
    harness.write_text(
        "<!doctype html><html><head><style>body{margin:0}iframe{border:0;display:block}</style></head>"
        f'<body><iframe src="{inner.name}" width="{width}" height="{height}"></iframe>'
        '<pre id="measured"></pre><script>window.addEventListener("message",function(m){'
        'document.getElementById("measured").textContent=m.data;});</script></body></html>'
    )
    return harness


def measure(page: Path, width: int, height: int) -> dict:
    """The page at `width` x `height`: its scroll width, the viewport, spills out of cards, wrappers."""
    harness = _frame(page, width, height, measure=True)
    result = browse(f"--window-size={max(width, 500)},{height + 100}", "--dump-dom", harness.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', result.stdout, re.S)
    assert result.returncode == 0 and found and found.group(1), result.stderr[-2000:]
    return json.loads(unescape(found.group(1)))


def screenshot(page: Path, width: int, height: int, target: Path) -> Path:
    from PIL import Image

    harness = _frame(page, width, height, measure=False)
    window = max(width, 500)
    result = browse(f"--window-size={window},{height}", f"--screenshot={target}", harness.as_uri())
    assert result.returncode == 0 and target.is_file(), result.stderr[-2000:]
    Image.open(target).crop((0, 0, width, height)).save(target, optimize=True)
    return target


def make_runs(tiny_llama: Path, root: Path) -> dict[str, Path]:
    """Two demo runs (two checkpoints, the base and a 'tuned' one) over six demo tasks."""
    from mibe.runner import api
    from mibe.types import RunConfig

    done = root / "done.json"
    if done.is_file():
        return {k: Path(v) for k, v in json.loads(done.read_text()).items()}
    other = reseeded(tiny_llama, root / "tiny-tuned", seed=3)
    out = {}
    for name, model in (("base", tiny_llama), ("tuned", other)):
        config = RunConfig(
            model=str(model), tasks=DEMO_TASKS, demo=True, max_new_tokens=8, bootstrap=100,
            batch_size=8, output_dir=str(root / name),
        )  # fmt: skip
        api.run(config)
        out[name] = root / name
    done.write_text(json.dumps({k: str(v) for k, v in out.items()}))
    return out


def make_pages(runs: dict[str, Path], board_runs: list[Path], target: Path) -> dict[str, Path]:
    """The four pages, written under `target`."""
    from mibe.boards import delta, delta_text
    from mibe.boards.board import build
    from mibe.boards.html import html
    from mibe.boards.view import render_view
    from mibe.boards.view_runs import load

    target.mkdir(parents=True, exist_ok=True)
    base, tuned = str(runs["base"]), str(runs["tuned"])
    board = build([*board_runs, base, tuned], published="paper_zero_shot", n_boot=100)
    texts = {
        "board": html(board),
        "view-one": render_view([load(base)]),
        "view-two": render_view([load(base), load(tuned)]),
        "delta": delta_text.render(delta.delta([tuned], [f"{tuned}={base}"], n_boot=100), "html"),
    }
    pages = {}
    for name, text in texts.items():
        pages[name] = target / f"{name}.html"
        pages[name].write_text(text, encoding="utf-8")
    return pages


def main() -> int:

    with tempfile.TemporaryDirectory(prefix="mibe-shots-") as tmp:
        root = Path(tmp)
        tiny = tinymodel.build(root / "tiny-llama", REPO)
        runs = make_runs(tiny, root / "demo-runs")
        board_runs = make_board_runs(tiny, root)
        pages = make_pages(runs, [board_runs["zero"], board_runs["lora"]], root / "pages")
        IMAGES.mkdir(parents=True, exist_ok=True)
        from mibe.boards.board import build
        from mibe.boards.plot import plot

        plot(build([runs["base"], runs["tuned"]], n_boot=100), IMAGES / "figure-demo.png")
        print("wrote docs/images/figure-demo.png")
        for name, page in pages.items():
            for size, (width, height) in SIZES.items():
                shot = screenshot(page, width, height, IMAGES / f"{name}-{size}.png")
                print(f"wrote {shot.relative_to(IMAGES.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
