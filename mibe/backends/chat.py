"""Which chat template a run applies (`--chat-template auto|none|FILE`), its keyword arguments
(`--chat-template-kwargs JSON`) and rendering a prompt through it (docs/chat-and-reasoning.md).

`auto` follows the checkpoint's training record first: `mibe train` writes the template it trained
with into mibe_training.json (its source and digest) and saves the text in the checkpoint's
tokenizer; a checkpoint trained without one records `chat_template: null` and gets none, although
its tokenizer still carries the base model's template. Models not trained by mibe use their
tokenizer's template, else none.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from mibe import lineage
from mibe.types import MibeError, is_paper


def template_hash(text: str) -> str:
    """16 hex characters of SHA-256: the same hash task templates get, so the two read alike."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


SOURCES = ("training", "tokenizer", "file", "none")
# Set by render_chat itself, or naming the conversation: never from --chat-template-kwargs.
RESERVED_KWARGS = frozenset(
    {"conversation", "messages", "chat_template", "tokenize", "add_generation_prompt",
     "continue_final_message", "return_tensors", "return_dict", "return_assistant_tokens_mask", "tools",
     "documents", "padding", "truncation", "max_length", "tokenizer_kwargs"}
)  # fmt: skip


@dataclass(frozen=True)
class ChatChoice:
    template: str | None  # the Jinja text applied; None: prompts are sent as they are
    source: str  # who decided: "training" (mibe_training.json), "tokenizer", "file" or "none"
    sha256: str | None  # first 16 hex digits of the template text's SHA-256; None without one


def training_record(folder: str | None) -> dict[str, Any] | None:
    """A checkpoint folder's whole mibe_training.json for `resolve_chat_template` (None: it has none;
    {"unreadable": path}: auto must not guess)."""
    return lineage.training_record(folder)


def default_choice(protocol: str) -> str:
    """The setting without the flag: `auto` under --protocol mibe, `none` under the paper's."""
    return "none" if is_paper(protocol) else "auto"


def training_digest(template: str) -> str:
    # How `mibe train` digests the template in mibe_training.json: SHA-256 of its JSON encoding.
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def _from_training(record: Any, tokenizer_template: str | None) -> ChatChoice:
    if record is None:
        return ChatChoice(None, "training", None)
    recorded = record.get("sha256") if isinstance(record, dict) else None
    if not isinstance(recorded, str):
        raise MibeError(
            f"mibe_training.json: chat_template {record!r} is not a recorded template; "
            "pass --chat-template none or --chat-template FILE"
        )
    if not tokenizer_template or training_digest(tokenizer_template) != recorded:
        have = training_digest(tokenizer_template) if tokenizer_template else "no template"
        raise MibeError(
            f"mibe_training.json: trained with chat template {recorded} but the checkpoint's tokenizer "
            f"has {have}; restore the checkpoint's tokenizer files or pass --chat-template FILE|none"
        )
    return ChatChoice(tokenizer_template, "training", template_hash(tokenizer_template))


def _from_file(choice: str) -> ChatChoice:
    path = Path(choice).expanduser()
    if not path.is_file():
        raise MibeError(f"--chat-template {choice}: no such file; pass auto, none or a Jinja template file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MibeError(
            f"--chat-template {choice}: cannot read it ({exc}); pass a UTF-8 Jinja file"
        ) from None
    if not text.strip():
        raise MibeError(f"--chat-template {choice}: the file is empty; pass a Jinja chat template")
    return ChatChoice(text, "file", template_hash(text))


def resolve_chat_template(
    choice: str | None,
    protocol: str,
    provenance: dict[str, Any] | None,
    tokenizer_template: str | None,
) -> ChatChoice:
    """The template a run applies.

    `choice`: the flag's value ("auto" for the bare flag; None when absent: the protocol's default).
    `provenance`: the checkpoint's whole mibe_training.json (mibe.training.provenance.read), or None.
    `tokenizer_template`: the loaded tokenizer's `chat_template` (None for an endpoint without one).
    """
    choice = default_choice(protocol) if choice is None else choice.strip()
    if choice == "none":
        return ChatChoice(None, "none", None)
    if choice != "auto":
        return _from_file(choice)
    if provenance is not None and "unreadable" in provenance:
        raise MibeError(
            f"{provenance['unreadable']}: unreadable, so --chat-template auto cannot tell how the "
            "checkpoint was trained; fix the file or pass --chat-template none|FILE"
        )
    # Fine-tuning decides a checkpoint's template (none, if it trained without one); continual
    # pre-training never applies one, so its record says nothing and the tokenizer's stands.
    if provenance is not None and "chat_template" in provenance and provenance.get("kind") != "pretrain":
        return _from_training(provenance["chat_template"], tokenizer_template)
    if tokenizer_template:
        return ChatChoice(tokenizer_template, "tokenizer", template_hash(tokenizer_template))
    return ChatChoice(None, "none", None)


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """`--chat-template-kwargs JSON`: a JSON object of extra template variables."""
    if text is None or not text.strip():
        return {}
    example = """; pass a JSON object such as '{"enable_thinking": false}'"""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MibeError(
            f"--chat-template-kwargs: not valid JSON ({exc.msg} at column {exc.colno}){example}"
        ) from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting too deep
        first = str(exc).split(";")[0][:100]
        raise MibeError(f"--chat-template-kwargs: JSON that cannot be read ({first}){example}") from None
    if not isinstance(value, dict):
        raise MibeError(f"--chat-template-kwargs: a JSON {type(value).__name__}, not an object{example}")
    taken = sorted(RESERVED_KWARGS & value.keys())
    if taken:
        raise MibeError(
            f"--chat-template-kwargs: {', '.join(taken)} set by mibe itself; pass only template variables"
        )
    return value


def render_chat(
    template_text: str,
    prompt: str,
    system_prompt: str | None,
    kwargs: dict[str, Any],
    tokenizer: Any,
) -> str:
    """`prompt` as one user turn (after an optional system turn) through `template_text`, ending
    with the assistant's generation prompt; `kwargs` are extra template variables."""
    return render_messages(template_text, messages(prompt, system_prompt), kwargs, tokenizer)


def messages(prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The conversation mibe sends: an optional system turn, then the prompt as one user turn."""
    turns = [{"role": "system", "content": system_prompt}] if system_prompt else []
    turns.append({"role": "user", "content": prompt})
    return turns


def render_messages(
    template_text: str, messages: list[dict[str, str]], kwargs: dict[str, Any], tokenizer: Any
) -> str:
    """`messages` through `template_text`, ending with the assistant's generation prompt."""
    try:
        text = tokenizer.apply_chat_template(
            messages, chat_template=template_text, tokenize=False, add_generation_prompt=True, **kwargs
        )
    except TemplateError as exc:
        what = " ".join(str(exc).split())[:200]
        raise MibeError(f"--chat-template: the template failed ({what}); fix it or pass another") from None
    if not isinstance(text, str):
        raise MibeError(f"--chat-template: the template rendered {type(text).__name__}, not text")
    return text
