"""One task through the pipeline: docs -> requests -> backend -> parse -> samples -> metrics, under the
task's plan (mibe/runner/task_plan.py: its documents and protocol, fixed before anything is sent)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibe import data, prompts
from mibe.runfolder import folder, sharding, writer
from mibe.runner import batches, extract, parallel, sample_rows, task_plan, templating, thinking
from mibe.scoring import calibration, kinds, output_checks
from mibe.scoring.stats import clusters_of, n_clusters
from mibe.types import Backend, Doc, MibeError, Request, RunConfig, Task, is_paper


def build_requests(
    p: task_plan.Plan, config: RunConfig, backend: Backend, pool: Sequence[Doc], docs: Sequence[Doc]
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
        if budget < 1 and not loglik:  # the answer's cap alone fills the context: no prompt can fit
            raise MibeError(
                f"{task.name}: max_new_tokens {max_new} ({_cap_source(p, config)}) leaves no room for a "
                f"prompt in the model's {backend.max_context}-token context; lower --max-new-tokens"
            )
        if budget < 1:  # a choice as long as the whole context
            raise MibeError(
                f"{task.name}: its longest choice takes {reserve} tokens, all of the model's "
                f"{backend.max_context}-token context, leaving no room for a prompt; score it with "
                "--scoring generate or use a longer-context model"
            )
    seed = config.seed if p.draw is None else p.draw
    drawn = [(doc, data.draw_shots(doc, pool, config.num_fewshot, seed)) for doc in docs]
    # Batched calls over all cores, before any forward (a no-op for backends without a batched
    # tokenizer); fitting then finds each prompt ready.
    whole = [prompts.compose(task.template, doc, shots) for doc, shots in drawn]
    backend.tokenize_many([wrap(w) for w in whole], conts)
    requests, notes = [], {}
    for doc, shots in drawn:
        prompt, removed = prompts.fit(
            task.template, doc, shots, task.truncate, count, backend.tokenize, backend.detokenize, budget
        )
        stop = tuple(p.protocol["stop"] or ())
        requests.append(Request(doc.id, wrap(prompt), max_new, stop, conts, delimiters))
        notes[doc.id] = {"shots": [s.id for s in shots], "truncated_tokens": removed}
    return requests, notes


def _cap_source(p: task_plan.Plan, config: RunConfig) -> str:
    """Where the answer's token cap came from, so the fix names what is in force."""
    cap = "the task file's generation.max_new_tokens"
    if config.max_new_tokens:
        cap = "--max-new-tokens"
    elif is_paper(config.protocol):
        cap = f"--protocol {config.protocol}'s 256"
    budget = (p.protocol.get("reasoning") or {}).get("budget") or 0
    return cap + (f" + --reasoning-budget {budget}" if budget else "")


def precheck(p: task_plan.Plan, config: RunConfig, backend: Backend, pool: Sequence[Doc]) -> None:
    """What could refuse this task's settings, found before the run folder is written (a corrected
    command is then never refused as "another run"): the answer's cap with any --reasoning-budget
    against the context, and the chat template rendering the first document's prompt."""
    if p.docs:
        build_requests(p, config, backend, pool, p.docs[:1])


def evaluate(
    p: task_plan.Plan, backend: Backend, config: RunConfig, run_dir: Path, pool: Sequence[Doc]
) -> tuple[dict | None, dict]:
    """Score one task: documents -> requests -> backend -> parse -> samples -> metrics.

    Resumes from the task's samples file. Returns its results.json entry (None on the ranks other
    than 0 of a data-parallel run: rank 0 merges their shards and scores the task) and its timing."""
    scored, timing = evaluate_scored(p, backend, config, run_dir, pool)
    return (None if scored is None else scored.entry), timing


