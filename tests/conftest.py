"""Fixtures shared by every test folder; helpers live in tests/support/ (no test module imports
another)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import boardruns, logs, tinymodel
from tests.support.paths import REPO


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tinymodel.build(tmp_path_factory.mktemp("tiny-llama"), REPO)


@pytest.fixture(scope="session")
def board_runs(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real tiny-LLaMA runs (zero-shot, 1-shot, LoRA, another checkpoint, demo) for the board tests."""
    return boardruns.make_board_runs(tiny_llama, tmp_path_factory.getbasetemp())


@pytest.fixture
def said() -> Iterator[list[str]]:
    """The messages the `mibe` logger receives during the test (DEBUG and up), in order."""
    with logs.collected() as lines:
        yield lines
