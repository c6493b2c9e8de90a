"""`mibe run --adapters D`: every task scored through its own LoRA adapter, `D/<task>/` (what
`mibe train task all --output-dir D` writes), over one load of the base model, into one run folder.

The backend switches adapters in place of reloading (peft's load_adapter/set_adapter on HF, one
LoRARequest per task on vLLM); results.json names every adapter under `model.adapters`, and the
leaderboard's lineage shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mibe import lineage
from mibe.backends import common
from mibe.log import logger
from mibe.types import MibeError, RunConfig


def check(config: RunConfig) -> None:
    """Flags that cannot go with --adapters: said before anything loads."""
    if not config.adapters:
        return
    if config.adapter:
        raise MibeError(
            "--adapter and --adapters: give one adapter for the run, or a folder of per-task ones"
        )
    if config.backend not in ("hf", "vllm"):
        raise MibeError(f"--adapters: --backend {config.backend} cannot switch adapters; use hf or vllm")
    root = Path(config.adapters).expanduser()
    if not root.is_dir():
        raise MibeError(
            f"--adapters {config.adapters}: no such folder; give the --output-dir of `mibe train task`"
        )
    if common.is_adapter(Path(config.model).expanduser()):
        raise MibeError(
            f"--adapters: --model {config.model} is an adapter; give the base model they were trained on"
        )


def with_adapters(
    config: RunConfig,
    loaded: list[tuple],
    skipped: dict[str, str],
    explicit: set[str],
) -> list[tuple]:
    """The loaded tasks that have an adapter in D/<task>/. A task of `all` without one is skipped
    (said and recorded); a task named on --tasks without one is refused."""
    if not config.adapters:
        return loaded
    root = Path(config.adapters).expanduser().resolve()
    kept = []
    for entry in loaded:
        name = entry[0].name
        folder = root / name
        if common.is_adapter(folder):
            kept.append(entry)
            continue
        why = f"{name}: no LoRA adapter in {folder} (train it: mibe train task {name} --output-dir {folder})"
        if name in explicit:
            raise MibeError(f"--adapters {config.adapters}: {why}")
        skipped[name] = why
        logger.info(f"mibe: skipping {why}")
    if not kept:
        raise MibeError(f"--adapters {config.adapters}: no task of --tasks has an adapter folder there")
    bases = {str(common.adapter_base(root / e[0].name)) for e in kept}
    model = Path(config.model).expanduser()
    loads = str(model.resolve()) if model.exists() else config.model
    if bases != {loads}:
        logger.warning(
            f"mibe: warning: --adapters were trained on {', '.join(sorted(bases))}; --model is {loads}"
        )
    return kept


def folders(config: RunConfig, task_names: list[str]) -> dict[str, str]:
    """{task: its adapter folder} for the tasks `with_adapters` kept ({} without --adapters)."""
    if not config.adapters:
        return {}
    root = Path(config.adapters).expanduser().resolve()
    return {name: str(root / name) for name in task_names}


def describe(found: dict[str, str]) -> dict[str, dict[str, Any]]:
    """results.json's `model.adapters`: each task's adapter folder and its training provenance."""
    return {
        task: {"path": path, "provenance": lineage.training_provenance(path)} for task, path in found.items()
    }
