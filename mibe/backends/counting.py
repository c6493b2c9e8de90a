"""The tokenizer an endpoint backend counts and cuts prompts with: the served model's own when
`--model` is its local folder (prompts then go as its token ids), a `--tokenizer NAME|PATH` (counts
and cuts only), else UTF-8 bytes, which never undercount tokens."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.types import MibeError


class ByteTokenizer:
    """Stands in when no tokenizer is at hand: one id per UTF-8 byte (>= the model's token count)."""

    chat_template = None
    bos_token = bos_token_id = None  # no BOS: mibe's BOS rule adds none

    def __call__(self, text: str, add_special_tokens: bool = True) -> Any:
        return type("Encoded", (), {"input_ids": list(text.encode("utf-8"))})()

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode("utf-8", errors="ignore")


def local_tokenizer(model: str, trust_remote_code: bool) -> Any:
    path = Path(model).expanduser()
    if not (path / "tokenizer_config.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


def named_tokenizer(spec: str, trust_remote_code: bool) -> Any:
    """`--tokenizer NAME|PATH`: a local folder, else a hub id (from the local cache or the hub)."""
    from transformers import AutoTokenizer

    try:
        path = str(Path(spec).expanduser())
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise MibeError(
            f"--tokenizer {spec}: cannot load a tokenizer ({why}); give a local folder holding "
            "tokenizer_config.json or a hub id"
        ) from None


def tokenizers(model: str, named: str | None, trust_remote_code: bool) -> tuple[Any, bool]:
    """The tokenizer that counts and cuts, and whether it is the served model's own (prompts then go
    as its token ids). A --tokenizer only counts and cuts, and prompts go as text, since its ids
    would mean other words to the server."""
    if named:
        return named_tokenizer(named, trust_remote_code), False
    own = local_tokenizer(model, trust_remote_code)
    return (own, True) if own is not None else (ByteTokenizer(), False)
