"""A run says its protocol before its first request (mibe/runner/opening.py), and its warnings know what
was already in force: a template applied by `--chat-template auto` is never suggested again."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mibe import cli
from mibe.runner import api, pipeline
from mibe.types import RunConfig
from tests.support import logs
from tests.support.loopback import JSONHandler, serving

EVENTS: list[str] = []  # what the run said and when the endpoint was first asked, in order
LOCK = threading.Lock()


class _Echo(JSONHandler):
    def do_GET(self) -> None:
        self._reply({"data": [{"id": "echo", "max_model_len": 100000}]})

    def do_POST(self) -> None:
        with LOCK:
            EVENTS.append("REQUEST")
            text = "yes" if EVENTS.count("REQUEST") == 1 else "unsure"  # names no label: no answer
        self._reply({"choices": [{"index": 0, "text": text}]})


def test_a_paper_run_says_its_protocol_before_the_first_request(tmp_path: Path) -> None:
    EVENTS.clear()
    with serving(_Echo) as url:
        config = RunConfig(
            model="echo", backend="openai", base_url=url, tasks=("pubmedqa",), demo=True, protocol="paper",
            output_dir=str(tmp_path / "run"), limit=2,
        )  # fmt: skip
        with logs.collected(EVENTS):
            api.run(config)
    first = EVENTS.index("REQUEST")
    said = [e for e in EVENTS[:first] if e.startswith("mibe: protocol")]
    assert said == [
        "mibe: protocol paper: no chat template (--protocol paper); paper parser; zero-shot; "
        "generated answers (256 new tokens, no stop strings)"
    ]
    assert not any("lm_eval" in e for e in EVENTS)  # no template applied: nothing to reconcile
    # no answer is out of band: null with parse_failed, a null column of the confusion matrix
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples" / "pubmedqa.jsonl").read_text().splitlines()]
    assert sorted(r["raw_output"] for r in rows) == ["unsure", "yes"]
    (none,) = [r for r in rows if r["raw_output"] == "unsure"]
    assert (
        none["prediction"] is None
        and none["parse_failed"] is True
        and '"prediction": null' in json.dumps(none)
    )
    entry = json.loads((tmp_path / "run" / "results.json").read_text())["tasks"]["pubmedqa"]
    assert entry["metrics"]["missing_rate"]["value"] == 0.5 and entry["parse_failures"] == 1
    confusion = entry["per_class"]["confusion"]
    assert confusion["labels"][-1] is None and sum(row[-1] for row in confusion["matrix"]) == 1


@pytest.mark.parametrize(
    ("flags", "template", "lm_eval"),
    [
        # the tiny model's tokenizer has a template: auto (the default) applies it, and says so
        ([], "chat template applied: the tokenizer's own ", True),
        (["--chat-template", "none"], "no chat template (--chat-template none)", False),
        (["--protocol", "paper"], "no chat template (--protocol paper)", False),
    ],
)
def test_the_opening_lines_say_the_template_and_where_it_came_from(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str], flags: list[str], template: str, lm_eval: bool
) -> None:
    argv = ["run", "--model", str(tiny_llama), "--demo", "--tasks", "pubmedqa,emrqa", "--dry-run"]
    assert cli.main([*argv, "--scoring", "loglikelihood", "--num-fewshot", "1", *flags]) == 0
    lines = capsys.readouterr().err.splitlines()
    (line,) = [x for x in lines if x.startswith("mibe: protocol")]
    assert template in line
    if not flags:
        assert "(--chat-template auto, the default of --protocol mibe)" in line
    parser = "paper parser" if "paper" in flags else "strict parser"
    assert f"; {parser}; 1 shots (seed 1234); the likeliest choice by log-likelihood for pubmedqa; " in line
    assert line.endswith("for emrqa")  # a span task is generated even under --scoring loglikelihood
    assert any("--chat-template none" in x and "lm_eval" in x for x in lines) == lm_eval


def _plan(chat_template: str | None, stop: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        protocol={"scoring": "generate", "stop": stop, "max_new_tokens": 8, "chat_template": chat_template}
    )


ROWS = [{"raw_output": f"text {i}", "cut_at_limit": True, "prompt": "Q: x\nAnswer:"} for i in range(5)]


@pytest.mark.parametrize(
    ("protocol", "template", "stop", "has", "lacks"),
    [
        # auto applied a template though the flag was never given: never "try --chat-template"
        ("mibe", "0123456789abcdef", ["\n\n"], ["inside the chat template applied"], ["--chat-template"]),
        ("mibe", None, ["\n\n"], ["try --chat-template"], []),
        # the paper's protocol sends no stop strings: the task file's generation.stop is not the fix
        ("paper", None, [], ["--protocol paper uses no stop string"], ["add generation.stop"]),
        ("mibe", None, [], ["add generation.stop"], []),
    ],
)
def test_the_cut_at_the_limit_warning_knows_what_was_in_force(
    protocol: str, template: str | None, stop: list[str], has: list[str], lacks: list[str]
) -> None:
    config = RunConfig(model="m", protocol=protocol)  # chat_template None: the protocol's default
    (line,) = pipeline._warnings(_plan(template, stop), config, ROWS)  # type: ignore[arg-type]
    assert line.startswith("5 of 5 outputs were cut at the 8-token limit")
    assert all(h in line for h in has) and not any(x in line for x in lacks), line


@pytest.mark.parametrize(
    ("options", "reasoning", "said"),
    [
        ({"protocol": "paper"}, None, "--protocol paper's 256"),  # not the task file's cap, not in force
        ({}, None, "the task file's generation.max_new_tokens"),
        ({"max_new_tokens": 64}, {"budget": 100}, "--max-new-tokens + --reasoning-budget 100"),
    ],
)
def test_an_answer_cap_that_fills_the_context_names_where_the_cap_came_from(
    options: dict, reasoning: dict | None, said: str
) -> None:
    plan = SimpleNamespace(protocol={"reasoning": reasoning})
    assert pipeline._cap_source(plan, RunConfig(model="m", **options)) == said  # type: ignore[arg-type]
