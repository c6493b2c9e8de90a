"""Reasoning traces in a run: each generated output split into its trace and its final answer
before the parser (mibe.backends.traces holds the rules), and the per-task token counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mibe.backends.traces import opens_trace, reasoning_token_stats, split_reasoning
from mibe.types import Backend, Request


def split(request: Request, output: str) -> dict[str, Any]:
    """The sample's reasoning fields; `answer_text` is what the parser reads ("" when truncated)."""
    opened = opens_trace(request.prompt, request.reasoning)
    found = split_reasoning(output, request.reasoning, opened=opened)
    return {
        "reasoning": found.reasoning,
        "answer_text": found.answer_text,
        "reasoning_truncated": found.truncated,
    }


def count_tokens(backend: Backend, rows: Sequence[dict[str, Any]]) -> None:
    """`reasoning_tokens` of each row with a trace (None without one) and `answer_tokens` of each
    split row's final answer (none after a truncated trace), by the model's tokenizer."""
    bos = backend.bos_token_id

    def tokens(text: str) -> int:
        ids = backend.tokenize(text) if text else []
        return len(ids) - (1 if ids and bos is not None and ids[0] == bos else 0)

    for row in rows:
        text = row.get("reasoning")
        if text is not None and "reasoning_tokens" not in row:
            row["reasoning_tokens"] = tokens(text)
        if "answer_text" in row and "answer_tokens" not in row and not row.get("reasoning_truncated"):
            row["answer_tokens"] = tokens(row["answer_text"])


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """results.json's per-task reasoning figures; None when the run split no traces."""
    if not any("answer_text" in r for r in rows):
        return None
    counts = [r.get("reasoning_tokens") for r in rows if r.get("reasoning") is not None]
    return {
        "with_trace": len(counts),
        "reasoning_truncated": sum(1 for r in rows if r.get("reasoning_truncated")),
        "reasoning_tokens": reasoning_token_stats(counts),
        # The cost of the answer beside that of the trace; rows written before it was counted have none.
        "answer_tokens": reasoning_token_stats([r.get("answer_tokens") for r in rows]),
    }
