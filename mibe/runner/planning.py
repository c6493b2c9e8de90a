"""`--dry-run`: one planning table for the whole run, per task and in total, and the memory it needs.

Nothing is scored and no weights load: the tokenizer counts the prompts, and the memory estimate
builds the model on PyTorch's meta device (mibe/backends/memory.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mibe import textout
from mibe.runfolder import sharding
from mibe.runner import pipeline, task_plan
from mibe.types import Backend, Doc, RunConfig

HEADER = ("task", "documents", "requests", "prompt tokens", "longest prompt", "answer tokens (max)")
COST = "cost (max, $)"
BYTES_NOTE = (
    "counts are UTF-8 bytes, not tokens (no tokenizer for this endpoint; bytes are an upper bound): "
    "--tokenizer NAME|PATH counts tokens"
)


def cost(prompt_tokens: int, answer_tokens: int, price: tuple[float, float]) -> float:
    """Dollars for these tokens at (IN, OUT) dollars per million; answer tokens at their cap, so a
    ceiling (a model that stops early costs less)."""
    return (prompt_tokens * price[0] + answer_tokens * price[1]) / 1_000_000


def table(
    names: Sequence[str], figures: Sequence[DryRun], price: tuple[float, float] | None = None
) -> list[str]:
    """The planning table, aligned, with a total row; with a price, each line's cost."""
    rows = [
        (name, f.docs, f.requests, f.prompt_tokens, f.longest, f.answer_tokens)
        for name, f in zip(names, figures, strict=True)
    ]
    rows.append(
        (
            "total",
            sum(f.docs for f in figures),
            sum(f.requests for f in figures),
            sum(f.prompt_tokens for f in figures),
            max((f.longest for f in figures), default=0),
            sum(f.answer_tokens for f in figures),
        )
    )
    cells = [HEADER] + [(str(r[0]), *(f"{v:,}" for v in r[1:])) for r in rows]
    if price is not None:
        cells = [(*cells[0], COST)] + [
            (*c, f"{cost(r[3], r[5], price):,.2f}") for c, r in zip(cells[1:], rows, strict=True)
        ]
    # One line per task, whatever the width: people and scripts read a task's figures across its row.
    return textout.table(cells, head=1, keep=1, width=textout.WHOLE, right=range(1, len(cells[0])))


def precision(config: RunConfig, model_config: Any) -> str:
    """The dtype the weights are held in: --dtype, else the checkpoint's own, else float32."""
    if config.dtype in ("float32", "float16", "bfloat16"):
        return config.dtype
    found = getattr(model_config, "dtype", None) or getattr(model_config, "torch_dtype", None)
    name = str(found).removeprefix("torch.") if found is not None else ""
    return name if name in ("float32", "float16", "bfloat16") else "float32"


