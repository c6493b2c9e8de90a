"""Every Markdown file mibe writes renders as tables in a real CommonMark+tables renderer
(markdown-it-py, its CommonMark preset with the table rule): the leaderboard, `mibe compare`, the
checkpoint-vs-base view, the parsing audit and the contamination report. Their cells go through the
one escaper (mibe.textout.md_escape), so a model name holding `|`, `<i>` or a backslash stays one cell
of text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from mibe.boards import compare, compare_text, delta, delta_text, render
from mibe.boards.board import build
from mibe.runfolder import audit
from mibe.textout import md_table
from mibe.training import contamination
from tests.support.runfiles import results
from tests.support.scriptedruns import strict_and_paper

EVIL = "a|b <i>x</i> c\\d"  # a pipe, markup and a backslash in one model name
SHOWN = "a|b &lt;i&gt;x&lt;/i&gt; c\\d"  # the same name as the renderer's HTML shows it: text
RENDERER = MarkdownIt("commonmark").enable("table")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A scripted run, and the same outputs read by the paper's parser under a hostile model name."""
    strict, evil = strict_and_paper(tmp_path_factory.mktemp("markdown"), "evil")
    named = results(evil)
    named["model"]["name"] = EVIL
    (evil / "results.json").write_text(json.dumps(named))
    return strict, evil


def rendered_rows(text: str) -> tuple[int, int]:
    """(rows the renderer drew inside tables, table rows in the source: lines starting with `|` that
    are not a header's separator)."""
    drawn = sum(1 for token in RENDERER.parse(text) if token.type == "tr_open")
    source = [line for line in text.splitlines() if line.startswith("|")]
    return drawn, sum(1 for line in source if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line))


def cells_per_row(text: str) -> set[int]:
    """The number of cells of every table line: pipes a backslash does not escape, less one."""
    return {len(re.findall(r"(?<!\\)\|", line)) - 1 for line in text.splitlines() if line.startswith("|")}


def tables_are_rectangles(text: str) -> bool:
    """Each table (a run of `|` lines): every row as many cells as its header."""
    blocks = re.findall(r"(?:^\|.*\n?)+", text, flags=re.M)
    return bool(blocks) and all(len(cells_per_row(block)) == 1 for block in blocks)


def assert_tables(text: str) -> str:
    """Every table line drawn as a row of a table (none left as a paragraph); the HTML drawn."""
    drawn, source = rendered_rows(text)
    assert drawn == source > 0, text
    html = RENDERER.render(text)
    assert "<i>" not in html  # markup from a name is text
    return html


def test_the_leaderboard(runs: tuple[Path, Path]) -> None:
    text = render.markdown(build(list(runs), published=False, n_boot=50))
    html = assert_tables(text)
    assert tables_are_rectangles(text)
    assert f"<td>{SHOWN}" in html  # the hostile name is one cell, shown as written


def test_compare(runs: tuple[Path, Path]) -> None:
    text = compare_text.render(compare.compare(*runs, n_boot=50), "md")
    html = assert_tables(text)
    assert cells_per_row(text) == {len(compare_text.HEAD)}
    assert f"B: {SHOWN}" in html  # in the notes below the table


def test_the_checkpoint_vs_base_view(runs: tuple[Path, Path]) -> None:
    strict, evil = runs
    text = delta_text.render(delta.delta([str(evil)], [f"{evil}={strict}"], n_boot=50), "md")
    html = assert_tables(text)
    assert cells_per_row(text) == {len(delta_text.HEAD)}
    assert f"<h3>{SHOWN} - " in html


def test_the_parsing_audit(runs: tuple[Path, Path]) -> None:
    text = audit.render(audit.audit(runs[0], [], examples=2), md=True)
    assert_tables(text)
    assert tables_are_rectangles(text)


def test_the_contamination_report() -> None:
    hits = [{"id": "d|1", "how": "exact field", "field": "question", "file": "c<i>x</i>.jsonl", "line": 3}]
    doc = {
        "corpora": ["c.jsonl"], "documents_scanned": 10, "bytes_scanned": 1000, "matcher_version": 1,
        "min_words": 8, "ngram": 13, "share": 0.5, "skipped": {"mimic": "no data | none"},
        "tasks": {
            "pubmedqa": {
                "credentialed": False, "documents": 3, "touched": 1, "share": 1 / 3, "hits": hits,
                "by_evidence": {"question + answer": 0, "exact field": 1, "n-gram run": 0},
                "published_query_hits": 0,
            }
        },
    }  # fmt: skip
    text = contamination.markdown(doc)
    html = assert_tables(text)
    assert cells_per_row(text) == {7}
    assert "<li>d|1 (exact field, field question): c&lt;i&gt;x&lt;/i&gt;.jsonl:3</li>" in html


def test_the_escaper_keeps_every_hostile_cell_one_cell() -> None:
    names = [EVIL, "x\ny", "`|`", "| starts", "ends |", "<script>alert(1)</script>", "\\|", "a || b"]
    text = "\n".join(md_table(["name", "n"], [[name, "1"] for name in names])) + "\n"
    html = assert_tables(text)
    assert cells_per_row(text) == {2}
    assert html.count("<td>1</td>") == len(names)  # the second column is never pushed out
