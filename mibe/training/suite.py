"""`mibe train task all|T1,T2,... --output-dir D`: the paper's supervised setting as one command, one
LoRA adapter per task from one base, each in `D/<task>/` (what `mibe run --adapters D` scores).

Each task is an ordinary `mibe train task` run in its own folder, so each resumes (or is found
finished) on its own. The base is loaded once per task: the HF Trainer wraps the model it trains in
that task's adapter, and a fresh copy keeps one task's weights out of the next one's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.log import logger
from mibe.runfolder import writer
from mibe.training import examples, guard
from mibe.training import recipe as recipes
from mibe.types import MibeError

FILE = "mibe_suite.json"  # D/mibe_suite.json: which tasks were trained, which skipped and why


def is_suite(spec: str | None) -> bool:
    """`all` or a comma list names a suite; one task name (or file) is an ordinary task run."""
    return spec is not None and (spec.strip() == "all" or "," in spec)


def per_task_data(values: Sequence[str] | None) -> dict[str, str]:
    """`--data TASK=PATH` (repeatable): each task's training rows."""
    found: dict[str, str] = {}
    for value in values or ():
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise MibeError(f"--data {value}: a suite takes TASK=PATH, e.g. --data pubmedqa=train.jsonl")
        found[name.strip()] = path.strip()
    return found


def run(
    spec: str,
    config: str,
    overrides: dict[str, Any],
    sets: list[str],
    data: dict[str, str],
    command: list[str],
    overwrite: bool,
) -> dict[str, Any]:
    """Train every task of `spec` into `overrides['output_dir']/<task>/`; returns what suite.json holds."""
    from mibe import names, tasks
    from mibe.training import train  # torch and transformers: only once a suite runs

    root = overrides.get("output_dir")
    if not root:
        raise MibeError("mibe train task SUITE: give --output-dir D (each task's adapter goes to D/<task>/)")
    chosen, explicit = tasks.resolve([spec], "mibe train task")
    stray = sorted(set(data) - {t.name for t in chosen})
    if stray:
        raise MibeError(f"--data {stray[0]}=...: no task '{stray[0]}' in {spec}; check the name")
    trained: dict[str, str] = {}
    skipped: dict[str, str] = {}
    builtin = names.builtin_tasks()
    for task in chosen:
        out = Path(root).expanduser() / task.name
        named = task.name if builtin.get(task.name) == task.path else str(task.path)
        recipe, recipe_file = recipes.load(
            "task", config, {**overrides, "task": named, "output_dir": str(out)}, sets
        )
        recipe["data"] = data.get(task.name)  # a recipe's data: names one task's rows, never a suite's
        logger.info(f"mibe: {task.name}: training into {out}")
        try:
            trained[task.name] = str(train.run("task", recipe, recipe_file, command, overwrite))
        except guard.Contaminated as exc:  # its train split repeats its (or another task's) test split
            skipped[task.name] = str(exc)
            logger.info(f"mibe: {task.name}: skipped: {exc}")
        except examples.NoTrainingRows as exc:
            if task.name in explicit:
                raise MibeError(f"{task.name}: {exc}") from None
            skipped[task.name] = str(exc)
            logger.info(f"mibe: {task.name}: skipped: {exc}")
    record = {"tasks": trained, "skipped": skipped}
    Path(root).expanduser().mkdir(parents=True, exist_ok=True)
    writer.write_json_atomic(Path(root).expanduser() / FILE, record)
    if not trained:
        raise MibeError(f"mibe train task {spec}: no task was trained (each skipped, said above)")
    logger.info(
        f"mibe: {len(trained)} adapters in {root} ({', '.join(trained)}); "
        f"score them in one run: mibe run --model BASE --adapters {root} --tasks {','.join(trained)}"
    )
    return record
