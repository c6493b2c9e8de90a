"""Choice token ids by lm-evaluation-harness's convention, shared by every backend.

lm-eval tokenises context + choice whole and keeps the ids after the context's own. Doing that for
every choice tokenised each ~2,000-character prompt again per choice: a third of a log-likelihood
run. Tokenisers decide each token from nearby text, so the prompt's tail gives the same ids,
provided the tail's own tokens have fallen back in step with the context's before its end. That is
checked for every request; where it fails, a longer tail, then the whole prompt, is tokenised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mibe.types import Request

WIDTHS = (120, 480)  # characters of the prompt's tail, tried in turn


def choice_ids(
    tokenize: Callable[[str], list[int]],
    tokenizer: Any,
    requests: Sequence[Request],
    contexts: Sequence[list[int]],
) -> list[list[list[int]]]:
    """Each request's choices' ids; `contexts` are the requests' prompt ids (`tokenize(prompt)`)."""
    found = from_tails(tokenizer, requests, contexts, WIDTHS[0])
    out = []
    for request, ctx, ids in zip(requests, contexts, found, strict=True):
        for width in WIDTHS[1:]:
            if ids is None:
                (ids,) = from_tails(tokenizer, [request], [ctx], width)
        if ids is None:
            ids = [whole(tokenize, tokenizer, request.prompt, ctx, c) for c in request.continuations]
        out.append(ids)
    return out


def from_tails(
    tokenizer: Any, requests: Sequence[Request], contexts: Sequence[list[int]], width: int
) -> list[list[list[int]] | None]:
    """The choices' ids from the prompts' last `width` characters, in one batched call; None for
    a request whose tail does not fall in step with its context."""
    texts = []
    for r in requests:
        tail = r.prompt[-width:]
        texts += [tail] + [tail + c for c in r.continuations]
    ids = iter(tokenizer(texts, add_special_tokens=False).input_ids if texts else [])
    out: list[list[list[int]] | None] = []
    for r, ctx in zip(requests, contexts, strict=True):
        own, wholes = next(ids), [next(ids) for _ in r.continuations]
        ok = (
            width < len(r.prompt)
            and len(own) >= 8
            and ends_in_step(ctx, own)
            and all(w[: len(own)] == own and len(w) > len(own) for w in wholes)
        )
        out.append([w[len(own) :] for w in wholes] if ok else None)
    return out


def whole(
    tokenize: Callable[[str], list[int]], tokenizer: Any, prompt: str, ctx: list[int], choice: str
) -> list[int]:
    """lm-eval's convention itself: prompt + choice tokenised whole, the ids after the prompt's."""
    ids = tokenize(prompt + choice)
    if ids[: len(ctx)] == ctx and len(ids) > len(ctx):
        return ids[len(ctx) :]
    return tokenizer(choice, add_special_tokens=False).input_ids


def ends_in_step(ctx: Sequence[int], tail: Sequence[int]) -> bool:
    """Whether the context's ids end with the tail's ids, bar the few the cut made differently."""
    for skip in range(4):
        n = len(tail) - skip
        if 0 < n <= len(ctx) and list(ctx[len(ctx) - n :]) == list(tail[skip:]):
            return True
    return False
