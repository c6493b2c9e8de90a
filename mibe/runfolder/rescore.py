"""`mibe rescore`: re-parse a run's saved outputs and recompute every metric, with no model loaded.

The samples files keep each document's raw output, so another parser (or the same one, as a check)
costs a pass over them. The new run folder records where its numbers came from (`rescored_from`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mibe.backends import traces
from mibe.log import logger
from mibe.runfolder import saved as saved_run
from mibe.runfolder import sharding
from mibe.runfolder.harness_readers import IMPORTER_VERSIONS
from mibe.runfolder.saved import SavedTask, value
from mibe.scoring import draw_stats, kinds, positions
from mibe.scoring.stats import clusters_of
from mibe.types import MibeError, Task

LOGLIK = "argmax-loglikelihood"  # the protocol's parser of tasks scored by log-likelihood
Extract = Callable[[SavedTask, list], None]  # sets rows' predictions in place; has a `spec`


def extraction_summary(spec: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """How often the extractor's predictions agree with the strict parser's (mibe.runner.extract)."""
    read = [r for r in rows if "strict_prediction" in r]
    if not read:
        return None
    agree = sum(1 for r in read if r["strict_prediction"] == r["prediction"])
    return {
        "extractor": spec,
        "agreement_with_strict": agree / len(read),
        "differ_from_strict": len(read) - agree,
        "missing": sum(1 for r in read if r["prediction"] is None or r["prediction"] == []),
    }


def _extraction(extract: Extract, rows: Sequence[dict[str, Any]]) -> tuple[str, dict | None]:
    spec = extract.spec  # type: ignore[attr-defined]
    return spec, extraction_summary(spec, rows)


def _reparsed(task: Any, row: dict[str, Any], parser: str) -> dict[str, Any]:
    # Only the final answer is parsed; a reasoning trace cut off at the token limit never is.
    parsed = kinds.parse_for(task, traces.answer_of(row) or "", parser, value(row["gold"]))
    pred = list(parsed.value) if isinstance(parsed.value, tuple) else parsed.value
    failed = parsed.failed or bool(row.get("reasoning_truncated"))
    score = kinds.doc_score(task.answer_type, value(row["gold"]), parsed.value, parser, failed)
    return {**row, "parse_failed": failed, "prediction": pred, "score": score}


def _origin(origin: Path, parser: str, ordered: bool) -> dict[str, Any]:
    note: dict[str, Any] = {"run": str(origin), "parser": parser}
    if not ordered:
        note["note"] = (
            "the run's data was not found, so intervals resample the samples file's order "
            "(values as the run's up to float rounding; intervals may differ slightly)"
        )
    return note


def rescore_task(
    saved: SavedTask, parser: str, config: dict[str, Any], origin: Path, extract: Extract | None = None
) -> tuple[dict, list, str]:
    """The task's new results entry and samples under `parser`, and a line saying what was done."""
    task, entry = saved.task, saved.entry
    protocol, renewed = entry["protocol"], new_protocol(saved, parser, extract)
    if parser == "model" and not kinds.get(task.answer_type).labelled:
        parser, extract = "strict", None  # the extractor maps answers to labels; free text reads as strict
    if protocol.get("scoring") == "loglikelihood":
        carried = {**entry, "rescored_from": {"run": str(origin), "parser": protocol.get("parser", LOGLIK)}}
        return carried, saved.rows, "scored by log-likelihood: nothing to re-parse, carried over unchanged"
    rows = [_reparsed(task, row, parser) for row in saved.rows]
    if extract is not None:  # --parser model: the extractor sets predictions (strict kept beside them)
        extract(saved, rows)
    order = saved_run.doc_order(saved)
    names = list(entry["metrics"])
    # BERTScore needs a BERT model; free text reads the same under both parsers, so the old value stands.
    same_preds = all(
        r["prediction"] == old.get("prediction") for r, old in zip(rows, saved.rows, strict=True)
    )
    kept = {m: entry["metrics"][m] for m in names if m == "bertscore_f1" and same_preds}
    # A jury scored the predictions (`mibe judge`): its columns stand while they are unchanged.
    judged = {m: entry["metrics"][m] for m in names if m.startswith("judge_")}
    names = [m for m in names if m not in judged]
    unknown = [m for m in names if not kinds.fits(task.answer_type, m)]
    if unknown:  # a hand-edited or foreign results.json: nothing here can recompute it
        raise MibeError(
            f"{saved.name}: results.json names the metric {unknown[0]!r}, which a {task.answer_type} task "
            "does not have; the run folder is damaged"
        )
    redo = [m for m in names if m not in kept]
    if entry.get("choice_permutations"):  # each ordering alone, then the mean, as `mibe run` does
        scored, draws = _scored_draws(task, entry, rows, order, redo, parser, config, PERMUTATIONS)
    elif entry.get("fewshot_seeds"):  # each draw scored alone, then the mean over draws, as `mibe run` does
        scored, draws = _scored_draws(task, entry, rows, order, redo, parser, config, DRAWS)
    else:
        scored, draws = _scored(task, _in_order(rows, order), redo, parser, config), None
    origin_note = _origin(origin, parser, order is not None)
    new = {
        **entry,
        "answer_type": task.answer_type,
        "protocol": renewed,
        "parse_failures": sum(1 for r in rows if r["parse_failed"]),
        "rescored_from": origin_note,
        "metrics": {
            **{m: kept.get(m) or scored["metrics"][m] for m in names},
            **(judged if same_preds else {}),
        },
        "per_class": scored.get("per_class"),
    }
    if draws is not None and entry.get("choice_permutations"):
        new.update(permutations=draws, **_positions(task, entry, rows, order))
    elif draws is not None:
        new["draws"] = draws
    if extract is not None:
        new["extraction"] = _extraction(extract, rows)[1]
    line = f"re-parsed {len(rows)} outputs with the {parser} parser"
    line += "; BERTScore carried over (same predictions)" if kept else ""
    return new, rows, line + _stale_import(protocol, task)


