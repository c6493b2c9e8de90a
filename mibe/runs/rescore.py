"""`mibe rescore`: re-parse a run's saved outputs and recompute every metric, with no model loaded.

The samples files keep each document's raw output, so another parser (or the same one, as a check)
costs a pass over them. The new run folder records where its numbers came from (`rescored_from`).
Also the reading side of `mibe audit`: a run folder and its tasks, checked before anything is used.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe.types import MibeError, Task

LOGLIK = "argmax-loglikelihood"  # the protocol's parser of tasks scored by log-likelihood
Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class SavedTask:
    name: str
    task: Task
    entry: dict[str, Any]  # its results.json entry
    rows: list[dict[str, Any]]  # its samples, in file order
    private: bool  # the samples hold credentialed text: keep them owner-only


@dataclass(frozen=True)
class SavedRun:
    path: Path
    results: dict[str, Any]
    run_json: dict[str, Any]


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MibeError(
            f"{path}: not valid JSON; the run folder is damaged (rerun it with `mibe run`)"
        ) from None


def read_run(run_dir: str | Path) -> SavedRun:
    path = Path(run_dir)
    if not path.is_dir():
        raise MibeError(f"{path}: no such run folder; give the folder `mibe run --output-dir` wrote")
    if not (path / "results.json").is_file():
        raise MibeError(
            f"{path}: no results.json; not a run folder, or no task finished (finish it with its `mibe run`)"
        )
    results = _json(path / "results.json")
    entries = results.get("tasks") if isinstance(results, dict) else None
    if not isinstance(entries, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("protocol"), dict) and isinstance(e.get("metrics"), dict)
        for e in entries.values()
    ):
        raise MibeError(f"{path / 'results.json'}: no 'tasks' entries as `mibe run` writes them; damaged")
    run_json = _json(path / "run.json") if (path / "run.json").is_file() else {}
    return SavedRun(path, results, run_json if isinstance(run_json, dict) else {})


def pick(run: SavedRun, names: Sequence[str]) -> list[str]:
    held = list(run.results["tasks"])
    if not held:
        raise MibeError(f"{run.path}: no task was scored in this run; nothing to read")
    for name in names:
        if name not in held:
            raise MibeError(
                f"--tasks: {run.path} holds no task '{name}'; it holds {', '.join(held) or 'none'}"
            )
    return list(dict.fromkeys(names)) or held


def load_task_of(name: str, entry: dict[str, Any], say: Say) -> Task:
    """The task file the run used: its recorded path, else the built-in of that name."""
    from mibe import tasks

    candidates = [Path(entry["task_file"])] if entry.get("task_file") else []
    builtin = tasks.builtin_paths().get(name)
    candidates += [builtin] if builtin else []
    found = [t for t in (tasks.load_task(p) for p in candidates if p.is_file()) if t.name == name]
    if not found:
        where = entry.get("task_file") or "not recorded"
        raise MibeError(f"task {name}: its task file ({where}) is gone and no built-in task has that name")
    want = entry["protocol"].get("task_file_hash")
    for task in found:
        if task.file_hash == want:
            return task
    say(
        f"mibe: warning: {name}: {found[0].path} changed since the run (hash {want} -> "
        f"{found[0].file_hash}); its current labels are used"
    )
    return found[0]


def read_task(run: SavedRun, name: str, say: Say = _stderr) -> SavedTask:
    from mibe.runs import folder

    entry = run.results["tasks"][name]
    path = folder.samples_path(run.path, name)
    if not path.is_file():
        raise MibeError(f"{path}: missing; the run folder lost {name}'s raw outputs")
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):  # read_samples would trim it in place: never touch the original
        raise MibeError(f"{path}: ends in a cut-off line; the run folder is damaged")
    rows = folder.read_samples(path)
    if any(not isinstance(r, dict) or not {"id", "raw_output", "gold"} <= set(r) for r in rows):
        raise MibeError(
            f"{path}: samples without raw_output or gold (written with --redact-samples?); "
            "nothing to re-parse"
        )
    ids = {r["id"] for r in rows}
    if len(rows) != entry.get("n") or len(ids) != len(rows):
        raise MibeError(
            f"{path}: {len(rows)} samples ({len(ids)} distinct ids) but results.json says "
            f"n={entry.get('n')}; the run folder is damaged"
        )
    task = load_task_of(name, entry, say)
    private = task.credentialed or path.stat().st_mode & 0o077 == 0
    return SavedTask(name, task, entry, rows, private)


def value(x: Any) -> Any:
    """A samples-file value as the parsers and metrics take it (JSON lists back to tuples)."""
    return tuple(x) if isinstance(x, list) else x


def doc_order(saved: SavedTask) -> list[str] | None:
    """The run's document order, read back from its data: the bootstrap resamples by position."""
    from mibe import data

    if saved.rows and all(isinstance(r.get("index"), int) for r in saved.rows):
        return [r["id"] for r in sorted(saved.rows, key=lambda r: r["index"])]
    source, protocol = saved.entry.get("data_source"), saved.entry["protocol"]
    if not source:
        return None
    local = Path(source).exists()
    if not local and (source.startswith("/") or saved.task.credentialed):
        return None
    try:
        docset = data.load_docs(saved.task, data.Location("local" if local else "hub", source))
    except (data.NoData, MibeError, OSError):
        return None
    if docset.fingerprint != (protocol.get("data") or {}).get("fingerprint"):
        return None
    order = [d.id for d in docset.docs[: protocol.get("limit")]]
    return order if sorted(order) == sorted(r["id"] for r in saved.rows) else None


