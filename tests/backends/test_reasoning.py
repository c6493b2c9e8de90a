"""Reasoning traces (split, stops after the trace, token stats) and chat templates (which one a run
applies, its kwargs, rendering with a thinking switch) on a tiny model built here and on
checkpoints really trained by `mibe train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mibe.backends import chat as ct
from mibe.backends.common import cut_at_stop
from mibe.backends.traces import (
    Reasoned,
    answer_offset,
    apply_stop_after_trace,
    opens_trace,
    reasoning_token_stats,
    split_reasoning,
)
from mibe.commands import train as train_cli
from mibe.prompts import template_hash
from mibe.training import provenance
from mibe.types import MibeError
from tests.support import chatmodel
from tests.support.paths import REPO

EXAMPLES = REPO / "training" / "examples"
THOUGHT = (("<|begin_of_thought|>", "<|end_of_thought|>"),)
TWO = (("<think>", "</think>"), ("<reasoning>", "</reasoning>"))


# ---- split_reasoning --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("Answer: B", {}, (None, "Answer: B", False)),
        ("\n\nyes\n", {}, (None, "\n\nyes\n", False)),  # no trace: the text exactly as it came
        ("<think>a\n\nb</think>\n\nAnswer: yes", {}, ("a\n\nb", "Answer: yes", False)),
        ("\n <think>x</think> yes", {}, ("x", "yes", False)),
        ("<think>still thinking\n\nabout", {}, ("still thinking\n\nabout", "", True)),
        ("<think></think>yes", {}, ("", "yes", False)),
        ("<think>\n\n</think>\n\nno", {}, ("", "no", False)),
        # balanced nesting: the inner pair is part of the reasoning
        ("<think> a <think> b </think> c </think> answer", {}, ("a <think> b </think> c", "answer", False)),
        ("<think> a <think> b </think> c", {}, ("a <think> b </think> c", "", True)),
        # a repeated closing tag, and a second trace after a first answer: the last close wins
        ("<think> a </think> b </think> answer", {}, ("a </think> b", "answer", False)),
        ("<think>a</think> B <think>c</think> C", {}, ("a</think> B <think>c", "C", False)),
        ("<think>a</think> B <think>c", {}, ("a", "B <think>c", False)),
        # the template opened the trace: only the closing tag appears
        ("the template opened it\n</think>\n\nyes", {}, ("the template opened it", "yes", False)),
        ("x </think> y <think> z </think> w", {}, ("x </think> y <think> z", "w", False)),
        ("no tags at all", {"opened": True}, ("no tags at all", "", True)),
        ("a</think>yes", {"opened": True}, ("a", "yes", False)),
        ("yes <think>x</think>", {}, (None, "yes <think>x</think>", False)),  # not a leading trace
        ("x <think> y </think> z", {}, (None, "x <think> y </think> z", False)),
        ("<|begin_of_thought|>t<|end_of_thought|>B", {"delimiters": THOUGHT}, ("t", "B", False)),
        ("<think>t</think>B", {"delimiters": THOUGHT}, (None, "<think>t</think>B", False)),
        ("<reasoning>r</reasoning> B", {"delimiters": TWO}, ("r", "B", False)),
        ("r</reasoning> B", {"delimiters": TWO}, ("r", "B", False)),
        # a server's separate reasoning field
        ("yes", {"reasoning_field": "thought"}, ("thought", "yes", False)),
        ("\n\nyes", {"reasoning_field": " thought\n"}, ("thought", "\n\nyes", False)),
        ("<think>x</think>yes", {"reasoning_field": ""}, ("x", "yes", False)),
        ("yes", {"reasoning_field": "  \n"}, (None, "yes", False)),
        ("<think>more</think> yes", {"reasoning_field": "first"}, ("first\nmore", "yes", False)),
        ("", {"reasoning_field": "ran out while thinking"}, ("ran out while thinking", "", False)),
    ],
)
def test_split_reasoning(text: str, kwargs: dict, expected: tuple) -> None:
    assert split_reasoning(text, **kwargs) == Reasoned(*expected)


@pytest.mark.parametrize("delimiters", [(), (("", "</think>"),), (("<think>", ""),)])
def test_bad_delimiters_are_refused(delimiters: tuple) -> None:
    with pytest.raises(ValueError, match="delimiters"):
        split_reasoning("<think>x</think>y", delimiters)


# ---- stops apply after the trace --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "stops", "opened", "expected"),
    [
        (
            "<think>\n\nstep\n\nmore</think>\n\nyes\n\nextra",
            ["\n\n"],
            False,
            "<think>\n\nstep\n\nmore</think>\n\nyes",
        ),
        ("<think>a\n\nb", ["\n\n"], False, "<think>a\n\nb"),  # unfinished: never cut
        ("<think>Question: x</think> B\nQuestion: y", ["Question:"], False, "<think>Question: x</think> B\n"),
        ("a\n\nb</think>\n\nyes\n\nz", ["\n\n"], True, "a\n\nb</think>\n\nyes"),
        ("a\n\nb", ["\n\n"], True, "a\n\nb"),
        ("<think>x</think>", ["\n\n"], False, "<think>x</think>"),
    ],
)
def test_stops_cut_the_answer_only(text: str, stops: list, opened: bool, expected: str) -> None:
    assert apply_stop_after_trace(text, stops, opened=opened) == expected


@pytest.mark.parametrize("text", ["yes\n\nno", "\n\nyes\n\nno", "yes", "", "Question: a\nQuestion: b"])
def test_without_a_trace_the_stop_rule_is_mibes(text: str) -> None:
    stops = ["\n\n", "Question:"]
    assert apply_stop_after_trace(text, stops) == cut_at_stop(text, stops)


def test_answer_offset_while_streaming() -> None:
    text = "<think>a\n\nb</think>\n\nyes"
    offsets = [answer_offset(text[:n]) for n in range(len(text) + 1)]
    close = text.index("</think>") + len("</think>")
    assert all(o is None for o in offsets[1:close]) and set(offsets[close:]) == {close}
    assert answer_offset("plain") == 0 and answer_offset("a</think>b", opened=True) == 1 + len("</think>")


# ---- token stats ------------------------------------------------------------------------------------
@pytest.mark.parametrize("counts", [[3], [10, 0, 7, 250], [1, None, 5, None], [2**20, 1]])
def test_reasoning_token_stats_equal_numpy(counts: list) -> None:
    kept = np.array([c for c in counts if c is not None])
    stats = reasoning_token_stats(counts)
    p95 = float(np.percentile(kept, 95))
    assert stats == {
        "mean": pytest.approx(float(kept.mean())),
        "p95": pytest.approx(p95),
        "max": int(kept.max()),
    }


def test_reasoning_token_stats_edges() -> None:
    assert (
        reasoning_token_stats([]) == reasoning_token_stats([None]) == {"mean": None, "p95": None, "max": None}
    )
    # p95 by hand: sorted 0, 7, 10, 250; position 0.95 * 3 = 2.85 -> 10 + 0.85 * (250 - 10)
    assert reasoning_token_stats([10, 0, 7, 250])["p95"] == pytest.approx(214.0)
    with pytest.raises(ValueError, match=">= 0"):
        reasoning_token_stats([3, -1])


# ---- a tiny model with a thinking switch ------------------------------------------------------------
@pytest.fixture(scope="module")
def thinking(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    folder = chatmodel.build(tmp_path_factory.mktemp("thinking"), REPO)
    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize(
    ("kwargs", "system", "expected"),
    [
        ({}, None, "<|user|>\nIs it?\n<|assistant|>\n"),
        ({"enable_thinking": True}, None, "<|user|>\nIs it?\n<|assistant|>\n"),
        ({"enable_thinking": False}, None, "<|user|>\nIs it?\n<|assistant|>\n<think>\n\n</think>\n\n"),
        ({"enable_thinking": False}, "Be brief.", "<|system|>\nBe brief.\n<|user|>\nIs it?\n<|assistant|>\n"
         "<think>\n\n</think>\n\n"),
    ],
)  # fmt: skip
def test_render_chat_with_the_thinking_switch(
    thinking, kwargs: dict, system: str | None, expected: str
) -> None:
    assert ct.render_chat(thinking.chat_template, "Is it?", system, kwargs, thinking) == expected
    assert not opens_trace(expected)  # a closed empty trace: the output starts with the answer


def test_a_template_that_opens_the_trace(thinking) -> None:
    template = chatmodel.chat_template(opens_trace=True)
    on = ct.render_chat(template, "Is it?", None, {}, thinking)
    off = ct.render_chat(template, "Is it?", None, {"enable_thinking": False}, thinking)
    assert on.endswith("<|assistant|>\n<think>\n") and opens_trace(on) and not opens_trace(off)
    assert split_reasoning("hmm", opened=opens_trace(on)) == Reasoned("hmm", "", True)


def test_delimiters_survive_the_backends_decoding(thinking) -> None:
    # Backends decode with skip_special_tokens=True: added, non-special tags must come through.
    text = "<think>\nWeigh it.\n\nYes.\n</think>\n\nAnswer: yes"
    ids = thinking(text, add_special_tokens=False).input_ids
    assert thinking.convert_tokens_to_ids("<think>") in ids
    decoded = thinking.decode(ids, skip_special_tokens=True)
    assert split_reasoning(decoded) == Reasoned("Weigh it.\n\nYes.", "Answer: yes", False)


def test_a_failing_template_is_one_line(thinking) -> None:
    broken = "{{ raise_exception('only user turns, please') }}"
    with pytest.raises(MibeError, match="only user turns, please") as err:
        ct.render_chat(broken, "Is it?", None, {}, thinking)
    assert "\n" not in str(err.value)


# ---- --chat-template-kwargs -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ("  ", {}),
        ('{"enable_thinking": false}', {"enable_thinking": False}),
        (
            '{"enable_thinking": true, "reasoning_effort": "low"}',
            {"enable_thinking": True, "reasoning_effort": "low"},
        ),
    ],
)
def test_chat_template_kwargs(text: str | None, expected: dict) -> None:
    assert ct.parse_kwargs(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{enable_thinking: false}", "--chat-template-kwargs: not valid JSON"),
        ("[1, 2]", "--chat-template-kwargs: a JSON list, not an object"),
        ('"x"', "a JSON str, not an object"),
        ('{"add_generation_prompt": false, "tokenize": true}', "add_generation_prompt, tokenize set by mibe"),
        ('{"a": ' + "9" * 5000 + "}", "JSON that cannot be read"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON that cannot be read"),
    ],
)
def test_bad_chat_template_kwargs_are_one_line(text: str, message: str) -> None:
    with pytest.raises(MibeError, match=message) as err:
        ct.parse_kwargs(text)
    assert "\n" not in str(err.value)


# ---- which template a run applies -------------------------------------------------------------------
BASE = "{{ messages[0]['content'] }}"


@pytest.mark.parametrize(
    ("choice", "protocol", "tokenizer_template", "expected"),
    [
        (None, "mibe", BASE, (BASE, "tokenizer")),
        ("auto", "mibe", BASE, (BASE, "tokenizer")),
        (None, "paper", BASE, (None, "none")),
        ("auto", "paper", BASE, (BASE, "tokenizer")),  # asked for explicitly
        ("none", "mibe", BASE, (None, "none")),
        (None, "mibe", None, (None, "none")),
        ("auto", "mibe", "", (None, "none")),
    ],
)
def test_resolve_without_a_training_record(choice, protocol, tokenizer_template, expected) -> None:
    chosen = ct.resolve_chat_template(choice, protocol, None, tokenizer_template)
    template, source = expected
    assert chosen == ct.ChatChoice(template, source, template_hash(template) if template else None)


def test_resolve_a_template_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.jinja"
    path.write_text(chatmodel.chat_template(), encoding="utf-8")
    for protocol in ("mibe", "paper"):
        chosen = ct.resolve_chat_template(str(path), protocol, None, BASE)
        assert chosen == ct.ChatChoice(
            chatmodel.chat_template(), "file", template_hash(chatmodel.chat_template())
        )
    (tmp_path / "empty.jinja").write_text("\n")
    for name, message in (("missing.jinja", "no such file"), ("empty.jinja", "the file is empty")):
        with pytest.raises(MibeError, match=f"--chat-template {tmp_path / name}: {message}") as err:
            ct.resolve_chat_template(str(tmp_path / name), "mibe", None, BASE)
        assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def trained(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-step `mibe train` runs: task tuning (no template, the recipe's default), SFT with the
    tokenizer's template (auto) and SFT with a template file."""
    root = tmp_path_factory.mktemp("trained")
    template = root / "thinking.jinja"
    template.write_text(chatmodel.chat_template(), encoding="utf-8")
    common = ["--model", str(tiny_llama), "--max-steps", "1", "--set", f"cache_dir={root / 'cache'}"]
    runs = {
        "task": ["task", "pubmedqa", "--config", str(EXAMPLES / "tiny-task.yaml")],
        "sft": ["sft", "--config", str(EXAMPLES / "tiny-sft.yaml")],
        "sft-file": [
            "sft",
            "--config",
            str(EXAMPLES / "tiny-sft.yaml"),
            "--set",
            f"chat_template={template}",
        ],
    }
    for name, args in runs.items():
        train_cli.main([*args, *common, "--output-dir", str(root / name)])
    return {name: root / name for name in runs}


