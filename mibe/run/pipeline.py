"""One task through the pipeline: docs -> requests -> backend -> parse -> samples -> metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe import data, prompts
from mibe.run import batches, extract, parallel, templating, thinking
from mibe.runs import folder
from mibe.scoring import kinds, reasoning
from mibe.types import Backend, Doc, MibeError, Request, RunConfig, Task


@dataclass(frozen=True)
class Plan:
    """What a task will send to the model, before anything is sent."""

    task: Task
    docset: data.DocSet
    docs: list[Doc]
    protocol: dict[str, Any]
    chat: templating.ChatSetup | None = None  # None: resolved from the config when requests are built
    extractor: Any = None  # --parser model: the loaded mibe.run.extract.Extractor


def scoring_for(task: Task, config: RunConfig) -> str:
    # Only tasks with a closed label set can be scored by comparing the choices' likelihoods.
    if config.scoring == "loglikelihood" and kinds.get(task.answer_type).single:
        return "loglikelihood"
    return "generate"


def generation_for(task: Task, config: RunConfig) -> tuple[int, tuple[str, ...]]:
    if config.protocol == "paper":  # the paper's scripts: 256 new tokens, no stop strings
        max_new, stop = 256, ()
    else:
        max_new, stop = task.max_new_tokens, task.stop
    return (config.max_new_tokens or max_new), stop


def plan(
    task: Task,
    docset: data.DocSet,
    config: RunConfig,
    backend: Backend,
    setup: templating.ChatSetup | None = None,
    extractor: Any = None,
) -> Plan:
    docs = docset.docs[: config.limit] if config.limit is not None else docset.docs
    max_new, stop = generation_for(task, config)
    scoring = scoring_for(task, config)
    setup = (setup or templating.resolve(config, backend)).for_scoring(scoring)
    chat = setup.protocol()
    protocol = {
        "task": task.name,
        "task_version": task.version,
        "task_file_hash": task.file_hash,
        "template_hash": task.template_hash,
        "data": {"fingerprint": docset.fingerprint, "n_rows": len(docset.docs)},
        "split": task.split,
        "limit": config.limit,
        "shots": config.num_fewshot,
        "fewshot_seed": config.seed if config.num_fewshot else None,
        "scoring": scoring,
        "parser": config.resolved_parser if scoring == "generate" else "argmax-loglikelihood",
        "chat_template": chat.pop("chat_template"),
        "system_prompt": chat.pop("system_prompt"),
        "max_new_tokens": max_new if scoring == "generate" else None,
        "stop": list(stop) if scoring == "generate" else None,
        **chat,
        "reasoning": templating.reasoning(config, scoring),
    }
    if protocol["parser"] == "model" and not kinds.get(task.answer_type).labelled:
        protocol["parser"] = "strict"  # the extractor maps answers to labels; free text reads as strict
    if protocol["parser"] == "model":
        protocol["extractor"] = config.extractor
    return Plan(task, docset, docs, protocol, setup, extractor if protocol["parser"] == "model" else None)


def build_requests(
    p: Plan, config: RunConfig, backend: Backend, pool: Sequence[Doc], docs: Sequence[Doc]
) -> tuple[list[Request], dict[str, dict[str, Any]]]:
    """Requests for `docs`, each fitted to the context; returns them with per-document notes."""
    task = p.task
    loglik = p.protocol["scoring"] == "loglikelihood"
    max_new = p.protocol["max_new_tokens"] or 0
    delimiters = templating.delimiters(p.protocol)
    if delimiters:  # --reasoning-budget: thinking tokens on top of the answer's cap
        max_new += p.protocol["reasoning"]["budget"]
    wrap = (p.chat or templating.resolve(config, backend)).wrap(backend)
    conts = tuple(" " + c for c in task.choices) if loglik else ()

    def count(text: str) -> int:
        return len(backend.tokenize(wrap(text)))

    budget = None
    if backend.max_context:
        reserve = max((len(backend.tokenize(c)) for c in conts), default=0) if loglik else max_new
        budget = backend.max_context - reserve
    drawn = [(doc, data.draw_shots(doc, pool, config.num_fewshot, config.seed)) for doc in docs]
    many = getattr(backend, "tokenize_many", None)
    if many is not None:
        # Batched calls over all cores, before any forward; fitting then finds each prompt ready.
        whole = [prompts.compose(task.template, doc, shots) for doc, shots in drawn]
        many([wrap(w) for w in whole], conts)
    requests, notes = [], {}
    for doc, shots in drawn:
        prompt, removed = prompts.fit(
            task.template, doc, shots, task.truncate, count, backend.tokenize, backend.detokenize, budget
        )
        stop = tuple(p.protocol["stop"] or ())
        requests.append(Request(doc.id, wrap(prompt), max_new, stop, conts, delimiters))
        notes[doc.id] = {"shots": [s.id for s in shots], "truncated_tokens": removed}
    return requests, notes


def to_sample(
    task: Task, doc: Doc, request: Request, output: Any, parser: str, note: dict, position: dict[str, int]
) -> dict:
    """One samples row; `index` is the document's place in the data, so the samples alone can be re-scored."""
    row: dict[str, Any] = {"id": doc.id, "prompt": request.prompt}
    if request.continuations:
        best = max(range(len(output)), key=lambda i: output[i])
        value: Any = task.choices[best]
        row.update(raw_output=value, logprobs=output, parse_failed=False)
    else:
        row["raw_output"] = output
        if request.reasoning:  # only the final answer is parsed; an unfinished trace never is
            row.update(thinking.split(request, output))
        parsed = kinds.parse(reasoning.answer_of(row) or "", task.answer_type, task.choices, parser)
        value = parsed.value
        row["parse_failed"] = parsed.failed or bool(row.get("reasoning_truncated"))
    gold = list(doc.gold) if isinstance(doc.gold, tuple) else doc.gold
    row["prediction"] = list(value) if isinstance(value, tuple) else value
    row["gold"] = gold
    row["score"] = kinds.doc_score(task.answer_type, doc.gold, value, parser)
    row.update(note, index=position[doc.id])
    if doc.invented:
        row["invented"] = True
    return row


