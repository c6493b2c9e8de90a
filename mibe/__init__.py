"""mibe: score medical LLMs on MIBE, the 12-dataset Medical Instruction Benchmark of Me-LLaMA."""

from __future__ import annotations

from typing import Any

from mibe.types import takes_settings
from mibe.version import __version__

__all__ = ["__version__", "evaluate"]


@takes_settings
def evaluate(model: Any, tasks: Any = "all", backend: Any = None, **settings: Any) -> dict:
    """Score a model; the arguments are documented on `mibe.runner.python_api.evaluate` (a model and
    RunConfig's fields, or a RunConfig). Imported lazily so `import mibe` stays light (no torch until
    it runs)."""
    from mibe.runner.python_api import evaluate as _evaluate

    return _evaluate(model, tasks, backend, **settings)