def memory_lines(config: RunConfig, model_path: str, figures: Sequence[DryRun]) -> list[str]:
    """Weights and KV cache at the run's batch and longest context, against the devices found."""
    from mibe.backends import memory

    model_config = memory.load_config(model_path, config.trust_remote_code)
    dtype = precision(config, model_config)
    context = max((f.longest for f in figures), default=0) + max(
        (f.answer_tokens // max(f.docs, 1) for f in figures), default=0
    )
    quantize = getattr(config, "quantize", None)
    return memory.plan(model_config, quantize or dtype, dtype, config.batch_size, max(context, 1))


def shard_lines(config: RunConfig, names: Sequence[str], figures: Sequence[DryRun]) -> list[str]:
    """`--shards N`: each shard's documents and tokens (prompt plus the most the answers can take),
    and with `--throughput` its estimated wall time: tokens / throughput (prompt and generated tokens
    per second, as results.json's `timing.<task>.tokens_per_s` measures them)."""
    n, speed = config.plan_shards or 0, config.throughput
    docs, tokens = [0] * n, [0] * n
    for name, f in zip(names, figures, strict=True):
        for doc_id, count in f.per_doc.items():
            i = sharding.assigned(name, doc_id, n)
            docs[i] += 1
            tokens[i] += count
    header = ("shard", "documents", "tokens", "estimated wall")
    cells = [header] + [
        (f"{i}/{n}", f"{docs[i]:,}", f"{tokens[i]:,}", _duration(tokens[i] / speed) if speed else "-")
        for i in range(n)
    ]
    lines = textout.table(cells, head=1, keep=1, width=textout.WHOLE, right=range(1, len(header)))
    if not speed:
        lines.append("add --throughput TOKENS_PER_S for each shard's wall time (measure it: a short run's "
                     "timing.<task>.tokens_per_s in results.json)")  # fmt: skip
    return lines


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def report(
    config: RunConfig,
    names: Sequence[str],
    figures: Sequence[DryRun],
    model_path: str | None,
    bytes_only: bool = False,
) -> list[str]:
    """Every line `--dry-run` prints after the per-task lines."""
    lines = table(names, figures, config.price)
    if bytes_only:
        lines.append(BYTES_NOTE)
    if config.price is not None:
        lines.append(
            f"cost at ${config.price[0]:g} per million prompt tokens and ${config.price[1]:g} per million "
            "answer tokens (--price), answers at their cap: a ceiling"
        )
    if config.plan_shards:
        lines += ["", *shard_lines(config, names, figures)]
    if model_path is not None:  # a local model (not an endpoint): its memory can be planned
        lines += memory_lines(config, model_path, figures)
    return lines


def measure(plans: Sequence[Any], config: RunConfig, backend: Any, count: int) -> tuple[float, str]:
    """`--measure-throughput DOCS`: the one dry run that loads the model. The first DOCS documents (taken
    task by task, as the run orders them) are scored on the real backend, nothing is written, and
    the prompt plus generated tokens per second is the throughput the shard plan uses."""
    import time

    from mibe.runner import pipeline

    left, tokens, seconds, done = count, 0, 0.0, 0
    for p, pool in plans:
        if left <= 0:
            break
        docs = p.docs[:left]
        requests, _ = pipeline.build_requests(p, config, backend, pool, docs)
        prompt = sum(len(backend.tokenize(r.prompt)) for r in requests)
        start = time.perf_counter()
        if p.protocol["scoring"] == "loglikelihood":
            backend.loglikelihood(requests)
            tokens += prompt * max(1, len(p.task.choices))  # each choice is a continuation of the prompt
        else:
            outputs = backend.generate(requests)
            tokens += prompt + sum(len(backend.tokenize(o)) for o in outputs)
        seconds += time.perf_counter() - start
        left, done = left - len(docs), done + len(docs)
    speed = tokens / seconds if seconds > 0 else 0.0
    line = (
        f"measured: {speed:,.0f} tokens/s (prompt plus generated) over {done} documents in {seconds:.1f} s "
        f"on this machine ({config.backend}); nothing was written"
    )
    return speed, line


@dataclass(frozen=True)
class DryRun:
    """A task's figures for `--dry-run` (rendered below)."""

    line: str  # the task's data and prompt-length line
    docs: int
    requests: int  # backend calls: one per document, or one per choice under log-likelihood scoring
    prompt_tokens: int  # summed over requests (choices included)
    longest: int  # the longest prompt, in tokens
    answer_tokens: int  # the most tokens the answers can take (max_new_tokens per generated document)
    # each document's prompt plus answer tokens, by id: `--dry-run --shards N` sums them per shard
    per_doc: dict[str, int] = field(default_factory=dict)


def _variants(p: task_plan.Plan, config: RunConfig) -> list[task_plan.Plan]:
    """The plans a task is scored under: one per few-shot draw (--fewshot-seeds) times one per option
    ordering (--choice-permutations), each sending its own requests; otherwise the plan itself."""
    from mibe.runner import permutations

    draws: list[int | None] = list(config.fewshot_seeds) or [None]
    found = []
    for draw in draws:
        drawn = p if draw is None else dataclasses.replace(p, draw=draw)
        for k in permutations.orderings(p.protocol):
            found.append(drawn if k is None else permutations.ordering(drawn, k))
    return found


def dry_run_report(p: task_plan.Plan, config: RunConfig, backend: Backend, pool: Sequence[Doc]) -> DryRun:
    """A task's figures over every request the run would send: all draws and orderings counted."""
    variants = _variants(p, config)
    requests, notes = [], {}
    for v in variants:
        sent, said = pipeline.build_requests(v, config, backend, pool, v.docs)
        requests += sent
        notes.update({(v.draw, v.permutation, k): n for k, n in said.items()})
    lengths = sorted(len(backend.tokenize(r.prompt)) for r in requests)
    buckets: dict[int, int] = {}
    for n in lengths:
        edge = 64
        while edge < n:
            edge *= 2
        buckets[edge] = buckets.get(edge, 0) + 1
    histogram = ", ".join(f"<={edge}: {count}" for edge, count in sorted(buckets.items()))
    truncated = sum(1 for note in notes.values() if note["truncated_tokens"])
    per_doc = len(p.task.choices) if p.protocol["scoring"] == "loglikelihood" else 1
    calls = len(requests) * per_doc
    span = f"{lengths[0]}-{lengths[-1]}" if lengths else "-"
    passes = f" ({len(variants)} passes: draws x orderings)" if len(variants) > 1 else ""
    line = (
        f"{p.task.name}: source {p.docset.source} ({p.docset.fingerprint}); {len(p.docs)} documents "
        f"({p.docset.n_skipped} rows unusable); prompt tokens {span} [{histogram}]; "
        f"truncated {truncated}; {p.protocol['scoring']} requests {calls}{passes}"
    )
    generated = p.protocol["scoring"] == "generate"
    answers = sum(r.max_new_tokens for r in requests) if generated else 0
    longest = lengths[-1] if lengths else 0
    tokens: dict[str, int] = {}  # a document's tokens over all its passes: a shard holds them all
    for r in requests:
        tokens[r.doc_id] = tokens.get(r.doc_id, 0) + len(backend.tokenize(r.prompt)) * per_doc
        tokens[r.doc_id] += r.max_new_tokens if generated else 0
    return DryRun(line, len(p.docs), calls, sum(lengths) * per_doc, longest, answers, tokens)
