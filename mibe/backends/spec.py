"""One way to name a second model on the command line (a judge, an answer extractor):

    hf:PATH            a local folder or hub id, run by transformers (a bare PATH means the same)
    vllm:PATH          the same, run by vLLM
    openai:URL#NAME    the model NAME served by an OpenAI-compatible server at URL

A spec becomes a RunConfig for it (`run_config`), so the one backend factory (`mibe.run.api.
make_backend`) builds it exactly as it builds the evaluated model, guard included. `check_guard`
applies the credentialed-data guard before anything is built, so a refused endpoint is named in one
line before any model loads or any request is sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe.types import MibeError, RunConfig

BACKENDS = ("hf", "vllm", "openai")
# Settings of the evaluated model's RunConfig a judge shares (the machine it runs on, and the trust
# and credentialed-data decisions the user made); everything else is the judge's own (never the
# evaluated endpoint's --api-key-env: that key is for that server).
SHARED = ("device", "dtype", "trust_remote_code", "batch_size", "max_concurrency")


@dataclass(frozen=True)
class ModelSpec:
    text: str  # as the user wrote it
    backend: str  # hf, vllm or openai
    model: str  # a folder or hub id; for openai, the served model's name
    base_url: str | None = None  # openai only

    @property
    def local(self) -> bool:
        """Runs on this machine (no data leaves it): hf and vllm."""
        return self.backend != "openai"


def parse(text: str | None, flag: str = "--judge") -> ModelSpec:
    """`hf:PATH`, `vllm:PATH`, `openai:URL#NAME` or a bare PATH (hf); bad input is one line."""
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
    url, hash_sign, name = rest.partition("#")
    if not url.startswith(("http://", "https://")):
        raise MibeError(
            f"{flag} {raw}: the URL must start with http:// or https://, e.g. openai:http://127.0.0.1:8000/v1#NAME"
        )
    if not hash_sign or not name.strip():
        raise MibeError(f"{flag} {raw}: name the served model after '#', e.g. openai:{url}#MODEL")
    return ModelSpec(raw, "openai", name.strip(), url.rstrip("/"))


def run_config(spec: ModelSpec, base: RunConfig | None = None, **overrides: Any) -> RunConfig:
    """The RunConfig that makes `make_backend` build `spec`: the spec's model and backend, the
    machine settings of `base` (the evaluated model's run, when there is one), then `overrides`."""
    shared = {k: getattr(base, k) for k in SHARED} if base is not None else {}
    if base is not None:
        shared["allow_remote_credentialed"] = base.allow_remote_credentialed
    return dataclasses.replace(
        RunConfig(model=spec.model, backend=spec.backend, base_url=spec.base_url),
        **{**shared, **overrides},
    )


def check_guard(
    spec: ModelSpec, credentialed: Sequence[str], reason: str | None, flag: str = "--judge"
) -> None:
    """Refuse, before any request, a remote endpoint for credentialed tasks (one line); local
    models and loopback endpoints pass, and so does any endpoint when the user gave a reason."""
    if spec.local or not credentialed:
        return
    from mibe.backends import http, openai

    addresses: tuple[str, ...] = ()
    try:
        parts = http.split(spec.base_url or "")
        addresses = http.resolve(parts.hostname or "", parts.port)
    except OSError:
        pass  # an unresolvable name is refused by the guard below unless a reason is given
    except MibeError as exc:
        raise MibeError(f"{flag} {spec.text}: {exc}") from None
    try:
        openai.guard(spec.base_url or "", credentialed, reason, addresses)
    except MibeError as exc:
        raise MibeError(f"{flag} {spec.text}: refused: {exc}") from None
