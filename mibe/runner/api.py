"""A whole run: resolve tasks and data, resume or start the run folder, score, write, summarise."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe import data, names, prompts, tasks
from mibe.backends import devices, endpoint, factory, policy
from mibe.log import logger
from mibe.runfolder import folder, resume, sharding, summary, writer
from mibe.runner import (
    adapters,
    extract,
    fewshot,
    judge_run,
    opening,
    parallel,
    permutations,
    pipeline,
    planning,
    shards,
    shot_draws,
    task_plan,
    templating,
)
from mibe.types import Backend, MibeError, RunConfig
from mibe.version import __version__


def _answered_as(backend: Backend, out: dict[str, Any]) -> None:
    """An endpoint's replies name the model that wrote them: recorded, and said when it is not the
    one asked for (a server that ignores `model`, or a dated snapshot of it). An endpoint's sampling
    parameters (what every request stated, and what the server refused) are recorded beside them:
    after the run, since a refusal is learnt from a reply (mibe/backends/sampling.py)."""
    params = backend.sampling_record()
    if params is not None:
        out["model"] = {**out["model"], "sampling": params}
    kv_cache = backend.kv_cache_bytes  # vLLM on a CPU: the KV cache mibe sized
    if kv_cache is not None:
        out["model"] = {**out["model"], "kv_cache_bytes": kv_cache}
    names = sorted(backend.answered_as)
    if not names:
        return
    out["model"] = {**out["model"], "answered_as": names}
    asked = str(out["model"].get("path") or "")
    if asked not in names:
        shown = ", ".join(names[:3])
        logger.warning(
            f"mibe: warning: the server answered as {shown}, not '{asked}' (results.json: model.answered_as)"
        )


def default_output_dir(config: RunConfig) -> Path:
    name = Path(config.model.rstrip("/")).name or "model"
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def identity(config: RunConfig) -> dict[str, Any]:
    resolved = dataclasses.asdict(config)
    for key in RunConfig.volatile() | config.unset_new_fields():  # declared on the fields (mibe.types)
        resolved.pop(key)
    resolved["tasks"] = list(config.tasks)
    resolved["data"] = dict(sorted(config.data.items()))
    resolved["parser"] = config.resolved_parser
    if config.fewshot_seeds:
        resolved["fewshot_seeds"] = list(config.fewshot_seeds)
    resolved["chat_template"] = templating.setting(config.chat_template)
    resolved["chat_template_kwargs"] = dict(config.chat_template_kwargs)
    resolved["reasoning_delimiters"] = [list(p) for p in config.reasoning_delimiters]  # as JSON reads back
    return resolved


def load(config: RunConfig) -> tuple[list[tuple], dict[str, str]]:
    """Tasks with their data located and read; tasks `all` found no data for are skipped (and said)."""
    fewshot.check(config)  # --protocol paper-fewshot without a shot count: before any data is read
    check_shard(config)
    chosen, explicit = tasks.resolve(config.tasks)
    stray = sorted(set(config.data) - {t.name for t in chosen})
    if stray:
        names = ", ".join(t.name for t in chosen)
        raise MibeError(
            f"--data {stray[0]}=...: no task '{stray[0]}' among --tasks ({names}); check the name"
        )
    data_dir = str(_demo_dir()) if config.demo and config.data_dir is None else config.data_dir
    loaded, skipped = [], {}
    for task in chosen:
        try:
            location = data.locate(task, data_dir, config.data)
            loaded.append((task, location, data.load_docs(task, location)))
            shadow = names.hub_shadow(task.source, task.path.parent) if location.kind == "hub" else None
            if shadow:
                logger.info(f"mibe: {task.name}: {shadow}")
        except data.NoData as exc:
            if task.name in explicit:
                raise MibeError(str(exc)) from None
            skipped[task.name] = str(exc)
            logger.info(f"mibe: skipping {exc}")
    loaded = adapters.with_adapters(config, loaded, skipped, explicit)
    if not loaded:
        raise MibeError(
            "no task has data; pass --data-dir DIR or --data TASK=PATH (see `mibe tasks list`), "
            "or --demo to try the bundled invented documents"
        )
    for task, _, docset in loaded:  # a template that cannot render fails now, not after the model loads
        try:
            prompts.doc_prompt(task.template, docset.docs[0])
        except MibeError as exc:
            raise MibeError(f"{task.path}: field 'template': {exc}") from None
    return loaded, skipped


def run(config: RunConfig, command: Sequence[str] = (), backend: Backend | None = None) -> dict[str, Any]:
    """Score `config.model` on `config.tasks`; returns results.json's content."""
    adapters.check(config)
    loaded, skipped = load(config)
    if not config.dry_run:  # a folder that is a file, read-only or not mibe's: said before the model loads
        _check_output(config)
    # Every endpoint through the policy before anything loads: a refused one stops the run here.
    evaluated, extracting, _ = admit(config, [t for t, _, _ in loaded], backend is not None)
    config, device_line = _resolve_device(config, backend)  # what auto means here is what is recorded
    pools = fewshot.pools(loaded, config)  # too few shots to draw: said before the model loads
    backend = backend or _model(config, evaluated)
    plans, extractor, setup = _plans(config, loaded, pools, backend, extracting)
    _say_opening(config, plans, backend, setup, device_line)
    if config.dry_run:
        _dry_run(plans, config, backend)
        return {}
    w = parallel.world()  # data-parallel under `accelerate launch`: rank 0 alone writes the run files
    run_dir = parallel.agree(w, Path(config.output_dir) if config.output_dir else default_output_dir(config))
    model = _describe(backend, config, plans)
    run_json = _run_json(config, model, plans, extractor)
    private = any(p.task.credentialed for p, _ in plans)  # else run files follow the umask
    with writer.locked(run_dir) if w.main else contextlib.nullcontext():
        out_folder = writer.Writer(run_dir, private)
        previous = _start(w, out_folder, run_json, config.overwrite, [p.task for p, _ in plans])
        if config.redact_samples and w.main:  # also what an earlier run or a kill left unredacted
            _redact_on_disk([p for p, _ in plans], run_dir, config)
            out_folder.strip_judge_replies()
        out = previous or {
            "schema_version": folder.SCHEMA_VERSION,
            "mibe_version": __version__,
            "git_commit": folder.git_commit(),
            "command": list(command),
            "model": model,
            "config": identity(config),
            "tasks": {},
            "skipped": skipped,
            "timing": {"created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            **({"shard": run_json["shard"]} if config.shard else {}),
        }
        if extractor is not None:  # --parser model: which model read the answers (and any override)
            out["extractor"] = extractor.backend.describe()
        out["endpoints"] = policy.records([evaluated, extracting], out.get("endpoints") or [])
        for p, pool in plans:
            if p.task.name not in out["tasks"]:  # a task finished before an interruption is final
                _score_task(p, pool, backend, config, out_folder, out)
        if not w.main:
            return out
        _answered_as(backend, out)
        if config.judge:
            judge_run.after_run(config, out_folder, out, model)
        out_folder.write_json("results.json", out)
    logger.info(summary.table(out))
    logger.info(f"mibe: results in {run_dir / 'results.json'}, predictions in {run_dir / 'samples'}")
    logger.info(summary.next_commands(run_dir, config.shard))
    return out


def _resolve_device(config: RunConfig, backend: Backend | None) -> tuple[RunConfig, str | None]:
    """`--device auto` as the device this rank runs on, said in one line: recorded, and compared on
    resume, as that device (a folder recorded on `cpu` resumes under auto on a CPU machine). An
    endpoint has no local device (cpu, as before auto existed); a model given in memory is where it is."""
    if config.device != devices.AUTO:
        return config, None
    if backend is not None:
        device, line = str(backend.describe().get("device") or "cpu"), None
    elif config.backend == "openai":
        device, line = "cpu", None
    else:
        device, line = devices.resolve(
            devices.AUTO, config.tensor_parallel_size * config.pipeline_parallel_size
        )
    return dataclasses.replace(config, device=device), line


def check_shard(config: RunConfig) -> None:
    """--shard I/N: well formed, and with what a merge can combine (before anything loads)."""
    if not config.shard:
        return
    sharding.parse(config.shard)
    if config.judge:
        raise MibeError(f"--shard {config.shard} with --judge: judge the merged run (mibe judge RUN)")


def _describe(backend: Backend, config: RunConfig, plans: list[tuple]) -> dict[str, Any]:
    """The model as results.json names it; with --adapters, every task's adapter and its training."""
    model = backend.describe()
    per_task = adapters.folders(config, [p.task.name for p, _ in plans])
    if per_task:
        model["adapters"] = adapters.describe(per_task)
    return model


def _dry_run(plans: list[tuple], config: RunConfig, backend: Backend) -> None:
    """Each task's data line, then one planning table and the memory estimate (mibe/runner/planning.py)."""
    figures = [planning.dry_run_report(p, config, backend, pool) for p, pool in plans]
    for f in figures:
        logger.info(f.line)
    if config.measure_throughput:  # the one dry run that loads the model: a short timed run
        speed, line = planning.measure(plans, config, backend, config.measure_throughput)
        logger.info(line)
        config = dataclasses.replace(config, throughput=speed or None)
    described = backend.describe()
    local = described.get("path") if config.backend in ("hf", "vllm") else None
    bytes_only = described.get("tokenizer") == "utf-8 bytes"  # an endpoint without a tokenizer at hand
    logger.info(
        "\n".join(planning.report(config, [p.task.name for p, _ in plans], figures, local, bytes_only))
    )


def _model(config: RunConfig, admitted: Any) -> Backend:
    """The evaluated model, built by the one factory once the endpoint policy admitted it (what
    --device auto chose is said once every setting has passed its checks: an error stays one line)."""
    if config.backend != "openai" and names.model_note(config.model):
        logger.info(names.model_note(config.model))  # a local folder named like a hub id wins: said
    return factory.build(admitted)


def admit(
    config: RunConfig, chosen: Sequence[Any], given: bool
) -> tuple[policy.Admission | None, policy.Admission | None, list[policy.Admission]]:
    """The evaluated model (unless `given` in memory), the extractor and the judges through the one
    endpoint policy, each for the credentialed tasks whose text it would receive."""
    grants, machine = policy.authorisations(config.allow_remote_credentialed), endpoint.machine_of(config)
    secret = [t for t in chosen if t.credentialed]
    own = None if given else endpoint.evaluated(config)
    reader = None
    if config.resolved_parser == "model" and not config.dry_run:
        reader = extract.endpoint_of(config.extractor, machine)
    named = [judge_run.endpoint_of(s, machine) for s in judge_run.parse_specs(config.judge)]
    policy.check_named(grants, [e for e in (own, reader, *named) if e is not None])
    model = policy.admit(own, [t.name for t in secret], grants) if own else None
    extracting = policy.admit(reader, [t.name for t in secret if extract.sees(t)], grants) if reader else None
    return model, extracting, judge_run.precheck(config, chosen, grants, machine)


def _run_json(config: RunConfig, model: dict[str, Any], plans: list[tuple], extractor: Any) -> dict[str, Any]:
    """run.json: the run's identity (docs/run-folder.md, Resume), written before any model output."""
    run_json = {
        "schema_version": folder.SCHEMA_VERSION,
        "mibe_version": __version__,
        "config": identity(config),
        "model": model,
        "protocols": {p.task.name: p.protocol for p, _ in plans},
    }
    if extractor is not None:  # --parser model: the extractor's weights are part of the run's identity
        run_json["extractor"] = extractor.backend.describe()
    if config.shard:  # which part of the run this folder holds (mibe/runfolder/sharding.py)
        run_json["shard"] = sharding.record(
            config.shard, {p.task.name: shards.expected(p, config.shard) for p, _ in plans}
        )
    return run_json


def _plans(
    config: RunConfig,
    loaded: list[tuple],
    pools: list[tuple],
    backend: Backend,
    extracting: Any,
) -> tuple[list[tuple], Any, Any]:
    """Each task's plan with its few-shot pool, the answer extractor (--parser model) if any, and the
    run's chat-template setup."""
    setup = templating.resolve(config, backend)  # once per run: every task gets the same template
    extractor = None
    if extracting is not None:
        extractor = extract.Extractor.load(config.extractor or "", extracting)
    plans = [
        (task_plan.plan(t, d, config, backend, pool, setup, extractor, source), pool)
        for (t, _, d), (pool, source) in zip(loaded, pools, strict=True)
    ]
    return plans, extractor, setup


def _say_opening(
    config: RunConfig,
    plans: list[tuple],
    backend: Backend,
    setup: Any,
    device_line: str | None,
) -> None:
    """Every check that can refuse a setting, before anything is written; then what --device auto
    chose and the protocol the numbers will be read under (so a refusal stays one line), before the
    first request. Data-parallel ranks other than 0 keep quiet."""
    for p, pool in plans:
        pipeline.precheck(p, config, backend, pool)
    if os.environ.get("RANK", "0") != "0":
        return
    if device_line:
        logger.info(device_line)
    for line in opening.lines(config, [p for p, _ in plans], setup):
        logger.info(line)


def _redact_on_disk(plans: Sequence[task_plan.Plan], run_dir: Path, config: RunConfig) -> None:
    for p in plans:
        path = folder.samples_path(run_dir, p.task.name)
        if path.is_file():
            writer.redact_file(path, p.task, task_plan.score_parser(p), config.bertscore_model)


def _start(
    w: parallel.World, out: writer.Writer, run_json: dict, overwrite: bool, chosen: list
) -> dict | None:
    """Start or resume the folder on rank 0; with data-parallel ranks, fold in the rank files a killed run
    left behind and let every rank see the same previous results."""
    run_dir = out.path
    previous = resume.prepare(out, run_json, overwrite) if w.main else None
    if w.size > 1:
        for task in chosen if w.main else ():
            writer.fold_ranks(run_dir, task.name, task.credentialed)
        parallel.barrier(w)
        previous = previous if w.main else folder.read_json(run_dir / "results.json")
    return previous


def _check_output(config: RunConfig) -> None:
    if not config.output_dir:  # a new folder under runs/ (other runs live there too)
        writer.check_output(default_output_dir(config))
    elif os.environ.get("RANK", "0") == "0":
        writer.check_output(Path(config.output_dir))
    else:  # data-parallel ranks other than 0: rank 0 may be writing the folder already
        writer.check_writable(Path(config.output_dir))


def _score_task(
    p: task_plan.Plan,
    pool: list,
    backend: Backend,
    config: RunConfig,
    out_folder: writer.Writer,
    out: dict,
) -> None:
    if config.adapters:  # --adapters: the task's own adapter over the one loaded base
        backend = backend.with_adapter(adapters.folders(config, [p.task.name])[p.task.name])
    evaluate = shot_draws.evaluate if config.fewshot_seeds else pipeline.evaluate
    if p.protocol.get("choice_permutations"):
        evaluate = permutations.evaluate
    if config.shard:  # samples and counts only: `mibe merge` scores
        evaluate = shards.evaluate
    entry, timing = evaluate(p, backend, config, out_folder.path, pool)
    if entry is None:  # a data-parallel rank other than 0: rank 0 records the task
        return
    entry["data_source"] = p.docset.source
    out["tasks"][p.task.name] = entry
    out["timing"][p.task.name] = timing
    out_folder.write_json("results.json", out)
    if config.redact_samples:
        writer.discard(out_folder.cache("extractions", p.task.name))  # --parser model's cache goes too


def _demo_dir() -> Path:
    from mibe import resources

    return resources.demo_dir()
