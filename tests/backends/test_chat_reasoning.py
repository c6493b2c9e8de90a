"""Chat templates and reasoning traces wired through a run: the template `auto` picks (tokenizer,
training record, endpoint), the thinking switch through --chat-template-kwargs, what the protocol
records, the stop rule after a trace, and `<think>` outputs and `reasoning_content` /
`reasoning` fields from a loopback OpenAI-compatible server written here."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from mibe import cli
from mibe.backends import replies, traces
from mibe.boards.table import protocol_key
from mibe.runner import api
from mibe.types import MibeError, Request, RunConfig
from tests.support import chatmodel
from tests.support.loopback import JSONHandler, serving
from tests.support.runfiles import samples_by_id

# ---- the stop rule after a trace (what the HF stopping criterion and every backend's cut use) ---------
THINK = (("<think>", "</think>"),)


@pytest.mark.parametrize(
    ("text", "prompt", "reached", "cut"),
    [
        ("yes\n\nmore", "Q:", True, "yes"),
        ("<think>a\n\nb", "Q:", False, "<think>a\n\nb"),  # thinking: blank lines never stop it
        ("<think>a\n\nb</think>\n\nyes\n\nmore", "Q:", True, "<think>a\n\nb</think>\n\nyes"),
        ("<thi", "Q:", False, "<thi"),  # a tag still being written
        ("a\n\nb", "Q: <think>\n", False, "a\n\nb"),  # the template opened the trace
        ("a\n\nb</think>no\n\nx", "Q: <think>\n", True, "a\n\nb</think>no"),
    ],
)
def test_stops_apply_after_the_trace(text: str, prompt: str, reached: bool, cut: str) -> None:
    request = Request("d", prompt, 8, ("\n\n",), (), THINK)
    assert traces.stop_reached(text, ("\n\n",), request) is reached
    assert traces.cut_request(text, request) == cut
    plain = Request("d", prompt, 8, ("\n\n",))  # a run that splits nothing: the old rule
    assert traces.cut_request("<think>a\n\nb", plain) == "<think>a"


@pytest.mark.parametrize(
    ("content", "reasoning", "finished", "expected"),
    [
        ("yes", None, True, "yes"),
        ("yes", "weigh it", True, "<think>weigh it</think>yes"),
        ("", "weigh it and", False, "<think>weigh it and"),  # cut while thinking: left open
        ("", "weigh it", True, "<think>weigh it</think>"),  # finished with no answer: closed, empty
    ],
)
def test_a_separate_trace_is_put_back_in_front(
    content: str, reasoning: str | None, finished: bool, expected: str
) -> None:
    assert traces.with_reasoning(content, reasoning, finished, THINK[0]) == expected


def test_reasoning_fields_are_read_old_and_new_names() -> None:
    assert replies.choice_reasoning({"message": {"content": "x", "reasoning_content": "r"}}, True) == "r"
    assert replies.choice_reasoning({"message": {"content": "x", "reasoning": "r2"}}, True) == "r2"
    assert replies.choice_reasoning({"message": {"content": "x", "reasoning": None}}, True) is None
    assert replies.choice_reasoning({"text": "x"}, False) is None


# ---- a loopback server that answers each case as a reasoning model would ---------------------------
# (content, reasoning field, finish_reason), chosen by the CASE word in the prompt.
REPLIES = {
    "closed": ("<think>Neurosurgery or surgery?\n\nIt is yes.</think>\n\nyes\n\nno more", None, "stop"),
    "unclosed": ("<think>Thinking about no and\n\nmaybe", None, "length"),
    "empty": ("<think></think>no", None, "stop"),
    "nested": ("<think>a <think> no </think> still </think> yes", None, "stop"),
    "field": ("no", "The answer could be yes, but\n\nit is no.", "stop"),
    "fieldcut": (None, "yes or no, yes or", "length"),
    "plain": ("maybe", None, "stop"),
}
GOLD = {"closed": "yes", "unclosed": "no", "empty": "no", "nested": "yes", "field": "no", "fieldcut": "yes"}
GOLD["plain"] = "maybe"


class _Reasoner(JSONHandler):
    bodies: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        self._reply({"data": [{"id": "reasoner", "max_model_len": 4096}]})

    def do_POST(self) -> None:
        body = self._body()
        type(self).bodies.append(body)
        text = json.dumps(body.get("messages") or body.get("prompt"))
        case = next(c for c in REPLIES if f"CASE-{c}." in text)
        content, reasoning, finish = REPLIES[case]
        message = {"role": "assistant", "content": content}
        if reasoning is not None:
            message["reasoning_content" if case == "field" else "reasoning"] = reasoning
        if "messages" in body:
            choice = {"index": 0, "message": message, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": content or "", "finish_reason": finish}
        self._reply({"choices": [choice]})


@pytest.fixture
def reasoner() -> Iterator[str]:
    _Reasoner.bodies = []
    with serving(_Reasoner) as url:
        yield url


def _task(tmp_path: Path, cases: list[str], credentialed: bool = False) -> Path:
    rows = [{"id": c, "text": f"CASE-{c}. Does the drug help?", "label": GOLD[c]} for c in cases]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tmp_path / "think_qa.yaml"
    task.write_text(
        "name: think_qa\n"
        "dataset: {source: qa.jsonl, split: test}\n"
        f"credentialed: {'true' if credentialed else 'false'}\n"
        'template: "Question: {{ text }}\\nAnswer:"\n'
        "target: label\n"
        "answer: {type: choice, choices: ['yes', 'no', 'maybe']}\n"
        'generation: {max_new_tokens: 16, stop: ["\\n\\n"]}\n'
        "metrics: [accuracy, missing_rate]\n"
    )
    return task


def test_endpoint_reasoning_outputs_are_split_and_only_answers_parsed(reasoner: str, tmp_path: Path) -> None:
    task = _task(tmp_path, list(REPLIES))
    argv = ["run", "--backend", "openai", "--base-url", reasoner, "--model", "reasoner", "--tasks", str(task)]
    kwargs = '{"enable_thinking": true}'
    assert cli.main([*argv, "--chat-template-kwargs", kwargs, "--output-dir", str(tmp_path / "r")]) == 0
    rows = samples_by_id(tmp_path / "r", "think_qa")
    assert rows["closed"]["reasoning"] == "Neurosurgery or surgery?\n\nIt is yes."
    assert rows["closed"]["answer_text"] == "yes" and rows["closed"]["prediction"] == "yes"
    assert rows["closed"]["raw_output"].startswith("<think>Neurosurgery")  # whole, cut only after the answer
    assert rows["unclosed"]["reasoning_truncated"] and rows["unclosed"]["parse_failed"]
    assert rows["unclosed"]["prediction"] is None  # "no" and "maybe" in the trace are never parsed
    assert (rows["empty"]["reasoning"], rows["empty"]["prediction"]) == ("", "no")
    assert (
        rows["nested"]["reasoning"] == "a <think> no </think> still" and rows["nested"]["prediction"] == "yes"
    )
    assert (
        rows["field"]["reasoning"].startswith("The answer could be yes")
        and rows["field"]["prediction"] == "no"
    )
    assert rows["fieldcut"]["reasoning_truncated"] and rows["fieldcut"]["prediction"] is None
    assert rows["plain"]["reasoning"] is None and rows["plain"]["prediction"] == "maybe"
    assert all(r["reasoning_tokens"] > 0 for r in rows.values() if r["reasoning"])
    entry = json.loads((tmp_path / "r" / "results.json").read_text())["tasks"]["think_qa"]
    assert entry["reasoning"]["reasoning_truncated"] == 2 and entry["reasoning"]["with_trace"] == 6
    assert entry["parse_failures"] == 2 and entry["metrics"]["accuracy"]["value"] == pytest.approx(5 / 7)
    assert entry["reasoning"]["reasoning_tokens"]["max"] >= entry["reasoning"]["reasoning_tokens"]["mean"]
    # Answer tokens: every document that reached an answer (not the two truncated traces) has its count.
    answered = [r["answer_tokens"] for r in rows.values() if not r["reasoning_truncated"]]
    assert len(answered) == 5 and all(n > 0 for n in answered)
    assert all("answer_tokens" not in r for r in rows.values() if r["reasoning_truncated"])
    costs = entry["reasoning"]["answer_tokens"]
    assert costs["max"] == max(answered) and costs["mean"] == pytest.approx(sum(answered) / 5)
    assert costs["p95"] == pytest.approx(float(np.percentile(answered, 95)))
    protocol = entry["protocol"]
    assert protocol["chat_template"] == "server" and protocol["chat_template_kwargs"] == {
        "enable_thinking": True
    }
    assert protocol["reasoning"] == {"delimiters": [["<think>", "</think>"]], "budget": 0}
    # Chat completions, the kwargs passed on, and no stop strings a trace could trip.
    assert all("messages" in b and "stop" not in b for b in _Reasoner.bodies)
    assert all(b["chat_template_kwargs"] == {"enable_thinking": True} for b in _Reasoner.bodies)


def test_budget_adds_to_the_cap_and_none_sends_completions(reasoner: str, tmp_path: Path) -> None:
    task = _task(tmp_path, ["closed", "plain"])
    argv = ["run", "--backend", "openai", "--base-url", reasoner, "--model", "reasoner", "--tasks", str(task)]
    assert cli.main([*argv, "--reasoning-budget", "100", "--output-dir", str(tmp_path / "b")]) == 0
    assert {b["max_tokens"] for b in _Reasoner.bodies} == {116}
    _Reasoner.bodies.clear()
    assert cli.main([*argv, "--chat-template", "none", "--output-dir", str(tmp_path / "n")]) == 0
    assert all("prompt" in b and "messages" not in b for b in _Reasoner.bodies)
    with_budget = json.loads((tmp_path / "b" / "results.json").read_text())["tasks"]["think_qa"]["protocol"]
    without = json.loads((tmp_path / "n" / "results.json").read_text())["tasks"]["think_qa"]["protocol"]
    assert without["chat_template"] is None and with_budget["reasoning"]["budget"] == 100
    assert protocol_key("think_qa", with_budget) != protocol_key("think_qa", without)


def test_paper_protocol_splits_nothing(reasoner: str, tmp_path: Path) -> None:
    task = _task(tmp_path, ["closed"])
    argv = ["run", "--backend", "openai", "--base-url", reasoner, "--model", "reasoner", "--tasks", str(task)]
    assert cli.main([*argv, "--protocol", "paper", "--output-dir", str(tmp_path / "p")]) == 0
    row = samples_by_id(tmp_path / "p", "think_qa")["closed"]
    assert "reasoning" not in row and "answer_text" not in row
    protocol = json.loads((tmp_path / "p" / "results.json").read_text())["tasks"]["think_qa"]["protocol"]
    assert protocol["chat_template"] is None and protocol["reasoning"] is None


# ---- a local tokenizer with a chat template and a thinking switch -----------------------------------
@pytest.fixture(scope="module")
def thinker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.paths import REPO

    return chatmodel.build(tmp_path_factory.mktemp("thinker"), REPO)


def _run(model: Path, out: Path, task: Path, **options: object) -> dict:
    config = RunConfig(model=str(model), tasks=(str(task),), output_dir=str(out), max_new_tokens=6, **options)
    return api.run(config)["tasks"]["think_qa"]


@pytest.mark.slow
def test_auto_uses_the_tokenizer_template_and_the_thinking_switch(thinker: Path, tmp_path: Path) -> None:
    task = _task(tmp_path, ["closed", "plain"])
    auto = _run(thinker, tmp_path / "a", task)
    off = _run(thinker, tmp_path / "off", task, chat_template_kwargs={"enable_thinking": False})
    bare = _run(thinker, tmp_path / "none", task, chat_template="none")
    rows = {name: samples_by_id(tmp_path / name, "think_qa")["plain"] for name in ("a", "off", "none")}
    prompts = {name: row["prompt"] for name, row in rows.items()}
    assert prompts["a"].startswith("<|user|>\nQuestion: CASE-plain.") and prompts["a"].endswith(
        "<|assistant|>\n"
    )
    assert prompts["off"].endswith("<|assistant|>\n<think>\n\n</think>\n\n")
    assert prompts["none"].startswith("Question: CASE-plain.")
    assert auto["protocol"]["chat_template_source"] == "tokenizer"
    assert auto["protocol"]["chat_template"] == off["protocol"]["chat_template"]  # the same text...
    keys = {protocol_key("think_qa", e["protocol"]) for e in (auto, off, bare)}
    assert len(keys) == 3  # ...yet three protocols: runs with and without never share a column
    assert bare["protocol"]["chat_template"] is None and bare["protocol"]["chat_template_source"] == "none"


def test_a_trace_opened_by_the_template_is_truncated_not_parsed(tmp_path: Path) -> None:
    from tests.support.paths import REPO

    model = chatmodel.build(tmp_path / "opens", REPO, opens_trace=True)
    entry = _run(model, tmp_path / "o", _task(tmp_path, ["closed", "plain", "empty"]))
    rows = samples_by_id(tmp_path / "o", "think_qa")
    for row in rows.values():
        assert row["prompt"].endswith("<|assistant|>\n<think>\n")
        closed = "</think>" in row["raw_output"]
        assert row["reasoning_truncated"] is not closed and row["reasoning"] is not None
        if not closed:  # the tiny model's words, all thinking: never parsed, always a failure
            assert row["parse_failed"] and row["answer_text"] == "" and row["prediction"] is None
    truncated = sum("</think>" not in r["raw_output"] for r in rows.values())
    assert entry["reasoning"]["reasoning_truncated"] == truncated and entry["parse_failures"] >= truncated


@pytest.mark.slow
def test_auto_follows_the_training_record(thinker: Path, tmp_path: Path) -> None:
    task = _task(tmp_path, ["plain"])
    trained = tmp_path / "trained-bare"
    shutil.copytree(thinker, trained)
    (trained / "mibe_training.json").write_text(json.dumps({"kind": "task", "chat_template": None}))
    entry = _run(
        trained, tmp_path / "t", task
    )  # trained without a template: none, though the tokenizer has one
    assert (
        entry["protocol"]["chat_template"] is None and entry["protocol"]["chat_template_source"] == "training"
    )
    assert samples_by_id(tmp_path / "t", "think_qa")["plain"]["prompt"].startswith("Question:")
    (trained / "mibe_training.json").write_text(
        json.dumps({"chat_template": {"source": "tokenizer", "sha256": "0" * 16}})
    )
    with pytest.raises(MibeError, match=r"mibe_training\.json: trained with chat template"):
        _run(trained, tmp_path / "t2", task)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--chat-template", "/nonexistent.jinja"], "--chat-template /nonexistent.jinja: no such file"),
        (["--chat-template-kwargs", "[1]"], "--chat-template-kwargs: a JSON list, not an object"),
        (["--chat-template-kwargs", '{"tokenize": true}'], "tokenize set by mibe itself"),
        (["--reasoning-delimiters", "<think>"], "--reasoning-delimiters <think>: expected OPEN,CLOSE"),
        (["--reasoning-budget", "-1"], "--reasoning-budget -1: must be 0 or more"),
        (["--protocol", "paper", "--system-prompt", "Be brief."], "--system-prompt: no chat template"),
    ],
)
def test_bad_flags_are_one_line(
    flags: list[str], message: str, tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["run", "--model", str(tiny_llama), "--tasks", "pubmedqa", "--demo", "--dry-run", *flags]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


# ---- --parser model: a second model maps answers to labels by log-likelihood --------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf:/m/x", ("hf", "/m/x", None)),
        ("vllm:org/name", ("vllm", "org/name", None)),
        ("openai:http://127.0.0.1:8000/v1#served", ("openai", "served", "http://127.0.0.1:8000/v1")),
        ("/models/tiny", ("hf", "/models/tiny", None)),
        ("smollm2-135m", ("hf", "smollm2-135m", None)),
        ("C:/models/tiny", ("hf", "C:/models/tiny", None)),
    ],
)
def test_model_specs(text: str, expected: tuple) -> None:
    from mibe.backends import spec

    found = spec.parse(text)
    assert (found.backend, found.model, found.base_url) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openai:http://127.0.0.1:8000/v1", "name the served model after '#'"),
        ("http://127.0.0.1:8000/v1", "an endpoint is written openai:URL#NAME"),
        ("hf:", "no model after 'hf:'"),
        ("", "empty; give hf:PATH"),
    ],
)
def test_bad_model_specs(text: str, message: str) -> None:
    from mibe.backends import spec

    with pytest.raises(MibeError, match=message):
        spec.parse(text)


@pytest.mark.slow
def test_parser_model_plumbing_cache_and_rescore(reasoner: str, tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.runner.extract import cache_path

    task = _task(tmp_path, list(REPLIES))
    argv = ["run", "--backend", "openai", "--base-url", reasoner, "--model", "reasoner", "--tasks", str(task)]
    extractor = f"hf:{tiny_llama}"
    run = tmp_path / "m"
    assert cli.main([*argv, "--parser", "model", "--extractor", extractor, "--output-dir", str(run)]) == 0
    rows = samples_by_id(run, "think_qa")
    assert all(
        r["prediction"] in ("yes", "no", "maybe", None) and "strict_prediction" in r for r in rows.values()
    )
    assert rows["unclosed"]["prediction"] is None and rows["unclosed"]["parse_failed"]  # never sent
    results = json.loads((run / "results.json").read_text())
    assert results["extractor"]["backend"] == "hf" and results["extractor"]["path"] == str(tiny_llama)
    entry = results["tasks"]["think_qa"]
    assert entry["protocol"]["parser"] == "model" and entry["protocol"]["extractor"] == extractor
    agree = sum(r["prediction"] == r["strict_prediction"] for r in rows.values()) / len(rows)
    assert entry["extraction"]["agreement_with_strict"] == pytest.approx(agree)
    cache = cache_path(run, "think_qa").read_text()
    assert len(cache.splitlines()) == 5  # the five answers with text; the two truncated traces cost nothing
    assert "drug" not in cache and "yes\\n" not in cache  # hashes and labels, never text
    # rescore: the evaluated model is never asked; the run's own cache is never trusted (a received folder
    # could hold any label there), so the extractor reads the answers again, into the new folder's cache
    forged = [json.loads(line) for line in cache.splitlines()]
    lie = next(v for v in ("yes", "no", "maybe") if any(r["value"] != v for r in forged))  # changes a reading
    cache_path(run, "think_qa").write_text("".join(json.dumps({**r, "value": lie}) + "\n" for r in forged))
    sent = len(_Reasoner.bodies)
    again = tmp_path / "again"
    flags = ["--parser", "model", "--extractor", extractor, "--output-dir", str(again)]
    assert cli.main(["rescore", str(run), *flags]) == 0
    assert len(_Reasoner.bodies) == sent and len(cache_path(again, "think_qa").read_text().splitlines()) == 5
    assert {k: r["prediction"] for k, r in samples_by_id(again, "think_qa").items()} == {
        k: r["prediction"] for k, r in rows.items()
    }
    # a strict run re-scored by the extractor: calls made then, cached in the new folder
    strict, fresh = tmp_path / "s", tmp_path / "fresh"
    assert cli.main([*argv, "--output-dir", str(strict)]) == 0
    assert cli.main(["rescore", str(strict), *flags[:-1], str(fresh)]) == 0
    result = json.loads((fresh / "results.json").read_text())["tasks"]["think_qa"]
    assert result["protocol"]["parser"] == "model" and result["extraction"]["extractor"] == extractor
    assert len(cache_path(fresh, "think_qa").read_text().splitlines()) == 5
    from mibe.runfolder import audit

    text = audit.render(audit.audit(fresh, []), md=False)
    assert "Extractor (--parser model) against strict:" in text
    red = tmp_path / "red"
    flags = ["--parser", "model", "--extractor", extractor, "--redact-samples", "--output-dir", str(red)]
    assert cli.main([*argv, *flags]) == 0
    assert (red / "samples" / "think_qa.jsonl").is_file() and not cache_path(red, "think_qa").exists()


def test_extractor_is_guarded_as_the_model(
    reasoner: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    task = _task(tmp_path, ["closed"], credentialed=True)
    argv = ["run", "--backend", "openai", "--base-url", reasoner, "--model", "reasoner", "--tasks", str(task)]
    remote = "openai:http://192.0.2.7:8000/v1#judge"  # TEST-NET-1: never routed
    assert (
        cli.main([*argv, "--parser", "model", "--extractor", remote, "--output-dir", str(tmp_path / "g")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # named by its own flag, with the URL=REASON that would allow it
    assert f"--extractor {remote}: refused: http://192.0.2.7:8000/v1: not a loopback address" in err, err
    assert '"http://192.0.2.7:8000/v1=<why this endpoint is allowed>"' in err and "think_qa" in err, err
    assert not _Reasoner.bodies  # refused before any document went anywhere
    assert cli.main([*argv, "--parser", "model", "--output-dir", str(tmp_path / "h")]) == 2
    assert "--parser model and --extractor MODEL go together" in capsys.readouterr().err


def test_an_endpoint_template_never_frames_loglikelihood_prompts() -> None:
    from mibe.backends.chat import ChatChoice
    from mibe.runner.templating import ChatSetup

    server = ChatSetup(ChatChoice(None, "server", None), None, {"enable_thinking": False})
    assert server.on and server.protocol()["chat_template"] == "server"
    bare = server.for_scoring("loglikelihood")
    assert not bare.on and bare.protocol()["chat_template"] is None
    assert bare.protocol()["chat_template_kwargs"] is None
    assert bare.protocol()["chat_template_source"] == "none"
    assert server.for_scoring("generate") is server


@pytest.mark.slow
def test_engines_apply_stops_themselves_unless_a_trace_may_open(thinker: Path, tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    from mibe.backends import traces
    from mibe.backends.counting import ByteTokenizer

    think = (("<think>", "</think>"),)
    plain, reasoning_model = AutoTokenizer.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(thinker)
    bare = Request("d", "Question?\nAnswer:", 8, ("\n\n",), reasoning=think)
    opened = Request("d", "Question?\nAnswer: <think>", 8, ("\n\n",), reasoning=think)
    assert traces.may_reason(plain, bare) is False  # no trace can open: the engine may stop at "\n\n"
    assert traces.may_reason(plain, opened) is True  # the prompt opened one: stops only after it
    assert traces.may_reason(reasoning_model, bare) is True  # <think> is a token of its own there
    assert traces.may_reason(ByteTokenizer(), bare) is True  # nothing to look in: assume it may
    assert traces.may_reason(plain, Request("d", "Q", 8, ("\n\n",))) is False  # paper protocol: no split
