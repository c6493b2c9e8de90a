"""The repository is self-contained: it cites its own files, never the team's design notes, and every
`docs/...` page it names exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
# The team's design notes, which users never receive: a citation of one is a dead end for a reader.
DESIGN_NOTES = re.compile(r"design/|CONTRACTS|MIBE\.md|MIBE-prompts|PERFORMANCE\.md|ARCHITECTURE")
DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w./-]*?\.md\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Not sources: build outputs, environments, run folders, and invented fixture data.
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "runs", "__pycache__", "build", "dist"}


def repo_files() -> list[Path]:
    """The files a checkout holds (tracked or new, not ignored), fixtures and this file left out."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True, timeout=60,
        ).stdout.decode()  # fmt: skip
        paths = [REPO / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):  # a source tree without git: walk it
        paths = [
            p for p in REPO.rglob("*")
            if not SKIP_DIRS & set(p.relative_to(REPO).parts) and not p.name.endswith(".egg-info")
        ]  # fmt: skip
    fixtures = REPO / "tests" / "fixtures"
    return sorted(p for p in paths if p.is_file() and p != HERE and fixtures not in p.parents)


def text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="ignore")


def design_citations(source: str) -> list[str]:
    return [m.group(0) for m in DESIGN_NOTES.finditer(source)]


def docs_paths(source: str) -> list[str]:
    return [m.group(0) for m in DOCS_PATH.finditer(source)]


def link_targets(source: str) -> list[str]:
    """Local targets of markdown links, without their #anchors."""
    found = (m.group(1).split("#")[0] for m in LINK.finditer(source))
    return [t for t in found if t and "://" not in t and not t.startswith("mailto:")]


@pytest.mark.parametrize(
    ("line", "cited"),
    [
        ("see ../shared/design/CONTRACTS.md", ["design/", "CONTRACTS"]),
        ("# The paper's scripts (MIBE.md): greedy", ["MIBE.md"]),
        ("the exact text is in `MIBE-prompts.md`", ["MIBE-prompts"]),
        ("measured (PERFORMANCE.md)", ["PERFORMANCE.md"]),
        ("the wings of ARCHITECTURE", ["ARCHITECTURE"]),
        ("--model /shared/models/llama-13b --tasks all", []),  # a user's path in an example command
        ("docs/run-folder.md, the run-folder contract", []),
        ("the architecture of the harness", []),
    ],
)
def test_the_citation_pattern(line: str, cited: list[str]) -> None:
    assert design_citations(line) == cited


@pytest.mark.parametrize(
    ("source", "paths", "links"),
    [
        ("read `docs/run-folder.md`.", ["docs/run-folder.md"], []),
        ("[rules](scoring-rules.md#the-metrics), [x](https://example.org/a.md)", [], ["scoring-rules.md"]),
        ("tests/docs/x.md and mydocs/y.md are not docs/ paths", [], []),
        ("[exit codes](run-folder.md) (docs/reliability.md)", ["docs/reliability.md"], ["run-folder.md"]),
    ],
)  # fmt: skip
def test_the_path_and_link_patterns(source: str, paths: list[str], links: list[str]) -> None:
    assert docs_paths(source) == paths
    assert link_targets(source) == links


def test_no_file_cites_the_design_notes() -> None:
    files = repo_files()
    assert any(p.name == "README.md" and p.parent == REPO for p in files)  # the listing works
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}"
        for path in files
        for number, line in enumerate(text(path).splitlines(), 1)
        if design_citations(line)
    ]
    assert offenders == [], "cite a file of this repository instead (docs/, tasks/README.md, leaderboards/)"


def test_every_docs_path_named_anywhere_exists() -> None:
    missing = sorted(
        f"{path.relative_to(REPO)}: {name}"
        for path in repo_files()
        for name in set(docs_paths(text(path)))
        if not (REPO / name).is_file()
    )
    assert missing == []


@pytest.mark.parametrize(
    "page", [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_every_link_of_a_page_exists(page: Path) -> None:
    missing = [t for t in link_targets(text(page)) if not (page.parent / t).exists()]
    assert missing == []


def test_the_task_file_key_table_lists_exactly_the_keys_the_loader_allows() -> None:
    from mibe import tasks

    text = (REPO / "docs" / "task-files.md").read_text(encoding="utf-8")
    table = text[text.index("| key | type | default |") : text.index("Any other key is an error")]
    keys = re.findall(r"^\| `([\w.]+)` \|", table, flags=re.M)
    nested: dict[str, set[str]] = {}
    for key in keys:
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, set()).add(rest)
    assert {k for k in keys if "." not in k} == tasks._KEYS
    assert nested == {
        "dataset": tasks._DATASET_KEYS,
        "answer": tasks.ANSWER_KEYS,
        "generation": tasks.GENERATION_KEYS,
    }


def test_the_tutorial_needs_no_chat_template_flag_and_auto_is_the_default() -> None:
    from mibe import cli

    text = (REPO / "docs" / "task-files.md").read_text(encoding="utf-8")
    tutorial = text[text.index("## Five-minute tutorial") :]
    runs = [line for line in tutorial.splitlines() if line.startswith("mibe run ")]
    assert runs and not any("--chat-template" in line for line in runs)
    assert "`--chat-template auto`" in tutorial
    # The run's help states the same default (the tutorial's run is tests/tasks/test_tasks_cli.py's).
    assert "Default under --protocol mibe: auto" in _run_help(cli)


def _run_help(cli) -> str:
    import argparse

    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices["run"].format_help().split())


def test_every_cited_page_is_one_mibe_docs_prints(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from mibe import cli, resources

    cited = {Path(name).stem for path in (REPO / "mibe").rglob("*.py") for name in docs_paths(text(path))}
    assert cited and cited <= set(resources.doc_pages())
    assert cli.main(["docs", "judges"]) == 0
    assert capsys.readouterr().out == (REPO / "docs" / "judges.md").read_text(encoding="utf-8")
    assert cli.main(["docs", "judge"]) == 2
    assert capsys.readouterr().err == "mibe: error: mibe docs judge: no such page; did you mean 'judges'?\n"
    # Every command's --help ends by saying how to read the pages it cites.
    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in {"mibe": parser, **sub.choices}.items():
        assert resources.DOCS_EPILOG in " ".join(command.format_help().split()), name
    said = resources.cite_docs("x: see docs/statistics.md and docs/judges.md, then docs/statistics.md")
    assert said.endswith("docs/statistics.md (`mibe docs statistics`, `mibe docs judges` print them)")