def evaluate_scored(
    p: task_plan.Plan, backend: Backend, config: RunConfig, run_dir: Path, pool: Sequence[Doc]
) -> tuple[Scored | None, dict]:
    """`evaluate`, keeping the statistics matrix the entry was computed from (`Scored`)."""
    task, share = p.task, parallel.share(run_dir, p.task.name)
    done = writer.done_ids(folder.samples_path(run_dir, task.name), p.draw, p.permutation)
    # --shard I/N: this job's part of the documents; a launcher's ranks split that part further.
    docs = [d for d in p.docs if sharding.mine(config.shard, task.name, d.id)]
    pending = share.mine([d for d in docs if d.id not in done])
    started, tokens = time.perf_counter(), 0
    if pending:
        requests, notes = build_requests(p, config, backend, pool, pending)
        position = {d.id: i for i, d in enumerate(p.docs)}
        by_id = {d.id: d for d in pending}
        bar = batches.progress(len(docs), len(done), task.name)
        try:  # closed also on Ctrl-C or a failing endpoint, so the terminal is left clean
            tokens = _run_batches(p, backend, config, share, bar, requests, notes, position, by_id)
        finally:
            bar.close()
    wall = time.perf_counter() - started
    timing = {"wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 1) if wall else 0.0}
    if not share.gather(task.credentialed):
        return None, timing
    if config.shard:  # a shard computes no statistic: `mibe merge` does, over every document
        return Scored({}), timing
    return score(p, config, folder.samples_path(run_dir, task.name)), timing


def _output_tokens(backend: Backend, batch: Sequence[Request], outputs: Sequence[Any]) -> list[int]:
    """Each output's new tokens, re-tokenised (less the special tokens the tokenizer adds to any text)."""
    if batch[0].continuations:
        return [0] * len(batch)
    specials = len(backend.tokenize(""))
    counts = []
    for request, output in zip(batch, outputs, strict=True):
        said = backend.served_tokens(request.doc_id)  # an endpoint's own count (usage, finish_reason)
        counts.append(said if said is not None else max(0, len(backend.tokenize(output)) - specials))
    return counts


def _run_batches(
    p: task_plan.Plan, backend: Backend, config: RunConfig, share: parallel.Share, bar: Any, requests: list,
    notes: dict, position: dict, by_id: dict,
) -> int:  # fmt: skip
    task, target, parser = p.task, share.target, p.protocol["parser"]
    # Engines that schedule their own batches (vLLM, endpoints) take larger chunks per call;
    # samples are still flushed after each chunk, so an interrupted run resumes.
    chunk = backend.chunk_size
    size, on_accelerator = chunk or config.batch_size, not chunk and config.device != "cpu"
    extra = p.protocol["max_new_tokens"] or 0
    lengths = {r.doc_id: len(backend.tokenize(r.prompt)) for r in requests}
    # Redaction holds whatever the order of events: once a task's samples are redacted, rows stay so.
    redact = config.redact_samples or folder.holds_redacted(target)
    listens = backend.reports_steps  # backends that report within a batch (HF)
    if listens:
        backend.on_step = bar.on_step
    tokens = 0
    try:
        for batch, outputs in batches.run(
            backend, requests, lengths, size, on_accelerator, extra, task.name, bar
        ):
            new = _output_tokens(backend, batch, outputs)
            for r, n in zip(batch, new, strict=True):  # outputs that used every allowed token
                if not r.continuations:
                    notes[r.doc_id]["cut_at_limit"] = n >= r.max_new_tokens
            rows = [
                sample_rows.to_sample(task, by_id[r.doc_id], r, o, parser, notes[r.doc_id], position)
                for r, o in zip(batch, outputs, strict=True)
            ]
            servers = [backend.answered_by(r.doc_id) for r in batch]  # an endpoint pool: which server
            if any(s is not None for s in servers):
                for row, server in zip(rows, servers, strict=True):
                    row["endpoint"] = server
            thinking.count_tokens(backend, rows)
            if p.extractor is not None:
                p.extractor.apply(task, rows, share.run_dir, task.credentialed)
            if redact:
                rows = folder.redact_rows(rows, task, task_plan.score_parser(p), config.bertscore_model)
            if p.draw is not None:  # one samples file holds every draw: rows are (draw, id)
                rows = [{"id": r["id"], "draw": p.draw, **r} for r in rows]
            if p.permutation is not None:  # and every ordering of the options: rows are (permutation, id)
                rows = [
                    {"id": r["id"], "permutation": p.permutation, **r, **shown(by_id[r["id"]], p)}
                    for r in rows
                ]
            writer.append_rows(target, rows, private=task.credentialed)
            batch_tokens = sum(lengths[r.doc_id] for r in batch) + sum(new)
            tokens += batch_tokens
            bar.finish(len(batch), batch_tokens)
    finally:
        if listens:
            backend.on_step = None
    return tokens


def shown(doc: Doc, p: task_plan.Plan) -> dict[str, Any]:
    """`option_order`: the original index of the option at each position under the plan's rotation."""
    n = len(prompts.option_letters(doc, p.task.choices) or ())
    return {"option_order": [(i + (p.permutation or 0)) % n for i in range(n)]}


@dataclass(frozen=True)
class Scored:
    """A task's results.json entry and the per-document statistics it was computed from: a summary
    over few-shot draws reuses them, so each draw's statistics (BERTScore among them) are computed once."""

    entry: dict
    x: Any = None  # the (documents, statistics) matrix; None where no statistic was computed (a shard)
    stat_of: dict[str, Any] = field(default_factory=dict)  # each metric as a function of its column sums


def plan_rows(p: task_plan.Plan, path: Path, axis: str, values: Sequence[Any]) -> list[list[dict]]:
    """Each value's samples rows, in the documents' order: `axis` is "draw" (few-shot draws) or
    "permutation" (option orderings); rows of other draws or orderings than the plan's are left out."""
    order = {d.id: i for i, d in enumerate(p.docs)}
    fixed = {"draw": p.draw, "permutation": p.permutation}
    del fixed[axis]
    found: dict[Any, list[dict]] = {v: [] for v in values}
    for row in folder.read_samples(path):
        if row.get(axis) in found and row["id"] in order and all(row.get(k) == v for k, v in fixed.items()):
            found[row.get(axis)].append(row)
    return [sorted(found[v], key=lambda r: order[r["id"]]) for v in values]


def score(p: task_plan.Plan, config: RunConfig, path: Path) -> Scored:
    """The task's entry from its samples file, with the statistics it was computed from."""
    task = p.task
    rows = plan_rows(p, path, "draw", [p.draw])[0]
    if len(rows) != len(p.docs) or len({r["id"] for r in rows}) != len(rows):
        raise MibeError(
            f"{path}: holds {len(rows)} samples for {len(p.docs)} documents; rerun with --overwrite"
        )

    if not kinds.get(task.answer_type).labelled and any(folder.is_redacted(r) for r in rows):
        # --redact-samples: statistics instead of text (rows of a resume without the flag join them).
        rows = folder.redact_rows(rows, task, task_plan.score_parser(p), config.bertscore_model)
        stats = [r["stats"] for r in rows]
        why = next((r["unavailable"] for r in rows if r.get("unavailable")), {})
        scored = kinds.score_stats(
            task.answer_type, task.metrics, stats, why, config.seed, config.bootstrap, clusters_of(rows)
        )
        x, stat_of = kinds.stats_matrix(task.answer_type, task.metrics, stats)
    else:
        scored, x, stat_of = _score_full(p, config, rows)
    return Scored(_entry(p, config, rows, scored), x, stat_of)


def _entry(p: task_plan.Plan, config: RunConfig, rows: list[dict], scored: dict) -> dict:
    task, total = p.task, len(p.docset.docs)
    return {
        "protocol": p.protocol,
        "answer_type": task.answer_type,
        "n": len(rows),
        **cluster_fields(task, rows),
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
        "domain": task.domain,
        "calibration": _calibration(p, config, rows),
        "warnings": _warnings(p, config, rows),
        "reasoning": thinking.summary(rows),
        "extraction": extract.summary(p.protocol.get("extractor") or "", rows),
    }


def cluster_fields(task: Task, rows: Sequence[dict]) -> dict[str, Any]:
    """`cluster_key` and `n_clusters` beside n: None when the documents were resampled one by one."""
    clusters = clusters_of(rows)
    if clusters is None:
        return {"cluster_key": None, "n_clusters": None}
    return {"cluster_key": task.cluster, "n_clusters": n_clusters(clusters, len(rows))}


def _calibration(p: task_plan.Plan, config: RunConfig, rows: list[dict]) -> dict | None:
    """ECE, Brier and reliability bins from the choices' log-likelihoods (log-likelihood scoring only)."""
    if p.protocol["scoring"] != "loglikelihood":
        return None
    return calibration.from_samples(rows, p.task.choices, config.bootstrap, config.seed)


def _warnings(p: task_plan.Plan, config: RunConfig, rows: Sequence[dict]) -> list[str]:
    """Outputs that look broken (mostly empty, identical or cut at the limit), with the likely cause."""
    if p.protocol["scoring"] != "generate" or not rows or any("raw_output" not in r for r in rows):
        return []
    return output_checks.check(
        [str(r["raw_output"]) for r in rows],
        [bool(r.get("cut_at_limit")) for r in rows],
        str(rows[0].get("prompt", "")),
        p.protocol["stop"] or (),
        bool(p.protocol.get("chat_template")),  # what was applied (auto may apply one unasked)
        p.protocol["max_new_tokens"],
        config.protocol,
    )


def _score_full(p: task_plan.Plan, config: RunConfig, rows: list[dict]) -> tuple[dict, Any, dict[str, Any]]:
    def value(x: Any) -> Any:
        return tuple(x) if isinstance(x, list) else x

    kind, metrics, labels, parser = (
        p.task.answer_type,
        p.task.metrics,
        p.task.choices,
        task_plan.score_parser(p),
    )
    golds, preds = [value(r["gold"]) for r in rows], [value(r["prediction"]) for r in rows]
    stats = (
        kinds.get(kind).stats(
            golds, preds, labels, parser, wanted=metrics, bertscore_model=config.bertscore_model
        )
        if golds
        else None
    )
    scored = kinds.score_task(
        kind, metrics, golds, preds, labels, parser, seed=config.seed, n_boot=config.bootstrap,
        bertscore_model=config.bertscore_model, stats=stats, clusters=clusters_of(rows),
    )  # fmt: skip
    return scored, *(stats[:2] if stats else (None, {}))
