"""mibe: score medical LLMs on MIBE, the 12-dataset Medical Instruction Benchmark of Me-LLaMA."""

from __future__ import annotations

from typing import Any

from mibe.version import __version__

__all__ = ["__version__", "evaluate"]


def evaluate(model: str, tasks: Any = "all", **options: Any) -> dict:
    """Score a model; see `mibe.runner.api.evaluate`. Imported lazily so `import mibe` stays light."""
    from mibe.runner.api import evaluate as _evaluate

    return _evaluate(model, tasks, **options)
