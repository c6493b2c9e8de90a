"""The engine fits the machine: a line before loading when the chosen engine is the slower one here,
and vLLM's CPU KV cache sized to the run instead of most of the machine's memory."""

from __future__ import annotations

import importlib.util

import pytest

from mibe.backends import fit

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(not HAVE_VLLM, reason="the note names vLLM only where it is installed (vllm env)")
@pytest.mark.parametrize(
    ("backend", "cuda", "says"),
    [("vllm", False, "slower engine here"), ("hf", True, "faster engine here"), ("vllm", True, None),
     ("hf", False, None), ("openai", False, None)],
)  # fmt: skip
def test_the_slower_engine_is_said(backend: str, cuda: bool, says: str | None) -> None:
    note = fit.engine_note(backend, cuda=cuda)
    assert (note is None) if says is None else (says in note and len(note.splitlines()) == 1)


@pytest.mark.skipif(HAVE_VLLM, reason="checks the case where vllm is absent")
@pytest.mark.parametrize("backend", ["vllm", "hf"])
def test_without_vllm_nothing_is_said_before_the_install_message(backend: str) -> None:
    assert fit.engine_note(backend, cuda=False) is None and fit.engine_note(backend, cuda=True) is None


GIB = 1024**3


@pytest.mark.parametrize(
    ("per_token", "context", "sequences", "available", "expected"),
    [
        (1000, 2048, 8, 16 * GIB, 1000 * 2048 * 8),  # the run's batch at full context
        (1000, 2048, 8, 10_000_000, 5_000_000),  # capped at half the free memory
        (1000, 2048, 8, 1_000_000, 1000 * 2048),  # never below one full context (vLLM's minimum)
        (1000, 2048, 0, 16 * GIB, 1000 * 2048),  # a batch of 0 is one sequence
        (1000, 2048, 4, 0, 1000 * 2048 * 4),  # free memory unknown: the run's need
    ],
)
def test_cpu_kv_cache_is_sized_to_the_run(
    per_token: int, context: int, sequences: int, available: int, expected: int
) -> None:
    assert fit.cpu_kv_cache_bytes(per_token, context, sequences, available) == expected


def test_available_memory_is_read() -> None:
    assert fit.available_memory() > 0  # Linux: /proc/meminfo's MemAvailable


def test_an_endpoint_carries_every_setting_the_vllm_backend_reads() -> None:
    """VLLMBackend.from_config reads the factory's Endpoint and its Machine: each name it reads must be
    one of their fields (a missing `batch_size` broke every vLLM run, caught only by the vLLM suite)."""
    import ast
    import dataclasses
    import inspect

    from mibe.backends import endpoint
    from mibe.backends.vllm import VLLMBackend
    from mibe.types import RunConfig

    tree = ast.parse(inspect.getsource(VLLMBackend.from_config).replace("\n    ", "\n").strip())
    on_e = {
        n.attr for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "e"
    }  # fmt: skip
    on_machine = {
        n.attr for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and ast.unparse(n.value) == "e.machine"
    }  # fmt: skip
    assert {"batch_size", "seed", "dtype"} <= on_machine and "max_model_len" in on_e
    assert on_e <= {f.name for f in dataclasses.fields(endpoint.Endpoint)}
    assert on_machine <= {f.name for f in dataclasses.fields(endpoint.Machine)}
    made = endpoint.evaluated(RunConfig(model="m", backend="vllm", batch_size=3, seed=9))
    assert (made.machine.batch_size, made.machine.seed) == (3, 9)
