"""Served sampling made explicit: every request states the standard sampling parameters and, on a vLLM
server, vLLM's extensions, so a server's generation_config.json defaults never apply silently; a
parameter a hosted model refuses is dropped for that endpoint, said in one line and recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mibe import cli
from mibe.backends import openai as endpoint
from mibe.backends import sampling
from mibe.types import Request
from tests.support.loopback import JSONHandler, serving

GREEDY = {"temperature": 0.0, "top_p": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}
VLLM = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}


class _Server(JSONHandler):
    """A vLLM-like server (GET /version at the root, models owned by vllm) or a hosted-like one that
    refuses some parameters with HTTP 400, as hosted APIs word it."""

    vllm: ClassVar[bool] = True
    refuses: ClassVar[tuple[str, ...]] = ()
    bodies: ClassVar[list[dict[str, Any]]] = []

    def _error(self, status: int, message: str) -> None:
        self._reply({"error": {"message": message}}, status)

    def do_GET(self) -> None:
        if self.path == "/version":
            if type(self).vllm:
                self._reply({"version": "0.32.0"})
            else:
                self._error(404, "Not Found")
            return
        owner = "vllm" if type(self).vllm else "system"
        self._reply({"data": [{"id": "m", "owned_by": owner, "max_model_len": 4096}]})

    def do_POST(self) -> None:
        body = self._body()
        for name in type(self).refuses:
            if name in body:
                self._error(400, f"Unsupported parameter: '{name}' is not supported with this model.")
                return
        type(self).bodies.append(body)
        answer = (
            {"message": {"role": "assistant", "content": " yes"}} if "messages" in body else {"text": " yes"}
        )
        self._reply({"model": "m", "choices": [{"index": 0, **answer, "finish_reason": "stop"}]})


@pytest.fixture
def server() -> Any:
    _Server.vllm, _Server.refuses, _Server.bodies = True, (), []
    with serving(_Server) as url:
        yield url


def test_a_vllm_server_gets_every_standard_and_vllm_parameter(server: str) -> None:
    backend = endpoint.OpenAIBackend("m", server, seed=7)
    assert backend.generate([Request("d1", "Is it?", 8, ("\n\n",))]) == [" yes"]
    (body,) = _Server.bodies
    assert {k: body[k] for k in (*GREEDY, *VLLM, "seed", "max_tokens")} == {
        **GREEDY, **VLLM, "seed": 7, "max_tokens": 8,
    }  # fmt: skip
    record = backend.sampling.record()
    assert record["sent"] == {**GREEDY, **VLLM, "seed": 7} and record["refused"] == {}
    assert record["server"] == {"version": "0.32.0", "owned_by": ["vllm"]}


def test_another_server_gets_the_standard_ones_only(server: str) -> None:
    _Server.vllm = False
    backend = endpoint.OpenAIBackend("m", server)
    backend.generate([Request("d1", "Is it?", 8)])
    (body,) = _Server.bodies
    assert all(body[k] == v for k, v in GREEDY.items()) and not set(VLLM) & set(body) and "seed" not in body


def test_a_refused_parameter_is_dropped_said_once_and_recorded(server: str, said: list[str]) -> None:
    _Server.vllm, _Server.refuses = False, ("seed", "presence_penalty")
    backend = endpoint.OpenAIBackend("m", server, seed=1234, max_concurrency=1)
    out = backend.generate([Request(f"d{i}", "Is it?", 8) for i in range(3)])
    assert out == [" yes"] * 3 and len(_Server.bodies) == 3
    assert all("seed" not in b and "presence_penalty" not in b and b["top_p"] == 1.0 for b in _Server.bodies)
    refusals = [line for line in said if "refuses the sampling parameter" in line]
    assert len(refusals) == 2 and all(len(line.splitlines()) == 1 for line in refusals), said
    record = backend.sampling.record()
    assert set(record["refused"]) == {"seed", "presence_penalty"} and "seed" not in record["sent"]


@pytest.mark.parametrize(
    ("detail", "name"),
    [
        ("HTTP 400: Unsupported parameter: 'seed' is not supported with this model.", "seed"),
        ("HTTP 400: {'detail': 'extra inputs are not permitted', 'loc': ['body', 'min_p']}", "min_p"),
        ("HTTP 400: top_k: Extra fields not allowed", "top_k"),
        ("HTTP 400: the prompt is too long", None),  # not a parameter: the error stands
        ("HTTP 500: Unsupported parameter: 'seed'", None),  # only a 400 refuses
        ("HTTP 400: unsupported value for temperature", None),  # temperature is never dropped
        ("HTTP 400: Unsupported parameter: 'top_p_extra'", None),  # a name that merely starts alike
    ],
)
def test_which_refusals_drop_a_parameter(detail: str, name: str | None) -> None:
    assert sampling.refused(detail) == name


def test_the_run_records_what_was_sent(server: str, tmp_path: Path) -> None:
    argv = [
        "run",
        "--backend",
        "openai",
        "--base-url",
        server,
        "--model",
        "m",
        "--demo",
        "--tasks",
        "pubmedqa",
    ]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "r"), "--bootstrap", "20"]) == 0
    model = json.loads((tmp_path / "r" / "results.json").read_text())["model"]
    assert model["sampling"]["sent"] == {**GREEDY, **VLLM, "seed": 1234}
    assert len(_Server.bodies) == 3 and all(b["repetition_penalty"] == 1.0 for b in _Server.bodies)
