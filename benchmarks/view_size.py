"""`mibe view` at scale: page size and load time in headless Chromium for 1,000 and 10,000 PubMed-like
samples (long invented articles as prompts, summaries as outputs and golds), and the 10k/1k ratio.

python benchmarks/view_size.py [--sizes 1000 10000] [--repeat 3]

Load: from navigation start to the end of the page's script (HTML parsed, JSON parsed, first page of
rows drawn), measured in the page (performance.now()); wall: the whole headless Chromium process,
start-up included. Search: one full-text search over every sample, the first (which builds the
lower-cased index) and a second one.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mibe.boards.view import render_view
from mibe.boards.view_data import ViewRun

WORDS = [
    "patients", "cohort", "trial", "randomized", "outcome", "mortality", "risk", "ratio", "interval",
    "clinical", "therapy", "dose", "placebo", "baseline", "follow-up", "analysis", "significant",
    "reduction", "increase", "association", "hospital", "adverse", "events", "treatment", "group",
    "control", "study", "observed", "compared", "months", "years", "median", "mean",
]  # fmt: skip
TASKS = {"pubmed": {"answer_type": "text", "choices": [], "credentialed": False}}
PROBE = """<script>(function(){var t0=performance.now();
var shown=document.querySelectorAll('#rows tbody tr.row').length;
var q=document.getElementById('f-q');
q.value='mortality zzz';var s=performance.now();window.mibeView.apply();var first=performance.now()-s;
q.value='cohort zzz';s=performance.now();window.mibeView.apply();var second=performance.now()-s;
var p=document.createElement('pre');p.id='bench';p.textContent=JSON.stringify({load:t0,first:first,
second:second,rows:shown});document.body.appendChild(p);})();
</script></body>"""


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def samples(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        article = words(rng, rng.randint(900, 1700))  # 7-13k characters, like a PubMed article body
        summary = words(rng, rng.randint(120, 220))
        rows.append({
            "id": f"pmid-{i}", "index": i, "prompt": f"Summarize the article.\n\n{article}\n\nSummary:",
            "raw_output": summary, "prediction": summary, "gold": words(rng, rng.randint(150, 250)),
            "score": rng.random(), "parse_failed": False, "truncated_tokens": 0, "logprobs": None,
        })  # fmt: skip
    return rows


def load(path: Path, chromium: str) -> tuple[dict, float]:
    profile = tempfile.mkdtemp(prefix="mibe-chromium-")
    try:
        start = time.perf_counter()
        out = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", path.as_uri()],
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    found = re.search(r'<pre id="bench">(.*?)</pre>', out.stdout, re.S)
    if not found:
        raise SystemExit(f"no figures in the page: {out.stderr[-1000:]}")
    return json.loads(found.group(1).replace("&quot;", '"')), wall


def measure(n: int, repeat: int, chromium: str, folder: Path) -> dict:
    run = ViewRun("bench", {"tasks": {}}, {"pubmed": samples(n)}, TASKS)
    start = time.perf_counter()
    text = render_view([run])
    render = time.perf_counter() - start
    path = folder / f"view-{n}.html"
    path.write_text(text.replace("</body>", PROBE), encoding="utf-8")
    runs = [load(path, chromium) for _ in range(repeat)]
    return {
        "n": n,
        "mib": path.stat().st_size / 2**20,
        "render": render,
        "load_ms": statistics.median(r["load"] for r, _ in runs),
        "wall": statistics.median(w for _, w in runs),
        "search1_ms": statistics.median(r["first"] for r, _ in runs),
        "search2_ms": statistics.median(r["second"] for r, _ in runs),
        "rows_in_dom": runs[0][0]["rows"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, args.repeat, chromium, Path(tmp)) for n in args.sizes]
    print(
        "| samples | page | python render | load in page | chromium wall | search (1st / 2nd) | rows in DOM |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['n']:,} | {r['mib']:.1f} MiB | {r['render']:.2f} s | {r['load_ms']:.0f} ms "
            f"| {r['wall']:.2f} s "
            f"| {r['search1_ms']:.0f} / {r['search2_ms']:.0f} ms | {r['rows_in_dom']} |"
        )
    if len(results) >= 2:
        a, b = results[0], results[-1]
        print(
            f"{b['n']:,}/{a['n']:,}: size {b['mib'] / a['mib']:.1f}x, "
            f"load {b['load_ms'] / a['load_ms']:.1f}x, "
            f"wall {b['wall'] / a['wall']:.1f}x, render {b['render'] / a['render']:.1f}x"
        )


if __name__ == "__main__":
    main()
