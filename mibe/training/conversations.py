"""Instruction rows -> chat messages -> token ids whose labels cover the responses only.

Accepted rows (LAYOUTS): Me-LLaMA's and ShareGPT's `{conversations: [{from: human, value},
{from: agent|gpt, value}]}`, OpenAI-style `{messages: [{role, content}]}`, Alpaca's `{instruction,
input, output}` and Dolly's `{instruction, context, response}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

IGNORE = -100  # the label transformers' loss skips
ROLES = {
    "human": "user",
    "user": "user",
    "agent": "assistant",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
}
Segments = list[tuple[str, bool]]  # (text, trained on)


LAYOUTS = ("conversations", "messages", "alpaca", "dolly")


def layout(row: Mapping[str, Any]) -> str | None:
    """Which instruction layout a row is in (a JSON loader gives every row every column; unused None)."""
    if row.get("conversations") is not None:
        return "conversations"
    if row.get("messages") is not None:
        return "messages"
    if row.get("instruction") is not None and row.get("output") is not None:
        return "alpaca"
    if row.get("instruction") is not None and row.get("response") is not None:
        return "dolly"
    return None


def _one_turn(instruction: Any, extra: Any, answer: Any) -> list[dict[str, str]]:
    instruction, extra = str(instruction).strip(), str(extra or "").strip()
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(answer)}]


def to_messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """One training row as chat messages; ValueError says what is wrong with it."""
    # One file may mix both kinds: a JSON loader then gives every row every column, unused ones None.
    turns = row.get("conversations") if row.get("conversations") is not None else row.get("messages")
    if turns is not None:
        if not isinstance(turns, list) or not turns:
            raise ValueError("conversations: expected a non-empty list of turns")
        messages = []
        for index, turn in enumerate(turns):
            if not isinstance(turn, Mapping):
                raise ValueError(f"turn {index}: expected a mapping with from/value (or role/content)")
            speaker = turn.get("from", turn.get("role"))
            text = turn.get("value", turn.get("content"))
            role = ROLES.get(str(speaker).strip().lower())
            if role is None:
                raise ValueError(
                    f"turn {index}: unknown speaker {speaker!r} (use {', '.join(sorted(ROLES))})"
                )
            if not isinstance(text, str):
                raise ValueError(f"turn {index}: the text (value/content) must be a string")
            messages.append({"role": role, "content": text})
    elif layout(row) == "alpaca":
        messages = _one_turn(row["instruction"], row.get("input"), row["output"])
    elif layout(row) == "dolly":
        messages = _one_turn(row["instruction"], row.get("context"), row["response"])
    else:
        have = ", ".join(sorted(k for k, v in row.items() if v is not None)) or "no fields"
        raise ValueError(
            "expected conversations, messages, instruction/input/output (Alpaca) or "
            f"instruction/context/response (Dolly) (has {have})"
        )
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("no agent/gpt turn to learn from")
    if messages[0]["role"] == "assistant":
        raise ValueError("the conversation opens with the agent; the first turn must be human (or system)")
    return messages


def chat_segments(
    messages: Sequence[dict[str, str]], render: Callable[[Sequence[dict[str, str]], bool], str]
) -> Segments:
    """Split the rendered conversation into prompt text and response text.

    `render(messages, add_generation_prompt)` is the chat template. Each response is what the
    template adds between the conversation-so-far with a generation prompt and the conversation
    including that response, so the trained tokens are exactly what the model must write.
    """
    segments: Segments = []
    done = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(messages[:index], True)
        upto = render(messages[: index + 1], False)
        if not before.startswith(done) or not upto.startswith(before):
            raise ValueError("the chat template does not render a conversation as a growing prefix")
        segments += [(before[len(done) :], False), (upto[len(before) :], True)]
        done = upto
    return [(text, trained) for text, trained in segments if text]


def plain_segments(prompt: str, answer: str) -> Segments:
    """A MIBE prompt as `mibe run` sends it, then the answer as a few-shot block writes it."""
    return [(prompt, False), (" " + answer, True)]


def tokenise(segments: Segments, tokenizer: Any, max_length: int) -> dict[str, list[int]] | None:
    """input_ids and labels (IGNORE on prompt tokens); None when truncation leaves no response token.

    Segments are tokenised one by one, as the prompt is at inference, so a response never borrows
    a token from the prompt's last characters. An EOS follows every response that lacks one, so
    the model learns to stop.
    """
    ids: list[int] = []
    labels: list[int] = []
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    opens_bare = bool(bos and segments and not segments[0][0].startswith(bos))
    # Add BOS only for a tokenizer that adds it itself: the model is used to a leading BOS.
    if opens_bare and tokenizer("a").input_ids[:1] == [tokenizer.bos_token_id]:
        ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE)
    for text, trained in segments:
        piece = tokenizer(text, add_special_tokens=False).input_ids
        if trained and eos and tokenizer.eos_token_id is not None and eos not in text:
            piece = [*piece, tokenizer.eos_token_id]
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}
