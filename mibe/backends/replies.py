"""Reading an OpenAI-compatible server's replies: the choices, their text and separate reasoning
trace, the new tokens the server says it wrote, and each continuation's log-prob from an echoed
prompt. Every malformed reply is one line naming the endpoint and what is wrong."""

from __future__ import annotations

import math
from typing import Any

from mibe.types import MibeError, Request


def choices(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """A completion reply's choices in index order; ValueError says what is wrong with the reply."""
    found = reply.get("choices")
    if not isinstance(found, list):
        error = reply.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        raise ValueError(
            f"the server answered an error: {message}" if message else "no 'choices' in the reply"
        )
    if not found:
        raise ValueError("the reply has no choices ('choices': [])")
    if not all(isinstance(c, dict) for c in found):
        raise ValueError("a choice in the reply is not an object")
    return sorted(found, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)


def served_count(reply: dict[str, Any], choice: dict[str, Any], max_new: int, counted: int) -> int | None:
    """The new tokens of one reply: the server's usage, else what its finish_reason implies."""
    usage = reply.get("usage")
    used = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if isinstance(used, int) and not isinstance(used, bool) and used >= 0:
        return used
    reason = choice.get("finish_reason")
    if reason == "length":
        return max_new
    return min(counted, max_new - 1) if reason == "stop" else None  # stopped before the cap


def choice_text(choice: dict[str, Any], chat: bool) -> str:
    """The generated text of one choice (null content, e.g. a refusal, is empty text)."""
    holder, key = (choice.get("message"), "content") if chat else (choice, "text")
    if not isinstance(holder, dict) or key not in holder:
        raise ValueError(f"the first choice has no {'message.content' if chat else 'text'}")
    text = holder[key]
    if not isinstance(text, str | None):
        raise ValueError(f"the first choice's {key} is {type(text).__name__}, not text")
    return valid_text(text or "")


def valid_text(text: str) -> str:
    """JSON may carry a lone UTF-16 surrogate ("\\ud800") no UTF-8 file can hold: a split pair is
    joined, a lone one becomes U+FFFD, so the samples file can always be written."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


REASONING_FIELDS = ("reasoning_content", "reasoning")  # vLLM/SGLang reasoning parsers, old and new name


def choice_reasoning(choice: dict[str, Any], chat: bool) -> str | None:
    """The trace a server's reasoning parser returned apart from the content, or None."""
    holder = choice.get("message") if chat else choice
    for key in REASONING_FIELDS:
        found = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(found, str) and found.strip():
            return valid_text(found)
    return None


def picked(
    base_url: str, request: Request, sent: list[Any], lengths: list[int], found: list[dict[str, Any]]
) -> list[float]:
    """Each continuation's summed log-prob from the echoed prompt log-probs."""
    if len(found) != len(sent) or any(not isinstance(c.get("logprobs"), dict) for c in found):
        raise MibeError(
            f"{base_url}: the server returned no prompt log-probs (echo + logprobs); "
            "use --scoring generate with this endpoint"
        )
    if len(found) > 1 and sorted(c.get("index") for c in found if isinstance(c.get("index"), int)) != list(
        range(len(found))
    ):  # the order of choices is the order of the prompts only by their index
        raise MibeError(
            f"{base_url}/completions: the reply's choices lack the 'index' 0..{len(found) - 1} "
            f"that ties each to its prompt (document {request.doc_id}); not OpenAI-compatible here"
        )
    return [summed(base_url, request, prompt, length, choice) for prompt, length, choice in zip(
        sent, lengths, found, strict=True)]  # fmt: skip


def summed(base_url: str, request: Request, prompt: Any, length: int, choice: dict[str, Any]) -> float:
    """One continuation's log-prob: the echoed values of its tokens, all of them, each <= 0."""
    logprobs = choice["logprobs"]
    values = logprobs.get("token_logprobs") or []  # the prompt's tokens, then the one generated
    if isinstance(prompt, str):
        start, offsets = len(request.prompt), logprobs.get("text_offset") or []
        # Every echoed token has an offset, and the generated token starts at the prompt's end:
        # a shorter list would sum the continuation over fewer tokens.
        whole = len(offsets) == len(values) and any(at >= len(prompt) for at in offsets)
        picked = [v for v, at in zip(values, offsets, strict=False) if start <= at < len(prompt)]
    else:
        whole = len(values) >= len(prompt)
        picked = values[len(prompt) - length : len(prompt)]
    where = f"{base_url}/completions: document {request.doc_id}"
    if not whole or not picked or any(isinstance(v, bool) or not isinstance(v, int | float) for v in picked):
        raise MibeError(f"{where}: incomplete prompt log-probs (fewer echoed tokens than the prompt has)")
    if any(math.isnan(v) or v > 1e-6 for v in picked):  # -inf: a token the model rules out
        bad = next(v for v in picked if math.isnan(v) or v > 1e-6)
        raise MibeError(
            f"{where}: a log-prob of {bad} (log-probs are numbers <= 0); the server is wrong here"
        )
    return float(sum(picked))
