"""mibe.evaluate's arguments: RunConfig's fields as typed keywords (or a RunConfig), a name that is no
field refused in one line, and `import mibe` light."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest

import mibe
from mibe.runner import python_api
from mibe.types import RunConfig


def test_the_signature_shows_every_setting_typed_with_its_default() -> None:
    for evaluate in (mibe.evaluate, python_api.evaluate):
        shown = inspect.signature(evaluate).parameters
        settings = {f.name for f in dataclasses.fields(RunConfig)} - {"model", "tasks", "backend"}
        assert settings <= set(shown)
        assert shown["limit"].kind is inspect.Parameter.KEYWORD_ONLY and shown["limit"].default is None
        assert shown["seed"].default == 1234 and "int" in str(shown["seed"].annotation)


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"limt": 3}, "mibe.evaluate: no setting 'limt'; did you mean limit? (mibe/types.py)"),
        ({"zzz": 1}, "mibe.evaluate: no setting 'zzz'; the settings are RunConfig's fields (mibe/types.py)"),
    ],
)
def test_a_keyword_that_is_no_setting_is_one_line(kwargs: dict, said: str) -> None:
    with pytest.raises(TypeError) as info:
        mibe.evaluate("m", "pubmedqa", **kwargs)
    assert str(info.value) == said


def test_a_run_config_carries_its_own_tasks_and_settings() -> None:
    with pytest.raises(TypeError, match="give tasks and settings in the RunConfig"):
        mibe.evaluate(RunConfig(model="m"), limit=2)


def test_import_mibe_stays_light() -> None:
    code = "import sys, inspect, mibe; inspect.signature(mibe.evaluate); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
