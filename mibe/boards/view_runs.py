"""The runs `mibe view` shows, read through the run-folder owner for the page of mibe.boards.view.
A run folder is data: no task hook is imported for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mibe.boards.view import ViewRun
from mibe.runfolder import folder, saved


def _task_meta(run: saved.SavedRun, name: str) -> dict[str, Any]:
    entry = run.results["tasks"][name]
    task = saved.task_file(name, entry, warn=False)
    path = folder.samples_path(run.path, name)
    # From the run's record (a task of unknown status is credentialed); owner-only samples too: safe side.
    private = saved.credentialed(name, entry, task) or (path.is_file() and path.stat().st_mode & 0o077 == 0)
    labels = ((entry.get("per_class") or {}).get("labels")) or []
    return {
        "answer_type": saved.kind(run, name),
        "choices": list(task.choices) if task else list(labels),
        "credentialed": bool(private),
        "paper_match": task.paper_match if task else "first",
    }


def load(path: str | Path) -> ViewRun:
    run = saved.read_run(path)
    names = [t for t in run.results["tasks"] if saved.rows(run, t) is not None]
    return ViewRun(
        label=saved.label(run),
        results=run.results,
        samples={t: list(saved.rows(run, t) or ()) for t in names},
        tasks={t: _task_meta(run, t) for t in names},
        run=run,
    )
