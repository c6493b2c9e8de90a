"""The Backend interface: every capability a caller uses is declared on mibe.types.Backend with a
default, the four backends subclass it, and no module probes a backend for an undeclared member."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

from mibe.backends.base import TokenizedBackend
from mibe.backends.hf import HFBackend
from mibe.backends.openai import OpenAIBackend
from mibe.backends.pool import PoolBackend
from mibe.backends.vllm import VLLMBackend
from mibe.types import Backend, MibeError
from tests.support.paths import REPO
from tests.support.scripted import Scripted


class Minimal(Scripted):
    """Only what Backend requires (the scripted backend, named here): every optional capability keeps
    its default."""

    def describe(self) -> dict[str, Any]:
        return {"backend": "minimal"}


def test_a_backend_missing_a_required_method_cannot_be_made() -> None:
    class NoScoring(Backend):
        def describe(self) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="abstract"):
        NoScoring()  # type: ignore[abstract]


def test_the_optional_capabilities_default_to_what_a_plain_backend_has() -> None:
    # Minimal defines the required methods and nothing else Backend declares.
    declared = {name for name in vars(Backend) if not name.startswith("_")}
    for cls in (Scripted, Minimal):
        assert {name for name in vars(cls) if name in declared} <= Backend.__abstractmethods__, cls
    b = Minimal()
    assert not declared & set(vars(b))  # nor does its __init__ set one
    assert (b.max_context, b.tokenizer, b.chunk_size, b.kv_cache_bytes, b.on_step) == (None,) * 5
    assert b.local_tokenizer is True and b.reports_steps is False
    assert (b.chat_template, b.bos_token_id) == (None, None)
    assert b.tokenize_many(["a", "b"], (" yes",)) is None
    assert (b.served_tokens("d"), b.answered_by("d"), b.sampling_record()) == (None, None, None)
    assert b.answered_as == set() and b.with_adapter(None) is b
    with pytest.raises(MibeError, match=r"^--adapters: the minimal backend cannot switch LoRA adapters"):
        b.with_adapter("some/adapter")


def test_every_backend_subclasses_the_interface_and_shares_the_tokenizer_layer() -> None:
    for cls in (HFBackend, VLLMBackend, OpenAIBackend, PoolBackend):
        assert issubclass(cls, TokenizedBackend) and issubclass(cls, Backend), cls
        assert not inspect.isabstract(cls), cls
    # Decoding and chat rendering live once, in the shared layer: no backend redefines them.
    for cls in (HFBackend, VLLMBackend, OpenAIBackend, PoolBackend):
        assert "detokenize" not in vars(cls) and "chat" not in vars(cls), cls
    assert HFBackend.reports_steps and not VLLMBackend.reports_steps


def test_hf_declares_its_tokenizer_facts(tiny_llama: Path) -> None:
    backend = HFBackend(str(tiny_llama))  # the weights load on first use: only the tokenizer here
    assert backend.bos_token_id == backend.tokenizer.bos_token_id is not None
    assert backend.chat_template == backend.tokenizer.chat_template
    assert backend.detokenize(backend.tokenize("heart rate")).strip() == "heart rate"


BACKEND_NAMES = ("backend", "engine", "member", "self.first")  # and any `x.backend`


def _probes(tree: ast.AST) -> list[int]:
    """Lines calling getattr/hasattr on a name that holds a backend."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        target = ast.unparse(node.args[0])
        if node.func.id in ("getattr", "hasattr") and (
            target in BACKEND_NAMES or target.endswith(".backend")
        ):
            found.append(node.lineno)
    return found


def test_no_module_probes_a_backend_for_a_capability() -> None:
    caught = "\n".join(
        [
            "getattr(backend, 'chunk_size', None)",
            "hasattr(judge.backend, 'on_step')",
            "getattr(torch.backends, 'mps')",
        ]
    )
    assert _probes(ast.parse(caught)) == [1, 2]  # the scan sees a probe (and not torch.backends)
    offenders = []
    for path in sorted((REPO / "mibe").rglob("*.py")):
        lines = _probes(ast.parse(path.read_text(encoding="utf-8")))
        offenders += [f"{path.relative_to(REPO)}:{n}" for n in lines]
    assert offenders == [], "declare the capability on mibe.types.Backend instead: " + ", ".join(offenders)
