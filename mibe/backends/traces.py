"""Where a reasoning trace ends in generated text, for the backends' stop rule: stop strings apply to
the final answer only, never inside a trace (thinking is full of blank lines). The splitting itself,
and the rules in full, are mibe.scoring.reasoning's (which re-exports these)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mibe.backends.common import cut_at_stop
from mibe.types import Request

THINK: tuple[tuple[str, str], ...] = (("<think>", "</think>"),)


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
