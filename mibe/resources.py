"""Where the shipped folders (tasks/, prompts/, training/, leaderboards/, scale-out/, docs/) live.

A wheel carries them inside the package (`mibe/_shipped/<name>`); a source checkout or an
editable install reads them from the repository root beside `mibe/`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from mibe.types import MibeError

_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    inside = _PACKAGE / "_shipped" / name
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / name


def tasks_dir() -> Path:
    return shipped("tasks")


def prompts_dir() -> Path:
    return shipped("prompts")


def scale_out_dir() -> Path:
    """The SLURM templates `mibe scale-out slurm` prints (docs/scale-out.md)."""
    return shipped("scale-out")


def docs_dir() -> Path:
    """The documentation pages that errors and help texts cite (`mibe docs NAME` prints one)."""
    return shipped("docs")


def doc_pages() -> dict[str, Path]:
    """Each documentation page by name (docs/statistics.md is `statistics`), in name order."""
    return {p.stem: p for p in sorted(docs_dir().glob("*.md"))}


def doc_page(name: str) -> Path:
    """The page a name, a file name or a cited path means: `statistics`, `statistics.md` or
    `docs/statistics.md`."""
    pages, stem = doc_pages(), Path(name).stem
    if stem not in pages:
        near = difflib.get_close_matches(stem, list(pages), n=1)
        hint = f"did you mean '{near[0]}'?" if near else "`mibe docs` lists them"
        raise MibeError(f"mibe docs {name}: no such page; {hint}")
    return pages[stem]


def doc_title(path: Path) -> str:
    """A page's first heading, as `mibe docs` lists it."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


_CITED = re.compile(r"\bdocs/([\w-]+)\.md\b")
DOCS_EPILOG = (
    "Pages cited as docs/<page>.md ship with mibe: `mibe docs` lists them, `mibe docs PAGE` prints one."
)


def cite_docs(text: str) -> str:
    """An error that cites a page of docs/, with how to read it wherever mibe is installed."""
    cited = list(dict.fromkeys(_CITED.findall(text)))
    if not cited or "`mibe docs" in text:
        return text
    verb = "prints it" if len(cited) == 1 else "print them"
    return text + " (" + ", ".join(f"`mibe docs {name}`" for name in cited) + f" {verb})"


def demo_dir() -> Path:
    return tasks_dir() / "demo"