def _tokenizer_template(folder: Path) -> str | None:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder).chat_template


@pytest.mark.slow
def test_a_checkpoint_trained_without_a_template_gets_none(
    trained: dict[str, Path], tiny_llama: Path
) -> None:
    folder = trained["task"]
    kept = _tokenizer_template(folder)
    assert kept and kept == _tokenizer_template(tiny_llama)  # the base's template is still in the tokenizer
    record = ct.training_record(str(folder))
    assert record == provenance.read(folder) and record["chat_template"] is None
    for choice in (None, "auto"):
        assert ct.resolve_chat_template(choice, "mibe", record, kept) == ct.ChatChoice(None, "training", None)
    # Explicit choices still win.
    assert ct.resolve_chat_template(None, "paper", record, kept).source == "none"
    assert ct.resolve_chat_template("none", "mibe", record, kept).source == "none"


@pytest.mark.slow
@pytest.mark.parametrize(("run", "expected"), [("sft", None), ("sft-file", chatmodel.chat_template())])
def test_a_checkpoint_trained_with_a_template_gets_it(
    trained: dict[str, Path], tiny_llama: Path, run, expected
) -> None:
    folder = trained[run]
    saved = _tokenizer_template(folder)
    expected = expected or _tokenizer_template(tiny_llama)
    assert saved == expected
    record = ct.training_record(str(folder))
    assert record["chat_template"]["sha256"] == ct.training_digest(saved)
    chosen = ct.resolve_chat_template("auto", "mibe", record, saved)
    assert chosen == ct.ChatChoice(expected, "training", template_hash(expected))