def rescore_task(
    saved: SavedTask, parser: str, config: dict[str, Any], origin: Path
) -> tuple[dict, list, str]:
    """The task's new results entry and samples under `parser`, and a line saying what was done."""
    from mibe.scoring import metrics
    from mibe.scoring import parsing

    task, entry = saved.task, saved.entry
    protocol = entry["protocol"]
    if protocol.get("scoring") == "loglikelihood":
        carried = {**entry, "rescored_from": {"run": str(origin), "parser": protocol.get("parser", LOGLIK)}}
        return carried, saved.rows, "scored by log-likelihood: nothing to re-parse, carried over unchanged"
    rows = []
    for row in saved.rows:
        parsed = parsing.parse(row["raw_output"], task.answer_type, task.choices, parser)
        pred = list(parsed.value) if isinstance(parsed.value, tuple) else parsed.value
        score = metrics.doc_score(task.answer_type, value(row["gold"]), parsed.value, parser)
        rows.append({**row, "parse_failed": parsed.failed, "prediction": pred, "score": score})
    order = doc_order(saved)
    by_id = {r["id"]: r for r in rows}
    ordered = [by_id[i] for i in order] if order else rows
    names = list(entry["metrics"])
    # BERTScore needs a BERT model; free text reads the same under both parsers, so the old value stands.
    same_preds = all(
        r["prediction"] == old.get("prediction") for r, old in zip(rows, saved.rows, strict=True)
    )
    kept = {m: entry["metrics"][m] for m in names if m == "bertscore_f1" and same_preds}
    redo = [m for m in names if m not in kept]
    scored = metrics.score_task(
        task.answer_type,
        redo,
        [value(r["gold"]) for r in ordered],
        [value(r["prediction"]) for r in ordered],
        task.choices,
        parser,
        seed=config.get("seed", 1234),
        n_boot=config.get("bootstrap", 1000),
        bertscore_model=config.get("bertscore_model", "bert-base-multilingual-cased"),
    )
    origin_note: dict[str, Any] = {"run": str(origin), "parser": parser}
    if order is None:
        origin_note["note"] = (
            "the run's data was not found, so intervals resample the samples file's order "
            "(values as the run's up to float rounding; intervals may differ slightly)"
        )
    new = {
        **entry,
        "protocol": {**protocol, "parser": parser},
        "parse_failures": sum(1 for r in rows if r["parse_failed"]),
        "rescored_from": origin_note,
        "metrics": {m: kept.get(m) or scored["metrics"][m] for m in names},
        "per_class": scored.get("per_class"),
    }
    line = f"re-parsed {len(rows)} outputs with the {parser} parser"
    return new, rows, line + ("; BERTScore carried over (same predictions)" if kept else "")


def rescore(
    run_dir: str | Path,
    parser: str,
    names: Sequence[str],
    output_dir: str | Path,
    command: Sequence[str] = (),
    say: Say = _stderr,
) -> dict[str, Any]:
    """Write `output_dir`, a run folder re-scored from `run_dir`'s outputs; returns its results.json."""
    from mibe import __version__
    from mibe.runs import folder
    from mibe.runs import summary

    run = read_run(run_dir)
    origin, out_dir = run.path.resolve(), Path(output_dir)
    if out_dir.resolve() == origin:
        raise MibeError(f"--output-dir {out_dir}: is the run itself; rescore writes a new folder")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise MibeError(f"--output-dir {out_dir}: exists and is not empty; choose a new folder")
    chosen = pick(run, names)
    saved = [read_task(run, name, say) for name in chosen]  # all checked before anything is written
    config = {**(run.results.get("config") or {}), "parser": parser}
    if names:
        config["tasks"] = chosen
    entries, samples, lines = {}, {}, {}
    for s in saved:
        entries[s.name], samples[s.name], lines[s.name] = rescore_task(s, parser, config, origin)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run_json = {
        **run.run_json,
        "config": config,
        "protocols": {name: e["protocol"] for name, e in entries.items()},
        "rescored_from": {"run": str(origin), "parser": parser},
    }
    folder.write_json_atomic(out_dir / "run.json", run_json)
    for s in saved:
        folder.append_samples(folder.samples_path(out_dir, s.name), samples[s.name], private=s.private)
        say(f"mibe: {s.name}: {lines[s.name]}")
    timing = run.results.get("timing") or {}
    out = {
        **run.results,
        "mibe_version": __version__,
        "git_commit": folder.git_commit(),
        "command": list(command),
        "config": config,
        "tasks": entries,
        "skipped": {} if names else run.results.get("skipped", {}),
        "timing": {
            **{k: v for k, v in timing.items() if k not in run.results["tasks"] or k in entries},
            "rescored_at": stamp,
        },
    }
    folder.write_json_atomic(out_dir / "results.json", out)
    say(summary.table(out))
    say(f"mibe: re-scored results in {out_dir / 'results.json'}")
    return out


def split_names(spec: str | None) -> list[str]:
    return [s.strip() for s in (spec or "").split(",") if s.strip()]


def command(args: Any, argv: Sequence[str]) -> int:
    """`mibe rescore RUN_DIR [--parser paper|strict] [--tasks ...] --output-dir NEW_RUN_DIR`."""
    rescore(args.run_dir, args.parser, split_names(args.tasks), args.output_dir, command=["mibe", *argv])
    return 0
