"""The run folder, read side: run.json, results.json and samples/<task>.jsonl as readers see them;
paths, redaction of rows. Every write goes through mibe.runfolder.writer."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mibe.runfolder import record
from mibe.types import TASK_NAME, MibeError, Task

# Bump (in runfolder/record.py, with its models) when a key docs/run-folder.md lists changes; readers keep
# reading older folders.
SCHEMA_VERSION = record.SCHEMA_VERSION


def is_mibe_run_json(path: Path) -> bool:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and {"schema_version", "config", "model", "protocols"} <= set(raw)


def holding_run(path: Path, runs: Sequence[str | Path] = ()) -> Path | None:
    """The run folder `path` lies in: one of `runs` (as given on the command line), or a folder up to
    three levels above it holding mibe's run.json or a results.json (a folder sent without run.json)."""
    target = path.resolve()
    for run in runs:
        here = Path(run).resolve()
        here = here.parent if here.is_file() else here
        if here in target.parents:
            return here
    for parent in list(target.parents)[:3]:  # the folder, samples/, and one below
        if is_mibe_run_json(parent / "run.json") or (parent / "results.json").is_file():
            return parent
    return None


def refuse_inside_run(output: str | Path, runs: Sequence[str | Path] = ()) -> None:
    """A report, board or page written into a run folder could replace the files it was made from."""
    run = holding_run(Path(output), runs)
    if run is not None:
        raise MibeError(f"-o {output}: inside the run folder {run}; write it outside run folders")


def refuse_link(path: Path) -> None:
    """A run folder holds plain files: mibe neither writes through a link (a received folder's
    samples/x.jsonl -> ~/.bashrc would be appended to) nor reads one into a report or page."""
    if path.is_symlink():
        raise MibeError(
            f"{path}: is a link (to {os.readlink(path)}); a run folder holds plain files only: "
            "remove the link, or copy the folder with the files themselves (cp -rL)"
        )


def read_json(path: Path) -> dict[str, Any] | None:
    """A run folder's results.json or run.json (None when absent), checked against its model."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, ValueError, RecursionError):
        raise MibeError(f"{path}: not valid JSON; delete it or pass --overwrite") from None
    return record.check(path, data)


def samples_path(run_dir: Path, task: str) -> Path:
    # A name from someone else's results.json must not lead outside samples/ ("../../x").
    if not isinstance(task, str) or not re.fullmatch(TASK_NAME, task):
        raise MibeError(
            f"{run_dir}: {task!r} is not a task name (lower-case letters, digits and _ only); "
            "the run folder is damaged"
        )
    return run_dir / "samples" / f"{task}.jsonl"


def read_samples(path: Path, model: type[record.Part] = record.SampleRow) -> list[dict[str, Any]]:
    """Completed samples (or cache rows), read only and validated: text after the last newline (a line
    cut short by a crash) is left out here and trimmed off only by the writer when it resumes."""
    refuse_link(path)
    if not path.is_file():
        return []
    return record.read_lines(path, model)


def rank_path(run_dir: Path, task: str, rank: int) -> Path:
    return run_dir / "samples" / f"{task}.rank{rank}.part"


# --redact-samples: what a row keeps. Never a prompt, an output, a log-prob or a text gold.
REDACTED_KEYS = (
    "id", "index", "draw", "permutation", "option_order", "score", "parse_failed", "shots",
    "truncated_tokens", "invented", "cluster",
)  # fmt: skip
JUDGED_KEY = "judge"  # per-document jury scores (numbers only), kept by redaction for paired tests


def is_redacted(row: dict[str, Any]) -> bool:
    return row.get("redacted") is True


def holds_redacted(path: Path) -> bool:
    """Whether a task's samples were written under --redact-samples: then every later row is too."""
    if not path.is_file():
        return False
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    try:
        return first.endswith("\n") and is_redacted(json.loads(first))
    except ValueError:
        return False


def redact_rows(rows: Sequence[dict[str, Any]], task: Task, parser: str, bertscore_model: str) -> list[dict]:
    """Rows as --redact-samples keeps them: label tasks keep their predicted and gold labels (what
    scoring, resume and compare need); span, entity and text tasks keep each document's statistics
    instead of its text (`kinds.doc_stats`). Rows already redacted pass unchanged."""
    from mibe.scoring import kinds

    full = [r for r in rows if not is_redacted(r)]
    labelled = kinds.get(task.answer_type).labelled
    stats: Iterator[dict[str, float]] = iter(())
    unavailable: dict[str, str] = {}
    if full and not labelled:
        golds = [_value(r["gold"]) for r in full]
        preds = [_value(r["prediction"]) for r in full]
        found, unavailable = kinds.doc_stats(
            task.answer_type, task.metrics, golds, preds, parser, bertscore_model
        )
        stats = iter(found)
    out = []
    for row in rows:
        if is_redacted(row):
            out.append(row)
            continue
        kept: dict[str, Any] = {k: row[k] for k in (*REDACTED_KEYS, JUDGED_KEY) if k in row}
        kept.update({k: v for k, v in row.items() if k.startswith(JUDGED_KEY + "@")})  # later juries
        kept["redacted"] = True
        if labelled:
            kept.update(prediction=row["prediction"], gold=row["gold"])
        else:
            kept["stats"] = next(stats)
            kept.update({"unavailable": unavailable} if unavailable else {})
        out.append(kept)
    return out


def _value(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
