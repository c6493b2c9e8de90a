"""The wheel carries tasks/, prompts/, the demo documents and docs/: mibe works outside the checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import demo
from tests.support.paths import REPO

pytestmark = pytest.mark.slow  # builds and installs a wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    target = tmp_path_factory.mktemp("site")
    (wheel,) = wheels.glob("mibe-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    return target


def outside(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_wheel_finds_tasks_and_prompts_from_another_folder(installed: Path, tmp_path: Path) -> None:
    where = outside(installed, tmp_path, "-c", "import mibe; print(mibe.__file__)")
    assert where.stdout.strip().startswith(str(installed)), where.stderr
    listing = outside(installed, tmp_path, "-m", "mibe.cli", "tasks", "list")
    assert listing.returncode == 0, listing.stderr
    # a header, the 12 MIBE tasks, the 3 general tasks of the forgetting study (tasks/general/, shipped
    # too), and the line that explains the groups
    rows = [line.split() for line in listing.stdout.strip().splitlines()[1:-1]]
    groups = {row[0]: row for row in rows}
    assert len(rows) == 15 and sum("general" in row for row in rows) == 3, listing.stdout
    assert {"medqa", "mimic_cxr", "mmlu", "boolq", "arc_challenge"} <= set(groups), listing.stdout
    shown = outside(installed, tmp_path, "-m", "mibe.cli", "tasks", "show", "medqa")
    assert "You are a medical doctor taking the US Medical Licensing Examination" in shown.stdout


def test_wheel_runs_a_demo_task(installed: Path, tmp_path: Path, tiny_llama: Path) -> None:
    argv = demo.run_argv(tiny_llama, "out", "--max-new-tokens", "4")  # out/ relative to tmp_path
    result = outside(installed, tmp_path, "-m", "mibe.cli", *argv)
    assert result.returncode == 0, result.stderr
    entry = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["pubmedqa"]
    assert entry["n"] == 3 and entry["invented"] is True


def test_wheel_ships_the_page_templates(installed: Path, tmp_path: Path) -> None:
    # The pages are rendered from template, stylesheet and script files inside the package: a wheel
    # without them would install fine and fail at the first `mibe view`.
    shipped = sorted(p.name for p in (installed / "mibe" / "boards" / "templates").iterdir())
    assert shipped == [f"{page}.{ext}" for page in ("board", "delta", "view") for ext in ("css", "html", "js")
                       if (page, ext) != ("delta", "js")]  # fmt: skip
    code = (
        "from mibe.boards.view import render_view; from mibe.boards.view_data import ViewRun; "
        "meta = {'answer_type': 'choice', 'choices': ['yes'], 'credentialed': False}; "
        "print(render_view([ViewRun('<b>m</b>', {'tasks': {}}, {'t': []}, {'t': meta})]))"
    )
    page = outside(installed, tmp_path, "-c", code)
    assert page.returncode == 0, page.stderr
    assert "<title>mibe view: &lt;b&gt;m&lt;/b&gt;</title>" in page.stdout  # escaped by the template
    assert "function Table(id,pager,make,open)" in page.stdout and "details{margin" in page.stdout  # inlined


def test_wheel_ships_the_docs_and_mibe_docs_prints_them(installed: Path, tmp_path: Path) -> None:
    shipped = installed / "mibe" / "_shipped" / "docs"
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert sorted(p.name for p in shipped.glob("*.md")) == pages and len(pages) > 10
    listing = outside(installed, tmp_path, "-m", "mibe.cli", "docs")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^statistics +Statistics: what each number means", listing.stdout, flags=re.M)
    assert str(shipped) in listing.stdout  # read from the installed package, not a checkout
    page = outside(installed, tmp_path, "-m", "mibe.cli", "docs", "statistics")
    assert page.stdout == (REPO / "docs" / "statistics.md").read_text(encoding="utf-8").rstrip("\n") + "\n"
    where = outside(installed, tmp_path, "-m", "mibe.cli", "docs", "docs/statistics.md", "--path")
    assert where.stdout.strip() == str(shipped / "statistics.md")
    # An error that cites a page says how to read it from the wheel.
    argv = ["run", "--model", "m", "--protocol", "paper-fewshot"]
    refused = outside(installed, tmp_path, "-m", "mibe.cli", *argv)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    cited = "see docs/statistics.md, 'Few-shot as published') (`mibe docs statistics` prints it)\n"
    assert refused.stderr.endswith(cited)
