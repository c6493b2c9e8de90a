"""One way to name a second model on the command line (a judge, an answer extractor):

    hf:PATH                          a local folder or hub id, run by transformers (a bare PATH too)
    vllm:PATH                        the same, run by vLLM
    openai:URL#NAME                  the model NAME served by an OpenAI-compatible server at URL
    openai:URL#NAME?key_env=VAR      the same, sending the key held in the environment variable VAR

An endpoint's API key comes only from its own spec: the evaluated model's `--api-key-env` (or
OPENAI_API_KEY) is for the evaluated model's server and is never sent to a judge or an extractor.
A spec becomes an `Endpoint` (mibe.backends.endpoint), built by the one factory
(mibe.backends.factory) after the endpoint policy (mibe.backends.policy) admits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mibe.types import MibeError

BACKENDS = ("hf", "vllm", "openai")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ModelSpec:
    text: str  # as the user wrote it
    backend: str  # hf, vllm or openai
    model: str  # a folder or hub id; for openai, the served model's name
    base_url: str | None = None  # openai only
    key_env: str | None = None  # openai only: the variable holding this endpoint's key


def parse(text: str | None, flag: str = "--judge") -> ModelSpec:
    """`hf:PATH`, `vllm:PATH`, `openai:URL#NAME[?key_env=VAR]` or a bare PATH (hf); bad input is one line."""
    raw = (text or "").strip()
    if not raw:
        raise MibeError(f"{flag}: empty; give hf:PATH, vllm:PATH or openai:URL#NAME")
    prefix, sep, rest = raw.partition(":")
    if not sep or prefix not in BACKENDS:
        if raw.startswith(("http://", "https://")):
            raise MibeError(f"{flag} {raw}: an endpoint is written openai:URL#NAME, e.g. openai:{raw}#MODEL")
        if sep and "/" not in prefix and not Path(raw).expanduser().exists() and len(prefix) > 1:
            raise MibeError(f"{flag} {raw}: unknown backend '{prefix}'; use hf:, vllm: or openai:")
        return ModelSpec(raw, "hf", raw)
    if prefix != "openai":
        if not rest.strip():
            raise MibeError(f"{flag} {raw}: no model after '{prefix}:'; give {prefix}:PATH")
        return ModelSpec(raw, prefix, rest.strip())
    url, hash_sign, named = rest.partition("#")
    if not url.startswith(("http://", "https://")):
        raise MibeError(
            f"{flag} {raw}: the URL must start with http:// or https://, e.g. openai:http://127.0.0.1:8000/v1#NAME"
        )
    name, _, query = named.partition("?")
    if not hash_sign or not name.strip():
        raise MibeError(f"{flag} {raw}: name the served model after '#', e.g. openai:{url}#MODEL")
    return ModelSpec(raw, "openai", name.strip(), url.rstrip("/"), _key_env(query, raw, flag))


def _key_env(query: str, raw: str, flag: str) -> str | None:
    """`key_env=VAR` after the model's name: the one option a spec takes."""
    if not query:
        return None
    key, eq, value = query.partition("=")
    if key != "key_env" or not eq:
        raise MibeError(f"{flag} {raw}: '?{query}' is not an option; the one option is ?key_env=VARIABLE")
    if not _VARIABLE.fullmatch(value):
        raise MibeError(
            f"{flag} {raw}: key_env={value!r} is not an environment variable's name; write ?key_env=VARIABLE "
            "(the key itself never goes on the command line)"
        )
    return value
