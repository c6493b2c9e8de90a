"""`mibe.evaluate`: the Python entry point to a run (mibe/runner/api.py's `run`), for notebooks and
training loops. Everything it says goes to the `mibe` logger (mibe/log.py): unconfigured, only the
WARNING records show (who receives text, warnings, where the run folder went); INFO is the progress."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.log import logger
from mibe.runner.api import default_output_dir, run
from mibe.types import Backend, RunConfig, takes_settings


class RunResults(dict):
    """results.json's content, as a dict, plus `run_dir`: the run folder it was written to."""

    run_dir: Path


@takes_settings
def evaluate(
    model: str | RunConfig,
    tasks: str | Sequence[str] = "all",
    backend: Backend | str | None = None,
    **settings: Any,
) -> RunResults:
    """Python API: `mibe.evaluate("path/to/model", tasks="pubmedqa", data_dir="data/")`, or
    `mibe.evaluate(RunConfig(model=..., tasks=("pubmedqa",), ...))`.

    model: a model folder or hub id (as `mibe run --model`), or a whole RunConfig (then `tasks` and
        `settings` are not given: the configuration holds them).
    tasks: a task name, `all`, `public`, a task-file path, or a sequence of them.
    backend: a model already in memory (e.g. inside a training loop), or a backend's name as
        `mibe run --backend` takes it (`backend="openai", base_url=...`).
    settings: RunConfig's fields (mibe/types.py documents each; the `mibe run` flag of the same name
        sets it), e.g. data_dir, data, limit, num_fewshot, seed, scoring, protocol, max_new_tokens,
        output_dir, demo, bootstrap. A name that is no field is a TypeError naming the nearest one.

    Returns results.json's content, with the run folder in `.run_dir`. Without `output_dir` the folder
    is `runs/<model>-<timestamp>` under the current folder, and a one-line notice on the `mibe` logger
    (shown by default) says so; nothing else is printed but who receives text (each endpoint's line).
    """
    if isinstance(backend, str):  # RunConfig's backend name, not a model in memory (it was used as one)
        settings["backend"], backend = backend, None
    config = _config_of(model, tasks, settings)
    chosen = config.output_dir is None and not config.dry_run
    if chosen:
        config = dataclasses.replace(config, output_dir=str(default_output_dir(config)))
    command = ["mibe.evaluate", config.model, *config.tasks]
    out = run(config, command=command, backend=backend)
    results = RunResults(out)
    results.run_dir = Path(config.output_dir) if config.output_dir else Path()
    if chosen:
        logger.warning("mibe.evaluate: wrote the run folder %s", results.run_dir)
    return results


def _config_of(model: str | RunConfig, tasks: str | Sequence[str], settings: dict[str, Any]) -> RunConfig:
    """The run's RunConfig from mibe.evaluate's arguments; a keyword that is no field: one line."""
    if isinstance(model, RunConfig):
        if settings or tasks != "all":
            raise TypeError("mibe.evaluate(RunConfig(...)): give tasks and settings in the RunConfig")
        return model
    known = [f.name for f in dataclasses.fields(RunConfig)]
    for name in settings:
        if name not in known or name in ("model", "tasks"):
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {near[0]}?" if near else "; the settings are RunConfig's fields"
            raise TypeError(f"mibe.evaluate: no setting '{name}'{hint} (mibe/types.py)")
    names = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    return RunConfig(model=model, tasks=names, **settings)
