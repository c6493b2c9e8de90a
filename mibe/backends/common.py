"""What every backend shares: mibe's stop rule, LoRA adapter folders, the context-length rule and
the BOS rule (the tokenizer and chat layer itself: mibe.backends.base). One home, so HF, vLLM and
endpoints never drift apart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.types import MibeError


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    # mibe's stop rule: a stop string counts only after non-blank content.
    lead = len(text) - len(text.lstrip())
    cuts = [c for c in (text.find(s, lead) for s in stops) if c >= 0]
    return text[: min(cuts)] if cuts else text


def server_stops(stops: Sequence[str]) -> list[str]:
    """Stops an engine or server may apply itself: it cuts at the first match anywhere, so a stop that
    can match inside leading blank text ("\\n\\n") is applied only afterwards, by cut_at_stop."""
    return [s for s in stops if s and not s[0].isspace()]


def check_model_path(model: str) -> None:
    """A local --model that cannot be a model folder is one line with the fix, before any loader sees it
    (transformers' own messages for these name the wrong thing: a tokenizer, or a repo id's form)."""
    path = Path(model).expanduser()
    where = "pass a model folder (holding config.json), a hub id, or smollm2-135m"
    if path.is_file():
        raise MibeError(
            f"--model {model}: not a causal LM mibe can load: {path} is a file; pass the folder that holds "
            f"it ({path.parent}), a hub id, or smollm2-135m"
        )
    if path.is_dir() and not is_adapter(path) and not (path / "config.json").is_file():
        raise MibeError(f"--model {model}: not a causal LM mibe can load: {path} has no config.json; {where}")


def is_adapter(path: Path) -> bool:
    """A LoRA adapter folder (PEFT's adapter_config.json and no model config of its own)."""
    return path.is_dir() and (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def adapter_config(path: Path) -> dict[str, Any]:
    return json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))


def adapter_base(path: Path) -> str:
    base = adapter_config(path).get("base_model_name_or_path")
    if not base:
        raise MibeError(f"{path}/adapter_config.json: no base_model_name_or_path; pass --model BASE")
    return base


def context_length(config: Any, tokenizer: Any, *more: int | None) -> int | None:
    """Tokens the model attends to: the smallest of its position limit, the tokenizer's (when set to
    something real, not transformers' 1e30 placeholder) and any engine limit; None when unknown."""
    limits = [getattr(config, "max_position_embeddings", None), *more]
    if tokenizer.model_max_length and tokenizer.model_max_length < 10**7:
        limits.append(tokenizer.model_max_length)
    known = [n for n in limits if isinstance(n, int) and n > 0]
    return min(known) if known else None


def adds_special_tokens(tokenizer: Any, prompt: str) -> bool:
    """Whether tokenising `prompt` should add the tokenizer's BOS: not when the prompt already
    starts with it (chat templates such as LLaMA-2's "<s>[INST]" write it). Every backend
    tokenises by this rule, so fitting counts and scored ids agree."""
    bos = tokenizer.bos_token
    return not (bos and prompt.startswith(bos))
