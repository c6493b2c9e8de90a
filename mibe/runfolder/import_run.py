"""`mibe import lm-eval|me-llama PATH... --task TASK --output-dir RUN`: another harness's saved
per-document outputs become a mibe run folder, scored by mibe's parsers and metrics, so rescore,
audit, leaderboard and compare work on them unchanged. No model is loaded.

The protocol is marked imported (harness, files and their hashes), so an imported number never shares
a leaderboard column with a native run or the paper's published rows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.backends import traces
from mibe.log import logger
from mibe.runfolder import folder, harness_readers, summary, writer
from mibe.runfolder.saved import value
from mibe.scoring import kinds
from mibe.types import MibeError, Task
from mibe.version import __version__


def _label(task: Task, gold: Any, where: str) -> Any:
    """A source's gold as mibe's label: an option index or a label's text, matched case-insensitively."""
    text = str(gold).strip()
    if task.answer_type == "multi_label":
        return tuple(_label_of(task, part.strip(), where) for part in text.split(";") if part.strip())
    if not kinds.get(task.answer_type).labelled:
        return str(gold)
    return _label_of(task, text, where)


def _label_of(task: Task, text: str, where: str) -> str:
    if text.isdigit() and int(text) < len(task.choices):
        return task.choices[int(text)]
    by_lower = {c.lower(): c for c in task.choices}
    if text.lower() in by_lower:
        return by_lower[text.lower()]
    raise MibeError(
        f"{where}: gold {text!r} is none of {task.name}'s labels ({', '.join(task.choices)}); "
        "pass the --task these outputs were scored on"
    )