@pytest.mark.slow
def test_a_tokenizer_edited_after_training_is_refused(trained: dict[str, Path]) -> None:
    record = ct.training_record(str(trained["sft-file"]))
    for edited, have in ((BASE, ct.training_digest(BASE)), (None, "no template")):
        with pytest.raises(MibeError, match=f"tokenizer has {have}; restore") as err:
            ct.resolve_chat_template("auto", "mibe", record, edited)
        assert "\n" not in str(err.value)
    assert ct.resolve_chat_template("none", "mibe", record, BASE).template is None


def test_an_unreadable_training_record_is_refused_under_auto(tmp_path: Path) -> None:
    assert ct.training_record(str(tmp_path)) is None and ct.training_record(None) is None
    (tmp_path / provenance.FILE).write_text("{not json")
    record = ct.training_record(str(tmp_path))
    assert record == {"unreadable": str(tmp_path / provenance.FILE)}
    with pytest.raises(MibeError, match="unreadable, so --chat-template auto cannot tell"):
        ct.resolve_chat_template(None, "mibe", record, BASE)
    assert ct.resolve_chat_template(None, "paper", record, BASE).source == "none"
    (tmp_path / provenance.FILE).write_text(json.dumps({"chat_template": "inline text"}))
    with pytest.raises(MibeError, match="is not a recorded template"):
        ct.resolve_chat_template("auto", "mibe", ct.training_record(str(tmp_path)), BASE)


