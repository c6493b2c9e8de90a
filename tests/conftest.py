from __future__ import annotations

from pathlib import Path

import pytest

from tests import tinymodel

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PUBLIC = SHARED / "data" / "mibe-public"


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tinymodel.build(tmp_path_factory.mktemp("tiny-llama"), REPO)


def needs_public_data() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not PUBLIC.is_dir(), reason=f"reads the public MIBE samples in {PUBLIC}, absent here"
    )
