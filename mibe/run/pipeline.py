"""One task through the pipeline: docs -> requests -> backend -> parse -> samples -> metrics."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe import data, prompts
from mibe.run import parallel
from mibe.runs import folder
from mibe.scoring import kinds
from mibe.types import Backend, Doc, MibeError, Request, RunConfig, Task

# Short prompts share the longest batch's token budget, in at most this many times its rows: a lost
# batch costs more to redo, and past that a GPU is kept busy anyway.
MAX_GROWTH = 8


@dataclass(frozen=True)
class Plan:
    """What a task will send to the model, before anything is sent."""

    task: Task
    docset: data.DocSet
    docs: list[Doc]
    protocol: dict[str, Any]


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


def chat_hash(backend: Backend, config: RunConfig) -> str | None:
    if not config.chat_template:
        return None
    template = getattr(getattr(backend, "tokenizer", None), "chat_template", None) or "endpoint"
    return hashlib.sha256(str(template).encode()).hexdigest()[:16]


def plan(task: Task, docset: data.DocSet, config: RunConfig, backend: Backend) -> Plan:
    docs = docset.docs[: config.limit] if config.limit is not None else docset.docs
    max_new, stop = generation_for(task, config)
    scoring = scoring_for(task, config)
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
        "chat_template": chat_hash(backend, config),
        "system_prompt": config.system_prompt if config.chat_template else None,
        "max_new_tokens": max_new if scoring == "generate" else None,
        "stop": list(stop) if scoring == "generate" else None,
    }
    return Plan(task, docset, docs, protocol)


def build_requests(
    p: Plan, config: RunConfig, backend: Backend, pool: Sequence[Doc], docs: Sequence[Doc]
) -> tuple[list[Request], dict[str, dict[str, Any]]]:
    """Requests for `docs`, each fitted to the context; returns them with per-document notes."""
    task = p.task
    loglik = p.protocol["scoring"] == "loglikelihood"
    max_new = p.protocol["max_new_tokens"] or 0
    conts = tuple(" " + c for c in task.choices) if loglik else ()

    def count(text: str) -> int:
        return len(
            backend.tokenize(backend.chat(text, config.system_prompt) if config.chat_template else text)
        )

    budget = None
    if backend.max_context:
        reserve = max((len(backend.tokenize(c)) for c in conts), default=0) if loglik else max_new
        budget = backend.max_context - reserve
    drawn = [(doc, data.draw_shots(doc, pool, config.num_fewshot, config.seed)) for doc in docs]
    many = getattr(backend, "tokenize_many", None)
    if many is not None:
        # Batched calls over all cores, before any forward; fitting then finds each prompt ready.
        whole = [prompts.compose(task.template, doc, shots) for doc, shots in drawn]
        many([backend.chat(w, config.system_prompt) for w in whole] if config.chat_template else whole, conts)
    requests, notes = [], {}
    for doc, shots in drawn:
        prompt, removed = prompts.fit(
            task.template, doc, shots, task.truncate, count, backend.tokenize, backend.detokenize, budget
        )
        if config.chat_template:
            prompt = backend.chat(prompt, config.system_prompt)
        stop = tuple(p.protocol["stop"] or ())
        requests.append(Request(doc.id, prompt, max_new, stop, conts))
        notes[doc.id] = {"shots": [s.id for s in shots], "truncated_tokens": removed}
    return requests, notes


def _sample(task: Task, doc: Doc, request: Request, output: Any, parser: str, note: dict) -> dict:
    row: dict[str, Any] = {"id": doc.id, "prompt": request.prompt}
    if request.continuations:
        best = max(range(len(output)), key=lambda i: output[i])
        value: Any = task.choices[best]
        row.update(raw_output=value, logprobs=output, parse_failed=False)
    else:
        parsed = kinds.parse(output, task.answer_type, task.choices, parser)
        value = parsed.value
        row.update(raw_output=output, parse_failed=parsed.failed)
    gold = list(doc.gold) if isinstance(doc.gold, tuple) else doc.gold
    row["prediction"] = list(value) if isinstance(value, tuple) else value
    row["gold"] = gold
    row["score"] = kinds.doc_score(task.answer_type, doc.gold, value, parser)
    row.update(note)
    if doc.invented:
        row["invented"] = True
    return row


def batch_rows(costs: Sequence[int], start: int, size: int, budget: int | None) -> int:
    """How many requests from `start` the next batch takes: `size` of them, or, under a token
    budget, as many as fit it padded to the first one's cost (requests come longest first)."""
    left = len(costs) - start
    if budget is None:
        return min(size, left)
    return max(1, min(left, budget // max(1, costs[start]), size * MAX_GROWTH))


def _call(backend: Backend, batch: Sequence[Request]) -> list[Any]:
    if batch[0].continuations:
        return backend.loglikelihood(batch)
    return backend.generate(batch)


def is_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError (CUDA/MPS) or the allocator's RuntimeError text; MemoryError on CPU.
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _progress(total: int, done: int, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=name, unit="doc", file=sys.stderr, leave=True)


def evaluate(
    p: Plan, backend: Backend, config: RunConfig, run_dir: Path, pool: Sequence[Doc]
) -> tuple[dict | None, dict]:
    """Score one task, resuming from its samples file; returns its results.json entry (None on the
    ranks other than 0 of a data-parallel run: rank 0 merges their shards and scores the task)."""
    task = p.task
    path = folder.samples_path(run_dir, task.name)
    done = {row["id"] for row in folder.read_samples(path)}
    w = parallel.world()
    pending = [d for d in p.docs if d.id not in done][w.rank :: w.size]
    out_path = parallel.shard_path(run_dir, task.name, w.rank) if w.size > 1 else path
    parser = p.protocol["parser"]
    started, tokens = time.perf_counter(), 0
    if pending:
        requests, notes = build_requests(p, config, backend, pool, pending)
        position = {d.id: i for i, d in enumerate(p.docs)}
        for doc_id, note in notes.items():
            note["index"] = position[doc_id]  # document order, so the samples alone can be re-scored
        by_id = {d.id: d for d in pending}
        # Longest first: an out-of-memory batch shows up at once, not after an hour.
        lengths = {r.doc_id: len(backend.tokenize(r.prompt)) for r in requests}
        requests.sort(key=lambda r: -lengths[r.doc_id])
        bar = _progress(len(p.docs), len(done), task.name)
        # Engines that schedule their own batches (vLLM, endpoints) take larger chunks per call;
        # samples are still flushed after each chunk, so an interrupted run resumes.
        chunk = getattr(backend, "chunk_size", None)
        size, start = chunk or config.batch_size, 0
        extra = p.protocol["max_new_tokens"] or 0
        costs = [lengths[r.doc_id] + extra for r in requests]
        # On an accelerator, --batch-size rows of the longest prompts set a token budget that
        # shorter prompts share in larger batches. Not on a CPU: there larger batches only run
        # slower (600 documents at batch 4 / 8 / 16: 18 / 19.5 / 23 s), so the batch stays put.
        budget = None if chunk or not costs or config.device == "cpu" else size * costs[0]
        while start < len(requests):
            rows = batch_rows(costs, start, size, budget)
            batch = requests[start : start + rows]
            try:
                outputs = _call(backend, batch)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if rows == 1:
                    raise MibeError(
                        f"{task.name}: out of memory at batch size 1 (document {batch[0].doc_id}); "
                        "use a smaller --dtype, a larger device, or a shorter-context model"
                    ) from None
                half = rows // 2  # greedy predictions do not depend on the batch size
                size, budget = min(size, half), budget and costs[start] * half
                bar.write(f"mibe: {task.name}: out of memory; retrying with batch size {half}")
                continue
            if not batch[0].continuations:
                tokens += sum(len(backend.tokenize(o)) for o in outputs)
            samples = [
                _sample(task, by_id[r.doc_id], r, o, parser, notes[r.doc_id])
                for r, o in zip(batch, outputs, strict=True)
            ]
            folder.append_samples(out_path, samples, private=task.credentialed)
            tokens += sum(lengths[r.doc_id] for r in batch)
            bar.update(len(batch))
            start += len(batch)
        bar.close()
    wall = time.perf_counter() - started
    timing = {"wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 1) if wall else 0.0}
    if w.size > 1:
        parallel.barrier(w)
        if not w.main:
            return None, timing
        parallel.merge_shards(run_dir, task.name, task.credentialed)
    return _score(p, config, path), timing


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
