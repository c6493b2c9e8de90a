"""Model specs for a second model in a run (`--extractor`, a judge): `hf:PATH`, `vllm:PATH`,
`openai:URL#NAME`, or a bare path or hub id (= hf). mibe.run.api.backend_for builds the backend, with
the run's own settings and the credentialed-data guard."""

from __future__ import annotations

from dataclasses import dataclass

from mibe.types import MibeError

BACKENDS = ("hf", "vllm", "openai")
EXAMPLES = "hf:PATH, vllm:PATH, openai:http://127.0.0.1:8000/v1#NAME, or a model folder"


@dataclass(frozen=True)
class ModelSpec:
    backend: str  # hf | vllm | openai
    model: str  # a folder, hub id, alias, or the name a server serves
    base_url: str | None = None  # openai only


def parse(text: str | None, flag: str = "--extractor") -> ModelSpec:
    """A spec as typed on the command line; one-line MibeError naming `flag` when it is not one."""
    if text is None or not text.strip():
        raise MibeError(f"{flag}: no model given; pass {EXAMPLES}")
    text = text.strip()
    head, sep, rest = text.partition(":")
    if not sep or head not in BACKENDS or rest.startswith("//"):  # C:\..., http://..., plain paths
        if head in ("http", "https"):
            raise MibeError(f"{flag} {text}: an endpoint is written openai:URL#NAME, e.g. openai:{text}#NAME")
        return ModelSpec("hf", text)
    if not rest.strip():
        raise MibeError(f"{flag} {text}: nothing after '{head}:'; pass {EXAMPLES}")
    if head != "openai":
        return ModelSpec(head, rest.strip())
    url, hashed, name = rest.rpartition("#")
    if not hashed or not url.strip() or not name.strip():
        raise MibeError(
            f"{flag} {text}: an endpoint needs URL#NAME, e.g. openai:http://127.0.0.1:8000/v1#NAME"
        )
    return ModelSpec("openai", name.strip(), url.strip())
