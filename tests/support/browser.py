"""Headless Chromium for the page tests: where it is, and the mark its tests carry."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import TypeVar

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
Test = TypeVar("Test", bound=Callable)


def needs_chromium(test: Test) -> Test:
    """Slow (it starts a browser), and skipped with the reason where Debian's chromium is absent."""
    absent = pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is not installed (tests/prepare.sh installs it when run as root: "
        "apt-get install -y chromium)",
    )
    return pytest.mark.slow(absent(test))