@pytest.mark.slow
def test_training_auto_follows_the_same_rule(trained: dict[str, Path]) -> None:
    """`mibe train`'s `chat_template: auto` on a base mibe trained reads its record as `mibe run` does:
    a base trained without a template gets the shipped default for SFT, not its tokenizer's."""
    from transformers import AutoTokenizer

    from mibe.training import examples

    bare = trained["task"]
    text, source = examples.chat_template("auto", AutoTokenizer.from_pretrained(bare), str(bare))
    assert source.endswith("default.jinja") and text != _tokenizer_template(bare)
    chatty = trained["sft-file"]
    text, source = examples.chat_template("auto", AutoTokenizer.from_pretrained(chatty), str(chatty))
    assert (text, source) == (chatmodel.chat_template(), "training")


@pytest.mark.parametrize(
    ("text", "reasoning", "answer"),
    [
        ("Tylenol #3 caf\ufffd", (), "Tylenol #3 caf"),  # the cap fell inside "é": the piece goes
        ("yes\ufffd\ufffd", (), "yes"),  # a 4-byte character cut after two bytes
        ("caf\ufffd au lait", (), "caf\ufffd au lait"),  # only the tail: a U+FFFD inside is kept
        ("no\n\nmore\ufffd", (), "no"),  # the stop rule still applies
        ("<think>hm\ufffd", (("<think>", "</think>"),), "<think>hm"),  # also inside a trace
    ],
)
def test_every_backend_ends_an_answer_cut_inside_a_character_alike(
    text: str, reasoning: tuple, answer: str
) -> None:
    from mibe.backends import traces
    from mibe.types import Request

    request = Request("d", "Question?", 8, ("\n\n",), reasoning=reasoning)
    assert traces.cut_request(text, request) == answer
