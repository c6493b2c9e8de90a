"""Reasoning ("thinking") models: split an output into its leading trace and the final answer.

The rules (docs/chat-and-reasoning-draft.md):

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

from mibe.backends.common import cut_at_stop

THINK: tuple[tuple[str, str], ...] = (("<think>", "</think>"),)


@dataclass(frozen=True)
class Reasoned:
    reasoning: str | None  # None: the output had no trace; "": an empty one
    answer_text: str  # what the parser reads; "" when truncated
    truncated: bool  # the trace never closed (ran out of tokens while thinking)


@dataclass(frozen=True)
class _Trace:
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


def _trace(text: str, delimiters: Sequence[tuple[str, str]], opened: bool) -> _Trace | None:
    _check(delimiters)
    lead = len(text) - len(text.lstrip())
    for pair in delimiters:
        if text.startswith(pair[0], lead):
            begin = lead + len(pair[0])
            found = _close(text, begin, pair)
            return _Trace(begin, *(found or (None, None)))
    # Started inside a trace the template opened: the first pair whose closing tag shows up.
    for pair in delimiters:
        if pair[1] in text:
            found = _close(text, 0, pair)
            if found is not None:
                return _Trace(0, *found)
    return _Trace(0, None, None) if opened else None


def opens_trace(prompt: str, delimiters: Sequence[tuple[str, str]] = THINK) -> bool:
    """Whether the rendered prompt ends inside an open trace (templates that write `<think>\\n`
    after the assistant header), so the output starts in the middle of the reasoning."""
    _check(delimiters)
    body = prompt.rstrip()
    return any(body.endswith(opening) for opening, _ in delimiters)


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


def answer_offset(
    text: str, delimiters: Sequence[tuple[str, str]] = THINK, *, opened: bool = False
) -> int | None:
    """Where the final answer begins in `text` (0 without a trace), None while a trace is open:
    what a streaming stop check needs to look only past the reasoning."""
    trace = _trace(text, delimiters, opened)
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


def reasoning_token_stats(counts: Sequence[int | None]) -> dict[str, float | int | None]:
    """Mean and max thinking tokens over the outputs that had a trace (None: no trace, left out)."""
    kept = [int(c) for c in counts if c is not None]
    if any(c < 0 for c in kept):
        raise ValueError(f"reasoning token counts must be >= 0, got {min(kept)}")
    if not kept:
        return {"mean": None, "max": None}
    return {"mean": fmean(kept), "max": max(kept)}