def _answer(source: harness_readers.ImportedRow, delimiters: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The output split as `mibe run` splits it (mibe.backends.traces): a leading trace is never parsed
    as the answer, and one left open (the model ran out of tokens while thinking) is no answer."""
    text = source.raw_output or ""
    found = traces.split_reasoning(text, delimiters, opened=traces.opens_trace(source.prompt, delimiters))
    return {
        "reasoning": found.reasoning,
        "answer_text": found.answer_text,
        "reasoning_truncated": found.truncated,
    }


def _row(
    task: Task, source: harness_readers.ImportedRow, index: int, parser: str, harness: str,
    delimiters: Sequence[tuple[str, str]] = traces.THINK,
) -> dict[str, Any]:  # fmt: skip
    given = source.gold
    if harness == "me-llama":  # the gold their scorer used, not always the truth their evaluator wrote
        given = harness_readers.me_llama_gold(given, task.answer_type, source.where)
    gold = _label(task, given, source.where)
    row: dict[str, Any] = {"id": source.id, "prompt": source.prompt}
    if source.logprobs is not None:
        # Options are taken in order: a 4-option MedQA file answers A-D of a five-letter task.
        fits = len(source.logprobs) <= len(task.choices) if task.answer_type == "letter" else None
        if not (fits or len(source.logprobs) == len(task.choices)):
            raise MibeError(
                f"{source.where}: {len(source.logprobs)} scored options but {task.name} has "
                f"{len(task.choices)} labels; pass the --task these outputs were scored on"
            )
        best = max(range(len(source.logprobs)), key=lambda i: source.logprobs[i])
        value: Any = task.choices[best]
        row.update(raw_output=value, logprobs=list(source.logprobs), parse_failed=False)
    else:
        row.update(raw_output=source.raw_output, **_answer(source, delimiters))
        parsed = kinds.parse_for(task, traces.answer_of(row) or "", parser, gold)
        value = parsed.value
        row["parse_failed"] = parsed.failed or row["reasoning_truncated"]
    row["prediction"] = list(value) if isinstance(value, tuple) else value
    row["gold"] = list(gold) if isinstance(gold, tuple) else gold
    row["score"] = kinds.doc_score(task.answer_type, gold, value, parser, row["parse_failed"])
    row["index"] = index
    return row


def _protocol(
    task: Task,
    got: harness_readers.Imported,
    parser: str,
    delimiters: Sequence[tuple[str, str]] = traces.THINK,
) -> dict[str, Any]:
    loglik = got.scoring == "loglikelihood"
    files = [
        {"path": str(f.path), "sha256": f.sha256, "layout": f.layout, "notes": list(f.notes)}
        for f in got.files
    ]
    digest = hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()[:16]
    return {
        "task": task.name,
        "task_version": task.version,
        "task_file_hash": task.file_hash,
        "template_hash": None,  # the other harness wrote its own prompts
        "data": {"fingerprint": f"imported:{digest}", "n_rows": len(got.rows)},
        "split": None,
        "limit": None,
        "shots": None,
        "fewshot_seed": None,
        "scoring": got.scoring,
        "parser": "argmax-loglikelihood" if loglik else parser,
        "scorer_version": 1 if loglik else kinds.scorer_version(task.answer_type, parser),
        "chat_template": None,
        "system_prompt": None,
        "max_new_tokens": None,
        "stop": None,
        # Traces split off generated outputs, as `mibe run --protocol mibe` records it (no budget known).
        "reasoning": None if loglik else {"delimiters": [list(p) for p in delimiters], "budget": None},
        "imported": {
            "harness": got.harness,
            "files": files,
            "importer_version": harness_readers.IMPORTER_VERSIONS[got.harness],
        },
        "credentialed": task.credentialed,
    }


def _entry(task: Task, protocol: dict[str, Any], rows: list[dict[str, Any]], scored: dict[str, Any]) -> dict:
    return {
        "protocol": protocol,
        "answer_type": task.answer_type,
        "n": len(rows),
        "n_skipped_rows": 0,
        "first_skipped_row": None,
        "parse_failures": sum(1 for r in rows if r["parse_failed"]),
        "truncated": 0,
        "invented": False,
        "partial": False,
        "rescored_from": None,
        "task_file": str(task.path),
        "metrics": scored["metrics"],
        "per_class": scored.get("per_class"),
        "reasoning": _reasoning_summary(rows),
    }


def _reasoning_summary(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """As `mibe run` reports it; token counts are unknown without the model's tokenizer."""
    if not any("answer_text" in r for r in rows):
        return None
    return {
        "with_trace": sum(1 for r in rows if r.get("reasoning") is not None),
        "reasoning_truncated": sum(1 for r in rows if r.get("reasoning_truncated")),
        "reasoning_tokens": traces.reasoning_token_stats([]),
        "answer_tokens": traces.reasoning_token_stats([]),
    }


def import_run(
    harness: str,
    paths: Sequence[str],
    task: Task,
    output_dir: str | Path,
    model_name: str | None = None,
    parser: str = "strict",
    seed: int = 1234,
    n_boot: int = 1000,
    command: Sequence[str] = (),
    delimiters: Sequence[tuple[str, str]] = traces.THINK,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write `output_dir`, a run folder holding the outputs in `paths`, scored as `task`; reasoning
    traces (`delimiters`) are split off generated outputs before parsing, as `mibe run` does. The same
    command again on the same folder (after a full disk or a kill) redoes it there, each row once;
    another import into it is refused unless `overwrite`."""
    out_dir = Path(output_dir)
    writer.check_output(out_dir)
    got = harness_readers.read_import(harness, paths)
    for file in got.files:
        if file.task_hint and task.name not in file.task_hint.lower():
            logger.warning(
                f"mibe: warning: {file.path} looks like task {file.task_hint!r}; scored as {task.name}"
            )
    rows = [_row(task, r, i, parser, harness, delimiters) for i, r in enumerate(got.rows)]
    protocol = _protocol(task, got, parser, delimiters)
    scored = kinds.score_task(
        task.answer_type,
        task.metrics,
        [value(r["gold"]) for r in rows],
        [value(r["prediction"]) for r in rows],
        task.choices,
        protocol["parser"] if got.scoring == "generate" else "strict",
        seed=seed,
        n_boot=n_boot,
    )
    model = {"name": model_name or f"{harness} import", "backend": f"imported:{harness}"}
    config = {"imported": harness, "tasks": [task.name], "parser": parser, "seed": seed, "bootstrap": n_boot}
    entry = _entry(task, protocol, rows, scored)
    run_json = {"schema_version": folder.SCHEMA_VERSION, "mibe_version": __version__, "config": config,
                "model": model, "protocols": {task.name: protocol}}  # fmt: skip
    # A credentialed task's run folder is owner-only, as `mibe run` writes it.
    with writer.open_folder(out_dir, run_json, overwrite, task.credentialed) as (out, _):
        out.replace_samples(task.name, rows)  # whole: a second import never doubles a row
        results = _results(run_json, entry, task, command)
        out.write_json("results.json", results)
    logger.info(summary.table(results))
    logger.info(
        f"mibe: imported {len(rows)} {harness} outputs as {task.name} into {out_dir / 'results.json'}"
    )
    return results


def _results(run_json: dict[str, Any], entry: dict, task: Task, command: Sequence[str]) -> dict[str, Any]:
    results = {
        **run_json,
        "git_commit": folder.git_commit(),
        "command": list(command),
        "tasks": {task.name: entry},
        "skipped": {},
        "timing": {"created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    del results["protocols"]
    return results
