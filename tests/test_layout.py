"""The package's shape: imports only point down the wings, and functions stay short enough to read.

Order, top to bottom: cli -> training, boards -> run -> runs -> tasks, data, prompts -> scoring ->
backends -> foundation (types, resources, hub, lineage, names). A module may import its own wing or any wing
below it, never one above: the check walks every import statement, also those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mibe"
LEVELS = {
    "foundation": 0,
    "backends": 1,
    "scoring": 2,
    "tasks": 3,
    "runs": 4,
    "run": 5,
    "boards": 6,
    "training": 6,
    "cli": 7,
}
FOUNDATION = {"types", "resources", "hub", "lineage", "names", "textout"}
TASK_WING = {"tasks", "data", "prompts", "datacheck", "taskfiles", "matcher", "corpusscan"}
LONGEST = 60  # lines a function may take, argparse tables apart


def wing(module: str) -> str:
    """mibe.scoring.kinds -> scoring; mibe.types -> foundation; the package itself -> foundation."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in FOUNDATION or parts[0] == "__init__":
        return "foundation"
    if parts[0] in TASK_WING:
        return "tasks"
    if parts[0] in ("cli", "__main__"):
        return "cli"
    return parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] + (["__init__"] if len(parts) == 1 else [])
    return ".".join(parts)


def imported(tree: ast.AST, here: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("mibe")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mibe"):
            if (
                node.module == "mibe"
            ):  # `from mibe import data, tasks`: each name is a module (or __version__)
                found += [(node.lineno, f"mibe.{a.name}") for a in node.names if a.name != "__version__"]
            else:
                found.append((node.lineno, node.module))
    return found


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_point_down(path: Path) -> None:
    here = module_name(path)
    if here == "mibe":
        return  # the package's lazy `mibe.evaluate` entry point sits above everything by design
    mine = wing(here)
    bad = [
        f"{path.name}:{line} imports {name} ({wing(name)} sits above {mine})"
        for line, name in imported(ast.parse(path.read_text(encoding="utf-8")), here)
        if LEVELS[wing(name)] > LEVELS[mine] or (wing(name) != mine and LEVELS[wing(name)] == LEVELS[mine])
    ]
    assert not bad, bad


def test_the_walker_sees_an_upward_import() -> None:
    tree = ast.parse("def f():\n    from mibe.run import api\n")
    assert [(line, wing(name)) for line, name in imported(tree, "mibe.scoring.kinds")] == [(2, "run")]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_functions_fit_on_a_screen(path: Path) -> None:
    long = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            argparse_table = (
                sum(1 for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr == "add_argument")
                > 5
            )
            if lines > LONGEST and not argparse_table:
                long.append(f"{node.name} ({lines} lines)")
    assert not long, f"{path.name}: {long}"
