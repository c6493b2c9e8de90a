"""One scripted backend for tests that need a real run folder but not a model's randomness: it
answers generated tasks with text the test chooses, through the real pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mibe.types import Backend, Request


class Scripted(Backend):
    """Answers each prompt from `outputs` (prompt -> text) or with `reply(request)`; with
    `fail_after` it raises KeyboardInterrupt on that many+1-th batch, as a kill between batches."""

    def __init__(
        self,
        outputs: Mapping[str, str] | None = None,
        reply: Callable[[Request], str] | None = None,
        fail_after: int | None = None,
    ) -> None:
        self.outputs, self.reply, self.fail_after = outputs, reply, fail_after
        self.calls = 0

    def generate(self, requests: Sequence[Request]) -> list[str]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # what was flushed before stays on disk
        if self.outputs is not None:
            return [self.outputs[r.prompt] for r in requests]
        assert self.reply is not None, "Scripted needs outputs or reply"
        return [self.reply(r) for r in requests]

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float]]:
        raise AssertionError("a scripted backend serves generated tasks only")

    def describe(self) -> dict:
        return {"name": "scripted", "backend": "scripted"}

    def tokenize(self, text: str) -> list[int]:
        return list(range(len(text.split())))

    def detokenize(self, ids: Sequence[int]) -> str:
        return ""

    def chat(
        self,
        prompt: str,
        system_prompt: str | None,
        template: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> str:
        return prompt
