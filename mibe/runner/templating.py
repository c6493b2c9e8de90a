"""The run's chat template and reasoning settings, resolved once from the flags, the checkpoint's
training record and the backend's tokenizer (docs/chat-and-reasoning.md), and what they put into
every task's protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibe.backends import chat
from mibe.backends.chat import ChatChoice
from mibe.types import Backend, MibeError, RunConfig, is_paper

SERVER = "server"  # an endpoint without a local tokenizer: the server renders its own template


@dataclass(frozen=True)
class ChatSetup:
    choice: ChatChoice
    system_prompt: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def on(self) -> bool:
        # A training record that says "trained without one" decides "none" too (template None).
        return self.choice.template is not None or self.choice.source == SERVER

    def wrap(self, backend: Backend) -> Callable[[str], str]:
        """The prompt as the model receives it: through the template, or unchanged without one."""
        if not self.on:
            return lambda text: text
        template, kwargs = self.choice.template, dict(self.kwargs)
        return lambda text: backend.chat(text, self.system_prompt, template, kwargs)

    def for_scoring(self, scoring: str) -> ChatSetup:
        """The setup a task scored by `scoring` uses: an endpoint's own template (unseen here) cannot
        frame log-likelihood prompts, which mibe tokenises itself, so those go bare."""
        if scoring == "loglikelihood" and self.choice.source == SERVER:
            return ChatSetup(ChatChoice(None, "none", None))
        return self

    def protocol(self) -> dict[str, Any]:
        """The protocol's chat fields: runs differing in any of them never share a column."""
        key = SERVER if self.choice.source == SERVER else self.choice.sha256
        return {
            "chat_template": key if self.on else None,
            "chat_template_source": self.choice.source,
            "chat_template_kwargs": dict(self.kwargs) if self.on and self.kwargs else None,
            "system_prompt": self.system_prompt if self.on else None,
        }


def setting(value: Any) -> str | None:
    """--chat-template's value; the Python API's old booleans read as auto / none."""
    if value is True:
        return "auto"
    if value is False:
        return "none"
    return value


def record(config: RunConfig) -> dict[str, Any] | None:
    """The training record `auto` follows: the adapter's (with --adapters, the first task's: a suite
    is trained from one recipe), else the model folder's."""
    suite = sorted(p for p in Path(config.adapters).expanduser().glob("*/")) if config.adapters else []
    for folder in (config.adapter, *map(str, suite[:1]), config.model):
        found = chat.training_record(folder) if folder and Path(folder).expanduser().is_dir() else None
        if found is not None:
            return found
    return None


def resolve(config: RunConfig, backend: Backend) -> ChatSetup:
    """The run's chat template: `--chat-template` (or the protocol's default) applied to this model."""
    value = setting(config.chat_template)
    own = backend.chat_template
    if value is not None and value.strip() == SERVER:
        # A chat-only endpoint (a hosted model): each prompt, the paper's included, goes as one user
        # message to /chat/completions and the server applies its own template.
        if config.backend != "openai":
            raise MibeError(
                "--chat-template server: only with --backend openai (the server renders its own "
                "template); a local model takes auto, none or a template file"
            )
        return ChatSetup(
            ChatChoice(None, SERVER, None), config.system_prompt, dict(config.chat_template_kwargs)
        )
    choice = chat.resolve_chat_template(value, config.protocol, record(config), own)
    wanted = chat.default_choice(config.protocol) if value is None else value.strip()
    if wanted == "auto" and not backend.local_tokenizer:
        # An endpoint with no local tokenizer: mibe cannot see the template; the server applies its own.
        choice = ChatChoice(None, SERVER, None)
    if config.system_prompt and choice.template is None and choice.source != SERVER:
        raise MibeError(
            "--system-prompt: no chat template is applied to this model, so there is no system turn; "
            "pass --chat-template auto|FILE or leave out --system-prompt"
        )
    return ChatSetup(choice, config.system_prompt, dict(config.chat_template_kwargs))


def reasoning(config: RunConfig, scoring: str) -> dict[str, Any] | None:
    """The protocol's reasoning field: traces are split off generated outputs under mibe's protocol
    (the paper parsed whole outputs); None where nothing is split."""
    if is_paper(config.protocol) or scoring != "generate":
        return None
    return {"delimiters": [list(p) for p in config.reasoning_delimiters], "budget": config.reasoning_budget}


def delimiters(protocol: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    found = protocol.get("reasoning") or {}
    return tuple((o, c) for o, c in found.get("delimiters") or ())
