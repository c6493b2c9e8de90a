"""A jury of judge models scoring a run's summaries against each task's rubric (docs/judges.md).

`mibe judge RUN --judge SPEC ... --output-dir NEW` scores a finished run's text outputs after the
fact (the evaluated model is never loaded) and writes a new run folder, as `mibe rescore` does;
`mibe run ... --judge SPEC` does the same in the run's own folder once its tasks are scored.

Every judge passes the one endpoint policy (mibe.backends.policy: its own guard verdict, its own
key from its spec, announced and recorded) and is built by the one factory (mibe.backends.factory);
the policy is applied to every judge before any model loads or any request leaves. What a judge is
asked, and its replies' cache in the run folder: mibe/runner/judge_calls.py. The aggregation is
`mibe.scoring.jury_stats.jury_scores`; a task's juries and their columns are mibe/runner/jury_ids.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.backends import devices, factory, policy
from mibe.backends import spec as model_spec
from mibe.backends.endpoint import Endpoint, Machine, machine_of, second
from mibe.backends.spec import ModelSpec
from mibe.log import logger
from mibe.runfolder import folder, sharding, writer
from mibe.runfolder import saved as saved_run
from mibe.runner.judge_calls import Item, Judge, Settings, call, requests_for
from mibe.runner.jury_ids import check_human_ratings, digest, judged
from mibe.scoring import judge_scoring
from mibe.types import MibeError, RunConfig

# ---------------------------------------------------------------------------------------- the specs


def parse_specs(texts: Sequence[str]) -> tuple[ModelSpec, ...]:
    specs = tuple(model_spec.parse(t) for t in texts)
    seen: set[str] = set()
    for s in specs:
        if s.text in seen:
            raise MibeError(f"--judge {s.text}: given twice; name each judge once")
        seen.add(s.text)
    return specs


def endpoint_of(s: ModelSpec, machine: Machine) -> Endpoint:
    return second(s, "judge", "--judge", machine)


def check_guards(
    specs: Sequence[ModelSpec], tasks: Sequence[Any], grants: Sequence[policy.Authorisation], machine: Machine
) -> list[policy.Admission]:
    """Every judge through the endpoint policy for the credentialed tasks it would read, before
    anything is built or sent."""
    credentialed = sorted({t.name for t in tasks if t.credentialed})
    return [policy.admit(endpoint_of(s, machine), credentialed, grants) for s in specs]


DRAWN = (
    "scored over several few-shot draws (--fewshot-seeds); a jury judges runs of one draw "
    "(score the summaries without --fewshot-seeds to judge them)"
)


def precheck(
    config: RunConfig, tasks: Sequence[Any], grants: Sequence[policy.Authorisation], machine: Machine
) -> list[policy.Admission]:
    """`mibe run --judge`: bad specs and refused judges fail before the evaluated model loads."""
    if config.judge:
        if config.redact_samples:  # rows are redacted as they are written: no output is left to judge
            raise MibeError(
                "--judge with --redact-samples: the judges read the outputs redaction removes; run with "
                "--judge first, then the same command with --redact-samples (judge scores are kept)"
            )
        if config.judge_order not in judge_scoring.ORDERS:
            raise MibeError(f"--judge-order {config.judge_order}: use {' or '.join(judge_scoring.ORDERS)}")
        judged = [t for t in tasks if judgeable(t)]
        if config.fewshot_seeds and judged:  # every task is drawn; the jury's scores are per document
            raise MibeError(
                f"--judge with --fewshot-seeds: {', '.join(t.name for t in judged)} would be {DRAWN}"
            )
        return check_guards(parse_specs(config.judge), judged, grants, machine)
    return []


# ------------------------------------------------------------------------------------------- judges


def identity(desc: dict[str, Any], chat: bool, settings: Settings) -> dict[str, Any]:
    return {
        "backend": desc.get("backend"),
        "model": desc.get("path"),
        "adapter": desc.get("adapter"),
        "config_hash": desc.get("config_hash"),
        "chat": chat,
        "max_new_tokens": settings.max_new_tokens,
    }


def build(s: ModelSpec, items: Sequence[Item], settings: Settings) -> Judge:
    credentialed = [i.name for i in items if i.task.credentialed]
    admission = policy.admit(endpoint_of(s, settings.machine), credentialed, settings.grants)
    backend = factory.build(admission)
    desc = backend.describe()
    chat = s.backend == "openai" or bool(backend.chat_template)
    return Judge(s, backend, identity(desc, chat, settings), chat, admission)


def _order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if rows and all(isinstance(r.get("index"), int) for r in rows):
        return sorted(rows, key=lambda r: r["index"])
    return rows


def _one_task(
    judge: Judge, item: Item, settings: Settings, out_folder: writer.Writer
) -> tuple[dict[str, dict[str, int | None]], dict[str, Any]]:
    """One judge over one task: document -> scores, and what it cost."""
    rows = _order(item.rows)[: settings.limit]
    requests, cut, skipped = requests_for(judge, item.task.judge, rows, settings)
    key = digest([judge.identity, judge_scoring.prompt_hash(item.task.judge, settings.order)])
    cache_at = (out_folder, out_folder.cache("judges", f"{item.name}.{key}"))
    got, sent = call(judge, item, requests, cache_at, settings)
    calls: dict[str, Any] = {"documents": len(rows), "sent": sent, "sources_cut": cut}
    name = f"mibe: {item.name}: judge {judge.spec.text}"
    logger.info(f"{name}: {len(requests)} documents, {len(requests) - sent} from the cache, {sent} sent")
    if skipped:  # left out of this judge's scores (counted unparsable), named in the record
        calls["skipped"] = skipped
        logger.info(
            f"{name} skipped {len(skipped)} document(s) it cannot read: {next(iter(skipped.values()))}"
        )
    return {**got, **{d: dict.fromkeys(item.task.judge.names) for d in skipped}}, calls


def gather(
    items: Sequence[Item], settings: Settings, out_folder: writer.Writer, evaluated: dict
) -> tuple[dict[str, dict[str, dict]], list[dict[str, Any]]]:
    """Every judge over every task, one judge in memory at a time: task -> judge -> doc -> scores;
    and one record per judge (who it is, what it cost, whether it may be grading itself)."""
    scores: dict[str, dict[str, dict]] = {i.name: {} for i in items}
    records = []
    for s in settings.specs:
        judge = build(s, items, settings)
        desc = judge.backend.describe()
        record = {"spec": s.text, **judge.identity, "name": desc.get("name"), "endpoint": judge.admission}
        record["self_preference"] = judge_scoring.same_model(desc, evaluated)
        if record["self_preference"]:
            logger.info(
                f"mibe: warning: --judge {s.text} may be the evaluated model (self-preference); "
                "see docs/judges.md"
            )
        record["calls"] = {}
        for item in items:
            scores[item.name][s.text], record["calls"][item.name] = _one_task(
                judge, item, settings, out_folder
            )
        del judge  # the next judge loads into the memory this one held
        records.append(record)
    return scores, records


def judge_items(
    items: Sequence[Item], settings: Settings, out_folder: writer.Writer, evaluated: dict
) -> tuple[dict[str, tuple[dict[str, Any], list[dict[str, Any]]]], list[policy.Admission]]:
    """task -> (its new entry, its new samples); and each judge's endpoint admission."""
    check_human_ratings(items, settings)
    scores, records = gather(items, settings, out_folder, evaluated)
    out = {i.name: judged(i, scores[i.name], records, settings) for i in items}
    for name, (entry, _) in out.items():
        cells = "  ".join(
            f"{m}={v['value']:.2f}" if v["value"] is not None else f"{m}=n/a"
            for m, v in entry["metrics"].items() if m.startswith(judge_scoring.METRIC_PREFIX)
        )  # fmt: skip
        logger.info(f"mibe: {name}: jury {entry['protocol']['jury']['id']}: {cells}")
    return out, [r["endpoint"] for r in records]


