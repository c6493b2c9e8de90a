"""Where the tests find the repository, its fixtures and the team's shared data.

Every test module, however deep in tests/, takes its paths from here rather than from its own
`__file__`, so moving a test between folders never changes what it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
FIXTURES = TESTS / "fixtures"
# ../shared beside the checkout (a worktree links it there too): data that is not ours to ship.
SHARED = REPO.parent / "shared"
PUBLIC = SHARED / "data" / "mibe-public"


def needs_public_data() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not PUBLIC.is_dir(), reason=f"reads the public MIBE samples in {PUBLIC}, absent here"
    )
