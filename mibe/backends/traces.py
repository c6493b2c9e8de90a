"""Reasoning ("thinking") traces: the one home of their rules (docs/chat-and-reasoning.md).

- A trace counts only at the very start of the output (after blank text), opened by one of the
  `delimiters` pairs, or already open when the output begins: the chat template wrote the opening
  tag at the end of the prompt (`opened=True`, see `opens_trace`), or, when the caller cannot tell,
  the output holds a closing tag before any opening one.
- Nesting is balanced: an opening tag inside the trace needs its own closing tag. The trace ends at
  the LAST closing tag at which every opened tag is closed, so a repeated `</think>` or a second
  trace after a first answer folds into the reasoning and the answer is what follows the last one.
- A trace still open when the output ends is `truncated`: its answer is "" and is never parsed.
- A server that returns the trace in a separate field (`reasoning_content` / `reasoning`) gives the
  reasoning from that field and the answer from the content (`with_reasoning` puts it back inline).
- Stop strings apply to the answer only, never inside a trace (thinking is full of blank lines), by
  mibe's stop rule (`cut_at_stop`); the backends cut every output by `cut_request`.

What is left elsewhere is another job: mibe.runner.thinking counts each run's trace tokens per task
(summarised by `reasoning_token_stats` here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

import numpy as np

from mibe.backends.common import cut_at_stop
from mibe.types import MibeError, Request

THINK: tuple[tuple[str, str], ...] = (("<think>", "</think>"),)


@dataclass(frozen=True)
class Trace:
    start: int  # where the reasoning text begins
    end: int | None  # where the last closing tag begins; None: still open
    answer: int | None  # where the final answer begins; None: still open


def _check(delimiters: Sequence[tuple[str, str]]) -> None:
    if not delimiters or any(
        not (isinstance(o, str) and o and isinstance(c, str) and c) for o, c in delimiters
    ):
        raise ValueError(f"delimiters {delimiters!r}: need (open, close) pairs of non-empty strings")


def _close(text: str, begin: int, pair: tuple[str, str]) -> tuple[int, int] | None:
    """(closing tag start, answer start) of a trace open at `begin`, or None while it is open."""
    opening, closing = pair
    depth, at, last = 1, begin, None
    while True:
        o, c = text.find(opening, at), text.find(closing, at)
        if c < 0:
            return last
        if 0 <= o < c:
            depth, at = depth + 1, o + len(opening)
            continue
        depth, at = max(depth - 1, 0), c + len(closing)
        if depth == 0:
            last = (c, at)


def find_trace(text: str, delimiters: Sequence[tuple[str, str]], opened: bool) -> Trace | None:
    _check(delimiters)
    lead = len(text) - len(text.lstrip())
    for pair in delimiters:
        if text.startswith(pair[0], lead):
            begin = lead + len(pair[0])
            found = _close(text, begin, pair)
            return Trace(begin, *(found or (None, None)))
    # Started inside a trace the template opened: the first pair whose closing tag shows up.
    for pair in delimiters:
        if pair[1] in text:
            found = _close(text, 0, pair)
            if found is not None:
                return Trace(0, *found)
    return Trace(0, None, None) if opened else None


def opens_trace(prompt: str, delimiters: Sequence[tuple[str, str]] = THINK) -> bool:
    """Whether the rendered prompt ends inside an open trace (templates that write `<think>\\n`
    after the assistant header), so the output starts in the middle of the reasoning."""
    _check(delimiters)
    body = prompt.rstrip()
    return any(body.endswith(opening) for opening, _ in delimiters)


def answer_offset(
    text: str, delimiters: Sequence[tuple[str, str]] = THINK, *, opened: bool = False
) -> int | None:
    """Where the final answer begins in `text` (0 without a trace), None while a trace is open:
    what a streaming stop check needs to look only past the reasoning."""
    trace = find_trace(text, delimiters, opened)
    if trace is not None:
        return trace.answer
    body = text.lstrip()
    # A tag still being written ("<thi") may yet open a trace: nothing is answer so far.
    return None if body and any(o.startswith(body) for o, _ in delimiters) else 0


def apply_stop_after_trace(
    text: str, stops: Sequence[str], delimiters: Sequence[tuple[str, str]] = THINK, *, opened: bool = False
) -> str:
    """`text` cut at the first stop string of its final answer; a trace is never cut (thinking is
    full of blank lines), and an unfinished one is returned whole."""
    start = answer_offset(text, delimiters, opened=opened)
    if start is None:
        return text
    return text[:start] + cut_at_stop(text[start:], stops)


def cut_request(text: str, request: Request) -> str:
    """A request's output cut by mibe's stop rule: after the reasoning trace when the request names
    delimiters (a run that splits reasoning), else anywhere after the first non-blank text.

    Every backend ends an answer the same way: a generation that stops inside a multi-byte character
    (the token cap fell between its bytes) loses that incomplete character. Decoding token ids shows
    it as U+FFFD while a server's streaming detokenizer holds it back; without this rule an offline
    and a served run of one model disagreed on exact match (docs/backends.md)."""
    text = text.rstrip("\ufffd")
    if not request.reasoning:
        return cut_at_stop(text, request.stop)
    opened = opens_trace(request.prompt, request.reasoning)
    return apply_stop_after_trace(text, request.stop, request.reasoning, opened=opened)


def stop_reached(text: str, stops: Sequence[str], request: Request) -> bool:
    """Whether streaming output already holds a stop string where `cut_request` would cut."""
    if request.reasoning:
        start = answer_offset(text, request.reasoning, opened=opens_trace(request.prompt, request.reasoning))
        if start is None:  # still thinking (or a tag still being written)
            return False
        text = text[start:]
    return any(s in text.lstrip() for s in stops)


def may_reason(tokenizer: Any, request: Request) -> bool:
    """Whether a trace may open in this output: the prompt opens one, or the tokenizer knows an opening
    tag as a token of its own (reasoning models add `<think>` to their vocabulary). Otherwise an engine
    may apply stop strings itself, saving the tokens past the answer; without a vocabulary to look in
    (an endpoint with no local tokenizer), assume it may."""
    if not request.reasoning:
        return False
    if opens_trace(request.prompt, request.reasoning):
        return True
    vocab = getattr(tokenizer, "get_added_vocab", None)
    if vocab is None:
        return True
    added = vocab()
    return any(open_tag in added for open_tag, _ in request.reasoning)


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
    trace = find_trace(text, delimiters, opened)
    if trace is None:
        return Reasoned(None, text, False)
    if trace.end is None or trace.answer is None:
        return Reasoned(text[trace.start :].strip(), "", True)
    return Reasoned(text[trace.start : trace.end].strip(), text[trace.answer :].lstrip(), False)


def with_reasoning(text: str, reasoning: str | None, finished: bool, pair: tuple[str, str]) -> str:
    """A server's content with its separate trace put back in front, wrapped in `pair`, so the output
    reads as a model that wrote its trace inline does (raw_output stays whole and the run splits it
    the same way). A trace with no content after it at the token limit is left open: truncated."""
    if reasoning is None:
        return text
    if not text and not finished:
        return f"{pair[0]}{reasoning}"
    return f"{pair[0]}{reasoning}{pair[1]}{text}"


def answer_of(row: dict) -> str | None:
    """The text a parser reads from a samples row: its final answer, None for a truncated trace
    (never parsed), the whole output for rows written without splitting (paper protocol, older runs)."""
    if row.get("reasoning_truncated"):
        return None
    return row["answer_text"] if "answer_text" in row else row["raw_output"]


def parse_delimiters(text: str | None) -> tuple[tuple[str, str], ...]:
    """`--reasoning-delimiters OPEN,CLOSE[;OPEN,CLOSE...]`."""
    if text is None:
        return THINK
    pairs: Sequence[list[str]] = [p.split(",") for p in text.split(";") if p.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise MibeError(
            f"--reasoning-delimiters {text}: expected OPEN,CLOSE pairs separated by ';', e.g. "
            "'<think>,</think>'"
        )
    return tuple((p[0].strip(), p[1].strip()) for p in pairs)


def reasoning_token_stats(counts: Sequence[int | None]) -> dict[str, float | int | None]:
    """Mean, 95th percentile (numpy's linear interpolation) and max of token counts, over the outputs
    that have one (None: no trace, or no answer after a truncated one; left out)."""
    kept = [int(c) for c in counts if c is not None]
    if any(c < 0 for c in kept):
        raise ValueError(f"reasoning token counts must be >= 0, got {min(kept)}")
    if not kept:
        return {"mean": None, "p95": None, "max": None}
    return {"mean": fmean(kept), "p95": float(np.percentile(kept, 95)), "max": max(kept)}