# ------------------------------------------------------------------------------- choosing the tasks


def judgeable(task: Any) -> bool:
    return task is not None and task.answer_type == "text" and task.judge is not None


def pick(run: saved_run.SavedRun, names: Sequence[str]) -> list[saved_run.SavedTask]:
    """The named tasks (each must have a rubric), else every text task of the run that has one."""
    chosen = saved_run.pick(run, names)
    found = []
    for name in chosen:
        task = saved_run.task_file(name, run.results["tasks"][name], warn=False)
        if judgeable(task) and run.results["tasks"][name].get("fewshot_seeds"):
            if names:
                raise MibeError(f"--tasks {name}: {DRAWN}")
            logger.info(f"mibe: {name}: left out: {DRAWN}")
        elif judgeable(task):
            found.append(name)
        elif names:
            raise MibeError(
                f"--tasks: {name} has no `judge:` rubric in its task file (only text tasks are judged); "
                "add one (docs/judges.md) or leave the task out"
            )
    if not found:
        raise MibeError(
            f"{run.path}: no task with a `judge:` rubric (text tasks such as pubmed_sum, mimic_cxr); "
            "nothing to judge"
        )
    return [saved_run.read_task(run, name) for name in found]


# ------------------------------------------------------------------------------------ the commands


def _without_juries(protocols: Any) -> Any:
    if not isinstance(protocols, dict):
        return protocols
    return {
        name: {k: v for k, v in p.items() if k not in ("jury", "juries")} if isinstance(p, dict) else p
        for name, p in protocols.items()
    }