def evaluate(
    p: Plan, backend: Backend, config: RunConfig, run_dir: Path, pool: Sequence[Doc]
) -> tuple[dict | None, dict]:
    """Score one task: documents -> requests -> backend -> parse -> samples -> metrics.

    Resumes from the task's samples file. Returns its results.json entry (None on the ranks other
    than 0 of a data-parallel run: rank 0 merges their shards and scores the task) and its timing."""
    task, share = p.task, parallel.share(run_dir, p.task.name)
    done = folder.done_ids(folder.samples_path(run_dir, task.name))
    pending = share.mine([d for d in p.docs if d.id not in done])
    started, tokens = time.perf_counter(), 0
    if pending:
        requests, notes = build_requests(p, config, backend, pool, pending)
        position = {d.id: i for i, d in enumerate(p.docs)}
        by_id = {d.id: d for d in pending}
        lengths = {r.doc_id: len(backend.tokenize(r.prompt)) for r in requests}
        bar = batches.progress(len(p.docs), len(done), task.name)
        # Engines that schedule their own batches (vLLM, endpoints) take larger chunks per call;
        # samples are still flushed after each chunk, so an interrupted run resumes.
        chunk = getattr(backend, "chunk_size", None)
        size, on_accelerator = chunk or config.batch_size, not chunk and config.device != "cpu"
        extra = p.protocol["max_new_tokens"] or 0
        say = lambda line: bar.write(f"mibe: {task.name}: {line}")  # noqa: E731
        for batch, outputs in batches.run(
            backend, requests, lengths, size, on_accelerator, extra, task.name, say
        ):
            rows = [
                to_sample(task, by_id[r.doc_id], r, o, p.protocol["parser"], notes[r.doc_id], position)
                for r, o in zip(batch, outputs, strict=True)
            ]
            thinking.count_tokens(backend, rows)
            if p.extractor is not None:
                p.extractor.apply(task, rows, run_dir, task.credentialed)
            folder.append_samples(share.target, rows, private=task.credentialed)
            tokens += sum(lengths[r.doc_id] for r in batch) + _generated(backend, batch, outputs)
            bar.update(len(batch))
        bar.close()
    wall = time.perf_counter() - started
    timing = {"wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 1) if wall else 0.0}
    if not share.gather(task.credentialed):
        return None, timing
    return _score(p, config, folder.samples_path(run_dir, task.name)), timing


def _generated(backend: Backend, batch: Sequence[Request], outputs: Sequence[Any]) -> int:
    return 0 if batch[0].continuations else sum(len(backend.tokenize(o)) for o in outputs)


def _score(p: Plan, config: RunConfig, path: Path) -> dict:
    task = p.task
    order = {d.id: i for i, d in enumerate(p.docs)}
    rows = [r for r in folder.read_samples(path) if r["id"] in order]
    rows.sort(key=lambda r: order[r["id"]])
    if len(rows) != len(p.docs) or len({r["id"] for r in rows}) != len(rows):
        raise MibeError(
            f"{path}: holds {len(rows)} samples for {len(p.docs)} documents; rerun with --overwrite"
        )

    def value(x: Any) -> Any:
        return tuple(x) if isinstance(x, list) else x

    scored = kinds.score_task(
        task.answer_type,
        task.metrics,
        [value(r["gold"]) for r in rows],
        [value(r["prediction"]) for r in rows],
        task.choices,
        p.protocol["parser"] if p.protocol["scoring"] == "generate" else "strict",
        seed=config.seed,
        n_boot=config.bootstrap,
        bertscore_model=config.bertscore_model,
    )
    total = len(p.docset.docs)
    return {
        "protocol": p.protocol,
        "n": len(rows),
        "n_skipped_rows": p.docset.n_skipped,
        "first_skipped_row": p.docset.first_problem,
        "parse_failures": sum(1 for r in rows if r.get("parse_failed")),
        "truncated": sum(1 for r in rows if r.get("truncated_tokens")),
        "invented": any(d.invented for d in p.docs),
        "partial": config.limit is not None and config.limit < total,
        "rescored_from": None,
        "task_file": str(task.path),  # lets `mibe rescore` / `mibe audit` reload a user task file
        "metrics": scored["metrics"],
        "per_class": scored.get("per_class"),
        "reasoning": thinking.summary(rows),
        "extraction": extract.summary(p.protocol.get("extractor") or "", rows),
    }


def dry_run_report(p: Plan, config: RunConfig, backend: Backend, pool: Sequence[Doc]) -> str:
    requests, notes = build_requests(p, config, backend, pool, p.docs)
    lengths = sorted(len(backend.tokenize(r.prompt)) for r in requests)
    buckets: dict[int, int] = {}
    for n in lengths:
        edge = 64
        while edge < n:
            edge *= 2
        buckets[edge] = buckets.get(edge, 0) + 1
    histogram = ", ".join(f"<={edge}: {count}" for edge, count in sorted(buckets.items()))
    truncated = sum(1 for note in notes.values() if note["truncated_tokens"])
    calls = len(requests) * (len(p.task.choices) if p.protocol["scoring"] == "loglikelihood" else 1)
    span = f"{lengths[0]}-{lengths[-1]}" if lengths else "-"
    return (
        f"{p.task.name}: source {p.docset.source} ({p.docset.fingerprint}); {len(p.docs)} documents "
        f"({p.docset.n_skipped} rows unusable); prompt tokens {span} [{histogram}]; "
        f"truncated {truncated}; {p.protocol['scoring']} requests {calls}"
    )
