"""Reasoning ("thinking") models: split an output into its leading trace and the final answer.

The rules (docs/chat-and-reasoning.md):

- A trace counts only at the very start of the output (after blank text), opened by one of the
  `delimiters` pairs, or already open when the output begins: the chat template wrote the opening
  tag at the end of the prompt (`opened=True`, see `opens_trace`), or, when the caller cannot tell,
  the output holds a closing tag before any opening one.
- Nesting is balanced: an opening tag inside the trace needs its own closing tag. The trace ends at
  the LAST closing tag at which every opened tag is closed, so a repeated `</think>` or a second
  trace after a first answer folds into the reasoning and the answer is what follows the last one.
- A trace still open when the output ends is `truncated`: its answer is "" and is never parsed.
- A server that returns the trace in a separate field (`reasoning_content` / `reasoning`) gives the
  reasoning from that field and the answer from the content.
- Stop strings apply to the answer only, never inside a trace, by mibe's stop rule (`cut_at_stop`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

import numpy as np

from mibe.backends.traces import (  # noqa: F401 (re-exported)
    THINK,
    _trace,
    answer_offset,
    apply_stop_after_trace,
    opens_trace,
)
from mibe.types import MibeError


@dataclass(frozen=True)
class Reasoned:
    reasoning: str | None  # None: the output had no trace; "": an empty one
    answer_text: str  # what the parser reads; "" when truncated
    truncated: bool  # the trace never closed (ran out of tokens while thinking)


def split_reasoning(
    text: str,
    delimiters: Sequence[tuple[str, str]] = THINK,
    reasoning_field: str | None = None,
    *,
    opened: bool = False,
) -> Reasoned:
    """The output's reasoning and final answer (rules in the module docstring).

    `reasoning_field`: the server's separate trace, when it sent a non-empty one; `text` is then its
    content (which may still start with a trace of its own, folded into the reasoning).
    `opened`: the prompt ended inside a trace (`opens_trace(prompt)`).
    """
    if reasoning_field and reasoning_field.strip():
        inner = split_reasoning(text, delimiters)
        extra = [inner.reasoning] if inner.reasoning else []
        return Reasoned("\n".join([reasoning_field.strip(), *extra]), inner.answer_text, inner.truncated)
    trace = _trace(text, delimiters, opened)
    if trace is None:
        return Reasoned(None, text, False)
    if trace.end is None or trace.answer is None:
        return Reasoned(text[trace.start :].strip(), "", True)
    return Reasoned(text[trace.start : trace.end].strip(), text[trace.answer :].lstrip(), False)


def reasoning_token_stats(counts: Sequence[int | None]) -> dict[str, float | int | None]:
    """Mean, 95th percentile (numpy's linear interpolation) and max of token counts, over the outputs
    that have one (None: no trace, or no answer after a truncated one; left out)."""
    kept = [int(c) for c in counts if c is not None]
    if any(c < 0 for c in kept):
        raise ValueError(f"reasoning token counts must be >= 0, got {min(kept)}")
    if not kept:
        return {"mean": None, "p95": None, "max": None}
    return {"mean": fmean(kept), "p95": float(np.percentile(kept, 95)), "max": max(kept)}


def answer_of(row: dict) -> str | None:
    """The text a parser reads from a samples row: its final answer, None for a truncated trace
    (never parsed), the whole output for rows written without splitting (paper protocol, older runs)."""
    if row.get("reasoning_truncated"):
        return None
    return row["answer_text"] if "answer_text" in row else row["raw_output"]


def parse_delimiters(text: str | None) -> tuple[tuple[str, str], ...]:
    """`--reasoning-delimiters OPEN,CLOSE[;OPEN,CLOSE...]`."""
    if text is None:
        return (("<think>", "</think>"),)
    pairs: Sequence[list[str]] = [p.split(",") for p in text.split(";") if p.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise MibeError(
            f"--reasoning-delimiters {text}: expected OPEN,CLOSE pairs separated by ';', e.g. "
            "'<think>,</think>'"
        )
    return tuple((p[0].strip(), p[1].strip()) for p in pairs)
