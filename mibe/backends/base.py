"""The tokenizer and chat layer the HF, vLLM and endpoint backends share: tokenising by mibe's BOS
rule, decoding, and a prompt wrapped in a chat template. One home, so the three never drift apart;
each backend adds only how it reaches its model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mibe.backends import chat as chatting
from mibe.backends import common
from mibe.types import Backend, MibeError


class TokenizedBackend(Backend):
    """A backend holding its model's tokenizer (`tokenizer`) and name (`model_name`)."""

    model_name: str = ""

    def prompt_ids(self, text: str) -> list[int]:
        """`text`'s ids by mibe's BOS rule (common.adds_special_tokens): fitting counts and scored ids
        agree on every backend."""
        special = common.adds_special_tokens(self.tokenizer, text)
        return list(self.tokenizer(text, add_special_tokens=special).input_ids)

    def tokenize(self, text: str) -> list[int]:
        return self.prompt_ids(text)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def chat(
        self,
        prompt: str,
        system_prompt: str | None,
        template: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> str:
        """The prompt as one user turn (after an optional system turn), rendered by `render`."""
        return self.render(chatting.messages(prompt, system_prompt), template, dict(kwargs or {}))

    def render(self, messages: list[dict[str, str]], template: str | None, kwargs: dict[str, Any]) -> str:
        """`messages` in `template` (the run's resolved chat template, mibe.backends.chat), or in the
        tokenizer's own when None."""
        if template is None and not self.chat_template:
            raise MibeError(f"--chat-template: {self.model_name} has no chat template in its tokenizer")
        return chatting.render_messages(template or self.chat_template, messages, kwargs, self.tokenizer)
