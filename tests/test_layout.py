"""The package's shape: imports only point down the wings, and functions stay short enough to read.

Order, top to bottom: cli (with mibe/commands/) -> training, boards -> runner -> runfolder -> tasks,
data, prompts -> scoring -> backends -> foundation (types, version, resources, hub, lineage, names,
textout, userfiles, log). A module may import its own wing or any wing below it, never one above: the check
walks every import statement, also those inside functions. No module may depend on itself through
others, inside a wing as well as across wings: importing `mibe.a.b` also runs the top-level imports of
`mibe/__init__.py` and `mibe/a/__init__.py`, and an import inside a function counts as much as one at
the top.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mibe"
LEVELS = {
    "foundation": 0,
    "backends": 1,
    "scoring": 2,
    "tasks": 3,
    "runfolder": 4,
    "runner": 5,
    "boards": 6,
    "training": 6,
    "cli": 7,
}
FOUNDATION = {"types", "version", "resources", "hub", "lineage", "names", "textout", "userfiles", "log"}
TASK_WING = {"tasks", "data", "datafiles", "prompts", "datacheck", "taskfiles", "matcher", "corpusscan"}
LONGEST = 60  # lines a function may take, argparse tables apart


def wing(module: str) -> str:
    """mibe.scoring.kinds -> scoring; mibe.types -> foundation; the package itself -> foundation."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in FOUNDATION or parts[0] == "__init__":
        return "foundation"
    if parts[0] in TASK_WING:
        return "tasks"
    if parts[0] in ("cli", "__main__", "commands"):  # mibe/commands/: a module per command of cli.py
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


def targets(tree: ast.AST, top_level_only: bool = False) -> set[str]:
    """The mibe modules an import names, resolved to files: `from mibe.runner import api` is mibe.runner.api,
    `from mibe import __version__` is the package `mibe` itself (its __init__)."""
    nodes = tree.body if top_level_only else ast.walk(tree)  # type: ignore[attr-defined]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "mibe"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mibe":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(rel[:-1] if rel[-1] == "__init__" else rel)] = path
    return out


MODULES = _modules()


def graph() -> dict[str, set[str]]:
    """module -> the modules it depends on: every import it writes (in functions too), and the
    top-level imports of each package __init__ an import runs on its way (`import mibe.runner.api`
    first runs mibe/__init__.py and mibe/runner/__init__.py)."""
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}
    inits = {m: targets(trees[m], top_level_only=True) for m, p in MODULES.items() if p.name == "__init__.py"}
    edges: dict[str, set[str]] = {}
    for module, tree in trees.items():
        found = set(targets(tree))
        for name in list(found):
            parts = name.split(".")
            for i in range(1, len(parts)):
                found |= inits.get(".".join(parts[:i]), set())
        edges[module] = {t for t in found if t in MODULES and t != module}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, [" <-> ".join(group) for group in found]


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        # inside one wing, through an import in a function
        ({"mibe/runner/a.py": "from mibe.runner import b\n",
          "mibe/runner/b.py": "def f():\n    from mibe.runner import a\n"},
         ["mibe.runner.a", "mibe.runner.b"]),
        # through the package: `from mibe import __version__` runs mibe/__init__.py, which imports a
        ({"mibe/__init__.py": "def f():\n    from mibe.runner import a\n",
          "mibe/runner/a.py": "from mibe import __version__\n"},
         ["mibe", "mibe.runner.a"]),
        # through a package __init__ that imports at its top
        ({"mibe/runner/__init__.py": "from mibe.runner import a\n",
          "mibe/runner/a.py": "x = 1\n", "mibe/runner/b.py": "from mibe.runner import a\n",
          "mibe/scoring/c.py": "import mibe.runner.b\n"}, []),
        ({"mibe/runner/__init__.py": "from mibe.runner import a\n",
          "mibe/runner/a.py": "from mibe.scoring import c\n",
          "mibe/scoring/c.py": "def f():\n    import mibe.runner.b\n", "mibe/runner/b.py": "x = 1\n"},
         ["mibe.runner.a", "mibe.scoring.c"]),
        # a leaf module beside a lazy package entry point: no cycle
        ({"mibe/__init__.py": "from mibe.version import v\ndef f():\n    from mibe.runner import a\n",
          "mibe/version.py": "v = 1\n", "mibe/runner/a.py": "from mibe.version import v\n"}, []),
    ],
)  # fmt: skip
def test_the_cycle_check_sees_cycles(
    files: dict[str, str], cycle: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, body in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    for folder in ("mibe", "mibe/run", "mibe/scoring"):
        init = tmp_path / folder / "__init__.py"
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "mibe")
    monkeypatch.setattr(sys.modules[__name__], "MODULES", _modules())
    assert cycles(graph()) == ([cycle] if cycle else [])


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
    tree = ast.parse("def f():\n    from mibe.runner import api\n")
    assert [(line, wing(name)) for line, name in imported(tree, "mibe.scoring.kinds")] == [(2, "runner")]


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


BENCHMARKS = PACKAGE.parent / "benchmarks"


def _mibe_names(tree: ast.AST) -> dict[str, object]:
    """What each `import mibe...` / `from mibe... import x` binds in a script (anywhere in it)."""
    import importlib

    bound: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mibe":
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):  # a submodule not yet imported by its package
                    importlib.import_module(f"{node.module}.{alias.name}")
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                bound[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mibe" and alias.asname:
                    bound[alias.asname] = importlib.import_module(alias.name)
    return bound


def _stale_uses(tree: ast.AST, bound: dict[str, object]) -> list[str]:
    """`module.name` that no longer exists, and keywords a mibe function no longer takes."""
    import inspect

    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            owner = bound[node.value.id]
            if inspect.ismodule(owner) and not hasattr(owner, node.attr):
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr} does not exist")
        if not isinstance(node, ast.Call) or not node.keywords:
            continue
        f = node.func
        target = None
        if isinstance(f, ast.Name) and f.id in bound:
            target = bound[f.id]
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in bound:
            target = getattr(bound[f.value.id], f.attr, None)
        if not callable(target) or inspect.isclass(target):
            continue
        params = inspect.signature(target).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        for keyword in node.keywords:
            if keyword.arg is not None and keyword.arg not in params:
                found.append(f"line {node.lineno}: {ast.unparse(f)}() takes no {keyword.arg}=")
    return found


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_benchmarks_use_only_names_mibe_still_has(script: str) -> None:
    """No test runs the GPU and speed scripts on every change, so a rename (pipeline.plan ->
    task_plan.plan) or a dropped parameter (`say=`) would break them silently: read them instead."""
    tree = ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))
    stale = _stale_uses(tree, _mibe_names(tree))
    assert not stale, f"benchmarks/{script}: " + "; ".join(stale)