def _stale_import(protocol: dict[str, Any], task: Task) -> str:
    """A warning for a folder whose stored gold an older importer took wrongly (a rescore keeps golds)."""
    imported = protocol.get("imported") if isinstance(protocol.get("imported"), dict) else {}
    harness, version = imported.get("harness"), imported.get("importer_version", 1)
    if harness == "me-llama" and task.answer_type == "entities" and version < IMPORTER_VERSIONS[harness]:
        return (
            "; warning: imported before mibe read Me-LLaMA's i2b2 gold right (its golds start with "
            "'\\nAnswer: '); a rescore keeps stored golds: run `mibe import me-llama` on the file again"
        )
    return ""


# How a run of several scorings of each document keys them: (row field, the entry's list of keys or
# count, the entry's per-group field). Few-shot draws by seed; orderings of the options 0..K-1.
DRAWS = ("draw", "fewshot_seeds", "draws")
PERMUTATIONS = ("permutation", "choice_permutations", "permutations")


def _groups(entry: dict[str, Any], how: tuple[str, str, str]) -> list[int]:
    keys = entry[how[1]]
    return list(range(keys)) if isinstance(keys, int) else list(keys)


def _positions(
    task: Task, entry: dict[str, Any], rows: list[dict[str, Any]], order: list[str] | None
) -> dict[str, Any]:
    """Consistency and position bias over the re-parsed answers (mibe.scoring.positions)."""
    ordered = [
        _in_order([r for r in rows if r.get("permutation") == k], order) for k in _groups(entry, PERMUTATIONS)
    ]
    letters = list(task.choices)
    return {
        "consistency": positions.consistency(ordered, letters),
        "position_bias": positions.position_bias([r for rows_k in ordered for r in rows_k], letters),
    }


def _in_order(rows: list[dict[str, Any]], order: list[str] | None) -> list[dict[str, Any]]:
    """Rows in the run's document order (the bootstrap resamples by position); file order without it."""
    if not order:
        return rows
    by_id = {r["id"]: r for r in rows}
    return [by_id[i] for i in order if i in by_id]


def _scored(
    task: Task,
    rows: list[dict[str, Any]],
    names: list[str],
    parser: str,
    config: dict[str, Any],
    stats: tuple[Any, Any, Any] | None = None,
) -> dict[str, Any]:
    return kinds.score_task(
        task.answer_type,
        names,
        [value(r["gold"]) for r in rows],
        [value(r["prediction"]) for r in rows],
        task.choices,
        parser,
        seed=config.get("seed", 1234),
        n_boot=config.get("bootstrap", 1000),
        bertscore_model=config.get("bertscore_model", "bert-base-multilingual-cased"),
        stats=stats,
        clusters=clusters_of(rows),
    )


