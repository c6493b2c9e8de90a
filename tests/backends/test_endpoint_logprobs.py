"""An OpenAI-compatible endpoint's replies, shaped by hand on a loopback server: impossible or
incomplete log-probs and choices without their index are one line naming the URL and document (never
a score summed from the wrong tokens); a lone surrogate is saved; the server's own count says what
hit the token cap; a reply from another model is said and recorded."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mibe.backends.openai import OpenAIBackend
from mibe.backends.replies import choice_reasoning, choice_text
from mibe.runner import api
from mibe.types import MibeError, Request, RunConfig
from tests.support.loopback import JSONHandler, serving
from tests.support.notes import run, workspace
from tests.support.scripted import Scripted


def echoed(prompt: str, value: float, shorten: int = 0) -> dict[str, Any]:
    """The echo of `prompt` one character per token (the byte tokenizer's view), then one token."""
    tokens = [*prompt, "x"]
    values: list[Any] = [None] + [value] * (len(tokens) - 1)
    offsets = list(range(len(tokens)))
    if shorten:
        values, offsets = values[:-shorten], offsets[:-shorten]
    return {"tokens": tokens, "token_logprobs": values, "text_offset": offsets}


class Echo(JSONHandler):
    mode: ClassVar[str] = "ok"

    def do_GET(self) -> None:  # /v1/models: the served model and its context length
        self._reply({"data": [{"id": "tiny", "max_model_len": 2048}]})

    def do_POST(self) -> None:
        prompts = self._body()["prompt"]
        mode = type(self).mode
        value = {"nan": math.nan, "positive": 0.7, "inf": math.inf}.get(mode, -0.5)
        out = []
        for i, p in enumerate(prompts):
            choice: dict[str, Any] = {
                "index": i,
                "text": "x",
                "logprobs": echoed(p, value, 3 if mode == "short" else 0),
            }
            if mode == "noindex":
                del choice["index"]
            out.append(choice)
        if mode == "noindex":
            out.reverse()
        self._reply({"choices": out})


def scores(mode: str) -> list[list[float]]:
    Echo.mode = mode
    with serving(Echo) as url:
        backend = OpenAIBackend("tiny", url, retries=0)
        return backend.loglikelihood([Request("d7", "Q: ok? A:", 4, (), continuations=(" yes", " no"))])


def test_well_formed_echoes_are_summed_over_the_continuation() -> None:
    assert scores("ok") == [[pytest.approx(-0.5 * 4), pytest.approx(-0.5 * 3)]]


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("nan", r"document d7: a log-prob of nan \(log-probs are numbers <= 0\)"),
        ("inf", r"document d7: a log-prob of inf"),
        ("positive", r"document d7: a log-prob of 0.7"),
        ("short", r"document d7: incomplete prompt log-probs \(fewer echoed tokens than the prompt has\)"),
        (
            "noindex",
            r"the reply's choices lack the 'index' 0..1 that ties each to its prompt \(document d7\)",
        ),
    ],
)
def test_impossible_or_incomplete_log_probs_are_one_line(mode: str, said: str) -> None:
    with pytest.raises(MibeError, match=r"http://127\.0\.0\.1:\d+/v1/completions: .*" + said):
        scores(mode)


class Broken(Scripted):
    """A model whose log-likelihoods come out NaN for one document (fp16 overflow, say)."""

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float]]:
        return [[math.nan, -1.0] if r.doc_id == "n2" else [-1.0, -2.0] for r in requests]


def test_a_nan_log_likelihood_stops_the_run_before_it_is_saved(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(MibeError, match=r"document n2: the model gave the log-likelihoods \[nan, -1.0\]"):
        run(workspace(tmp_path), out, backend=Broken(reply=str), scoring="loglikelihood", batch_size=1)
    rows = [json.loads(line) for line in (out / "samples" / "notes.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["n0", "n1"]  # saved before it; nothing NaN on disk to resume with


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("yes \ud800", "yes \ufffd"), ("a\ud83d\ude00b", "a\U0001f600b"), ("plain é", "plain é"), (None, "")],
)
def test_a_reply_with_a_lone_surrogate_can_be_saved(sent: str | None, kept: str) -> None:
    # json.loads('"\\ud800"') is a str no UTF-8 file can hold: writing the samples row crashed.
    got = choice_text({"text": sent}, chat=False)
    assert got == kept and got.encode("utf-8") == kept.encode("utf-8")
    reasoning = choice_reasoning({"message": {"reasoning_content": sent or "x"}}, chat=True)
    assert reasoning is not None and isinstance(reasoning.encode("utf-8"), bytes)


class Sentence(JSONHandler):
    finish: ClassVar[str | None] = "stop"

    def do_GET(self) -> None:
        self._reply({"data": [{"id": "tiny", "max_model_len": 2048}]})

    def do_POST(self) -> None:
        self._body()
        answer = " Cardiology, as the note is about the heart."
        chat = self.path.endswith("/chat/completions")
        choice: dict[str, Any] = {
            "index": 0,
            **({"message": {"content": answer}} if chat else {"text": answer}),
        }
        if type(self).finish:
            choice["finish_reason"] = type(self).finish
        self._reply({"choices": [choice]})


@pytest.mark.parametrize(("finish", "cut"), [("stop", False), ("length", True), (None, True)])
def test_without_a_local_tokenizer_the_servers_finish_reason_says_what_was_cut(
    tmp_path: Path, finish: str | None, cut: bool
) -> None:
    # The answer is 44 bytes against a 4-token cap: counting bytes called every answer cut off.
    Sentence.finish = finish
    with serving(Sentence) as url:
        backend = OpenAIBackend("tiny", url, retries=0)
        out = run(workspace(tmp_path), tmp_path / "run", backend=backend)
    warnings = " ".join(out["tasks"]["notes"].get("warnings") or [])
    assert ("cut at the 4-token limit" in warnings) is cut, warnings


class Other(JSONHandler):
    def do_GET(self) -> None:
        self._reply({"data": [{"id": "someone-else", "max_model_len": 2048}]})

    def do_POST(self) -> None:
        self._body()
        chat = self.path.endswith("/chat/completions")
        text = " Cardiology"
        choice = {
            "index": 0,
            "finish_reason": "stop",
            **({"message": {"content": text}} if chat else {"text": text}),
        }
        self._reply({"model": "gpt-evil", "choices": [choice]})


def test_a_server_answering_as_another_model_is_said_and_recorded(tmp_path: Path, said: list[str]) -> None:
    with serving(Other) as url:
        backend = OpenAIBackend("tiny", url, retries=0)
        config = RunConfig(
            model="tiny", tasks=(str(workspace(tmp_path)),), output_dir=str(tmp_path / "r"), bootstrap=20
        )
        out = api.run(config, backend=backend)
    assert any("/models serves someone-else, not 'tiny'" in line for line in said)
    assert any("the server answered as gpt-evil, not 'tiny'" in line for line in said)
    assert out["model"]["answered_as"] == ["gpt-evil"]
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["model"]["answered_as"] == ["gpt-evil"]
