"""Where the shipped folders (tasks/, prompts/, training/, leaderboards/, scale-out/) live.

A wheel carries them inside the package (`mibe/_shipped/<name>`); a source checkout or an
editable install reads them from the repository root beside `mibe/`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    inside = _PACKAGE / "_shipped" / name
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / name


def tasks_dir() -> Path:
    return shipped("tasks")


def prompts_dir() -> Path:
    return shipped("prompts")


def scale_out_dir() -> Path:
    """The SLURM templates `mibe scale-out slurm` prints (docs/scale-out.md)."""
    return shipped("scale-out")


def demo_dir() -> Path:
    return tasks_dir() / "demo"