def _same_judging(previous: dict[str, Any], run_json: dict[str, Any]) -> str | None:
    """A judging folder is the same when it judges the same run: the juries it holds may differ."""
    return writer.identity_difference(
        {**previous, "protocols": _without_juries(previous.get("protocols"))}, run_json
    )


def _item(s: saved_run.SavedTask, base: dict[str, Any] | None, out: writer.Writer) -> Item:
    """A task to judge: as the folder being written holds it (with its earlier juries), else as the
    judged run holds it."""
    if base is not None and s.name in (base.get("tasks") or {}):
        rows = folder.read_samples(out.samples(s.name))
        return Item(s.name, s.task, base["tasks"][s.name], rows, s.private)
    return Item(s.name, s.task, s.entry, s.rows, s.private)


def _copy_samples(run: saved_run.SavedRun, name: str, out: writer.Writer) -> None:
    source = folder.samples_path(run.path, name)
    if source.is_file():
        private = source.stat().st_mode & 0o077 == 0
        out.replace_samples(name, saved_run.rows(run, name) or (), private)


def _judged_results(
    run: saved_run.SavedRun, tasks: dict[str, Any], command: Sequence[str], origin: Path
) -> dict[str, Any]:
    from mibe.version import __version__

    return {
        **run.results,
        "mibe_version": __version__,
        "git_commit": folder.git_commit(),
        "command": list(command),
        "tasks": tasks,
        "judged_from": {"run": str(origin)},
        "timing": {
            **(run.results.get("timing") or {}),
            "judged_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }


def judge_run(
    run_dir: str | Path,
    output_dir: str | Path,
    settings: Settings,
    names: Sequence[str] = (),
    command: Sequence[str] = (),
    overwrite: bool = False,
) -> dict[str, Any]:
    """`mibe judge`: write `output_dir`, the run folder `run_dir` with judge columns on its text
    tasks; the evaluated model is never loaded. The same folder again adds another jury beside the
    ones it holds (or resumes the same one). Returns the new results.json."""
    run = saved_run.read_run(run_dir)
    sharding.refuse(run_dir, run.results, "judge")
    origin, out_dir = run.path.resolve(), Path(output_dir)
    writer.check_output(out_dir, origin)
    picked = pick(run, names)
    config = run.results.get("config") or {}
    settings = dataclasses.replace(
        settings, seed=config.get("seed", 1234), n_boot=config.get("bootstrap", 1000)
    )
    device = devices.for_rerun(settings.machine.device if settings.device_given else None, config)
    settings = dataclasses.replace(settings, machine=dataclasses.replace(settings.machine, device=device))
    # A bad ratings file, or one of other ids, fails before any call; a refused judge before anything
    # is written or built.
    check_human_ratings([Item(s.name, s.task, s.entry, s.rows, s.private) for s in picked], settings)
    policy.check_named(settings.grants, [endpoint_of(s, settings.machine) for s in settings.specs])
    check_guards(settings.specs, [s.task for s in picked], settings.grants, settings.machine)
    # Owner-only when the judged run is (it holds a credentialed task), as `mibe run` wrote it.
    whole = (origin / "results.json").stat().st_mode & 0o077 == 0 or any(s.private for s in picked)
    run_json = {**run.run_json, "judged_from": {"run": str(origin)}}
    with writer.open_folder(out_dir, run_json, overwrite, whole, origin, _same_judging) as (out, previous):
        base = folder.read_json(out_dir / "results.json") if previous is not None else None
        items = [_item(s, base, out) for s in picked]
        results, built = judge_items(items, settings, out, run.results.get("model") or {})
        earlier, run_tasks = (base or {}).get("tasks") or {}, run.results["tasks"]
        for name in run.results["tasks"]:
            if name in results:
                out.replace_samples(name, results[name][1], next(i.private for i in items if i.name == name))
            elif name not in earlier:
                _copy_samples(run, name, out)
        tasks = {n: results[n][0] if n in results else earlier.get(n, e) for n, e in run_tasks.items()}
        protocols = {n: e["protocol"] for n, e in tasks.items()}
        out.write_json("run.json", {**run_json, "protocols": protocols})
        results_json = _judged_results(run, tasks, command, origin)
        results_json["endpoints"] = policy.records(built, run.results.get("endpoints") or [])
        out.write_json("results.json", results_json)
    logger.info(summary_table(results_json))
    logger.info(f"mibe: judged results in {out_dir / 'results.json'}")
    return results_json


def summary_table(results: dict[str, Any]) -> str:
    from mibe.runfolder import summary

    return summary.table(results)


def after_run(config: RunConfig, out_folder: writer.Writer, out: dict[str, Any], evaluated: dict) -> None:
    """`mibe run ... --judge`: judge the run's scored text tasks in its own folder (cache included)."""
    settings = Settings(
        parse_specs(config.judge), config.judge_order, seed=config.seed, n_boot=config.bootstrap,
        redact=config.redact_samples, machine=machine_of(config),
        grants=policy.authorisations(config.allow_remote_credentialed),
    )  # fmt: skip
    items = []
    for name, entry in out["tasks"].items():
        task = saved_run.task_file(name, entry, warn=False)
        rows = folder.read_samples(out_folder.samples(name)) if judgeable(task) else []
        if rows and saved_run.redacted(rows):
            logger.info(
                f"mibe: {name}: its samples were redacted before judging (an earlier run); not judged"
            )
        elif rows:
            items.append(Item(name, task, entry, rows, task.credentialed))
    if items:
        judged_now, built = judge_items(items, settings, out_folder, evaluated)
        for name, (entry, rows) in judged_now.items():
            out_folder.replace_samples(name, rows, private=entry_private(items, name))
            out["tasks"][name] = entry
        out["endpoints"] = policy.records(built, out.get("endpoints") or [])
    else:
        logger.info("mibe: --judge: no scored text task has a `judge:` rubric; nothing judged")


def entry_private(items: Sequence[Item], name: str) -> bool:
    return next(i.private for i in items if i.name == name)