def _scored_draws(
    task: Task,
    entry: dict[str, Any],
    rows: list[dict[str, Any]],
    order: list[str] | None,
    names: list[str],
    parser: str,
    config: dict[str, Any],
    how: tuple[str, str, str] = DRAWS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run of several shot draws (--fewshot-seeds) or option orderings (--choice-permutations):
    each one's metrics on its own, and per metric the mean over them with the two-level interval;
    returns (task metrics, the `draws` or `permutations` entry)."""
    field, _, kept = how
    seeds = _groups(entry, how)
    per, xs, stat_of, clusters = {}, [], {}, None
    for seed in seeds:
        drawn = _in_order([r for r in rows if r.get(field) == seed], order)
        clusters = clusters if clusters is not None else clusters_of(drawn)
        golds, preds = [value(r["gold"]) for r in drawn], [value(r["prediction"]) for r in drawn]
        # One pass of the statistics serves the draw's own metrics and the summary over draws.
        bert = config.get("bertscore_model", "bert-base-multilingual-cased")
        stats = kinds.get(task.answer_type).stats(
            golds, preds, task.choices, parser, wanted=names, bertscore_model=bert
        )
        per[seed] = _scored(task, drawn, names, parser, config, stats)
        x, stat_of, _ = stats
        xs.append(x)
        per[seed]["parse_failures"] = sum(1 for r in drawn if r["parse_failed"])
    wanted = {m: stat_of[m] for m in names if m in stat_of}
    boot, boot_seed = config.get("bootstrap", 1000), config.get("seed", 1234)
    summary = draw_stats.summarise_draws(xs, wanted, boot, boot_seed, clusters)
    metrics = draw_stats.summary_metrics(per[seeds[0]]["metrics"], summary)
    draws = {}
    for seed in seeds:
        old = (entry.get(kept) or {}).get(str(seed)) or {}
        # A metric not re-done (BERTScore of unchanged predictions) keeps each draw's old value.
        carried = {m: v for m, v in (old.get("metrics") or {}).items() if m not in names}
        draws[str(seed)] = {
            **old,
            "metrics": {**carried, **per[seed]["metrics"]},
            "per_class": per[seed].get("per_class"),
            "parse_failures": per[seed]["parse_failures"],
        }
    return {"metrics": metrics, "per_class": None}, draws


def rescore(
    run_dir: str | Path,
    parser: str,
    names: Sequence[str],
    output_dir: str | Path,
    command: Sequence[str] = (),
    trusted: dict[str, Task] | None = None,
    extractor: Callable[[Sequence[str], Path, Path], Extract] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write `output_dir`, a run folder re-scored from `run_dir`'s outputs; returns its results.json.
    `overwrite`: a folder holding an earlier run (mibe's run.json) is replaced, only what mibe wrote.

    `trusted`: task files the user named with --tasks (their hooks may run); see saved.task_file.
    `extractor` (--parser model): (credentialed task names, run, new folder) -> the rows' Extract.
    The same command again on the same folder (a killed rescore) redoes it there; another rescore
    into it is refused unless `overwrite`."""
    from mibe.runfolder import writer

    run = saved_run.read_run(run_dir)
    sharding.refuse(run_dir, run.results, "rescore")
    origin, out_dir = run.path.resolve(), Path(output_dir)
    writer.check_output(out_dir, origin)
    chosen = saved_run.pick(run, names)
    saved = [saved_run.read_task(run, n, trusted) for n in chosen]  # all checked before writing
    # The extractor is built (and its endpoint checked) before anything is written.
    extract = extractor([s.name for s in saved if s.private], origin, out_dir) if extractor else None
    config = {**(run.results.get("config") or {}), "parser": parser}
    config["extractor"] = extract.spec if extract else None  # type: ignore[attr-defined]
    if names:
        config["tasks"] = chosen
    run_json = {
        **run.run_json,
        "config": config,
        "protocols": {s.name: new_protocol(s, parser, extract) for s in saved},
        "rescored_from": {"run": str(origin), "parser": parser},
    }
    if extract is not None:  # the extractor's weights are part of the folder's identity
        run_json["extractor"] = getattr(extract, "describe", None)
    private = any(s.private for s in saved)
    # Two rescores into one folder: the second is refused, never interleaved.
    with writer.open_folder(out_dir, run_json, overwrite, private, source=origin) as (out, _):
        return _write(run, saved, parser, names, out, command, config, extract)


def new_protocol(saved: SavedTask, parser: str, extract: Extract | None) -> dict[str, Any]:
    """A task's protocol once re-scored under `parser` (log-likelihood tasks keep theirs)."""
    task, protocol = saved.task, saved.entry["protocol"]
    if protocol.get("scoring") == "loglikelihood":
        return protocol
    if parser == "model" and not kinds.get(task.answer_type).labelled:
        parser, extract = "strict", None  # the extractor maps answers to labels; free text reads as strict
    version = kinds.scorer_version(task.answer_type, parser)
    new = {**protocol, "parser": parser, "scorer_version": version}
    if extract is not None:
        new["extractor"] = extract.spec  # type: ignore[attr-defined]
    return new


def _write(
    run: saved_run.SavedRun,
    saved: list[SavedTask],
    parser: str,
    names: Sequence[str],
    out: Any,
    command: Sequence[str],
    config: dict[str, Any],
    extract: Extract | None,
) -> dict[str, Any]:
    from mibe.runfolder import folder, summary
    from mibe.version import __version__

    origin = run.path.resolve()
    entries, samples, lines = {}, {}, {}
    for s in saved:
        entries[s.name], samples[s.name], lines[s.name] = rescore_task(s, parser, config, origin, extract)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for s in saved:  # whole files: a rescore done again in the same folder holds each row once
        out.replace_samples(s.name, samples[s.name], private=s.private)
        logger.info(f"mibe: {s.name}: {lines[s.name]}")
    timing = run.results.get("timing") or {}
    results = {
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
    if extract is not None:  # the extractor's endpoint, beside those the run itself recorded
        from mibe.backends import policy

        admission = extract.admission  # type: ignore[attr-defined]
        results["endpoints"] = policy.records([admission], run.results.get("endpoints") or [])
    out.write_json("results.json", results)
    logger.info(summary.table(results))
    logger.info(f"mibe: re-scored results in {out.path / 'results.json'}")
    return results
