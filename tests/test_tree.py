"""The tests' own shape (tests/README.md): test modules sit in the folder of the package wing they test,
helpers live in tests/support/, no test module imports another, a shared fixture is declared once,
and every marker a test uses is registered."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.paths import REPO, TESTS

# The package's wings, plus cli/ for what a user types and reads; support/ holds helpers, not tests.
FOLDERS = {"backends", "boards", "cli", "runfolder", "runner", "scoring", "tasks", "training", "support"}
# Rules about the whole repository rather than one module stay at the top.
TOP_LEVEL = {"__init__.py", "conftest.py", "test_docs.py", "test_install.py", "test_layout.py"}
TOP_LEVEL |= {"test_tree.py", "test_writer.py"}
# pytest's own marks; every other one must be registered in pyproject.toml (--strict-markers refuses it).
BUILT_IN_MARKS = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings"}


def modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "fixtures" not in p.relative_to(TESTS).parts)


def test_test_modules_sit_in_the_folder_of_what_they_test() -> None:
    top = {p.name for p in TESTS.glob("*.py")}
    assert top <= TOP_LEVEL, f"move {sorted(top - TOP_LEVEL)} into tests/<wing>/ (tests/README.md)"
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    folders -= {"fixtures"}
    assert folders <= FOLDERS, f"unknown test folders {sorted(folders - FOLDERS)}: see tests/README.md"
    for folder in folders:  # a package each, so two folders may hold equal file names
        assert (TESTS / folder / "__init__.py").is_file(), f"tests/{folder}/__init__.py is missing"
    helpers = [p.name for p in (TESTS / "support").glob("test_*.py")]
    assert not helpers, f"tests/support/ holds helpers, not tests: {helpers}"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_no_test_module_imports_another_or_the_conftest() -> None:
    # A helper two test modules need goes to tests/support/, a fixture to tests/conftest.py.
    bad = re.compile(r"^tests\.(conftest|(\w+\.)*test_\w+)$")
    found = {
        str(p.relative_to(REPO)): sorted(m for m in imported_modules(p) if bad.match(m)) for p in modules()
    }
    assert not {k: v for k, v in found.items() if v}


def fixtures(path: Path) -> list[tuple[str, str]]:
    """(name, scope) of each fixture a module declares with @pytest.fixture."""
    out = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        for deco in getattr(node, "decorator_list", []):
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call else deco
            if ast.unparse(target) != "pytest.fixture":
                continue
            scope = next((k.value for k in (call.keywords if call else []) if k.arg == "scope"), None)
            out.append((node.name, ast.literal_eval(scope) if scope else "function"))
    return out


def test_a_session_fixture_is_declared_once() -> None:
    # Two declarations of one session fixture build it twice and drift apart; conftest.py holds it.
    where: dict[str, list[str]] = {}
    for path in modules():
        for name, scope in fixtures(path):
            if scope == "session":
                where.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert not {k: v for k, v in where.items() if len(v) > 1}


def test_every_marker_used_is_registered(pytestconfig: pytest.Config) -> None:
    assert "--strict-markers" in pytestconfig.getini("addopts")
    registered = {m.split(":")[0].strip() for m in pytestconfig.getini("markers")}
    used = set()
    for path in modules():
        used |= set(re.findall(r"pytest\.mark\.(\w+)", path.read_text(encoding="utf-8")))
    assert used - BUILT_IN_MARKS <= registered
