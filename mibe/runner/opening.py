"""What a run says before its first request: the protocol that matters for reading its numbers.

The same checkpoint and prompts give other numbers with and without a chat template, under another
parser, with shots or by log-likelihood; a user coming from lm-evaluation-harness (whose default is no
template) must see which of them this run applies, and where each came from, before any number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mibe.runner import templating
from mibe.types import RunConfig, is_paper


def template_phrase(setup: templating.ChatSetup, config: RunConfig) -> str:
    """The chat template in force and who decided it, in words."""
    choice, flag = setup.choice, templating.setting(config.chat_template)
    if choice.source == templating.SERVER:
        return "chat template: the endpoint's own, if it has one (the server renders it; mibe cannot see it)"
    by = "--chat-template auto, the default of --protocol mibe" if flag is None else f"--chat-template {flag}"
    if choice.template is None:
        if flag is None and is_paper(config.protocol):
            why = f"--protocol {config.protocol}"
        elif choice.source == "training":
            why = f"{by}: the checkpoint's training record says it trained without one"
        elif flag in (None, "auto"):
            why = f"{by}: the tokenizer has none"
        else:
            why = by
        return f"no chat template ({why})"
    whose = {"training": "the one the checkpoint trained with", "tokenizer": "the tokenizer's own"}
    return f"chat template applied: {whose.get(choice.source, 'the file')} {choice.sha256} ({by})"


def _scoring(plans: Sequence[Any], config: RunConfig) -> str:
    by: dict[str, list[str]] = {}
    for p in plans:
        by.setdefault(p.protocol["scoring"], []).append(p.task.name)
    if is_paper(config.protocol):
        limits = f"{config.max_new_tokens or 256} new tokens, no stop strings"
    elif config.max_new_tokens:
        limits = f"--max-new-tokens {config.max_new_tokens}, each task file's stop strings"
    else:
        limits = "each task file's max_new_tokens and stop strings"
    words = {
        "generate": f"generated answers ({limits})",
        "loglikelihood": "the likeliest choice by log-likelihood",
    }
    if len(by) == 1:
        return words[next(iter(by))]
    return "; ".join(f"{words[s]} for {', '.join(names)}" for s, names in by.items())


def _parsers(plans: Sequence[Any]) -> str:
    named: dict[str, str] = {}
    for p in plans:
        name = p.protocol["parser"]
        if p.protocol["scoring"] == "generate" and name not in named:
            named[name] = f"model ({p.protocol['extractor']})" if name == "model" else name
    return f"{' and '.join(named.values())} parser" if named else "no parser (log-likelihood)"


def _shots(config: RunConfig) -> str:
    if not config.num_fewshot:
        return "zero-shot"
    if config.fewshot_seeds:
        return f"{config.num_fewshot} shots, drawn once per seed {', '.join(map(str, config.fewshot_seeds))}"
    return f"{config.num_fewshot} shots (seed {config.seed})"


def lines(config: RunConfig, plans: Sequence[Any], setup: templating.ChatSetup) -> list[str]:
    """One line with the protocol; a second where a template is applied, for lm-eval users."""
    said = [
        f"mibe: protocol {config.protocol}: {template_phrase(setup, config)}; {_parsers(plans)}; "
        f"{_shots(config)}; {_scoring(plans, config)}"
    ]
    if setup.on and any(p.protocol["chat_template"] for p in plans):
        said.append(
            "mibe: lm-evaluation-harness applies no chat template unless asked: to compare with an "
            "lm_eval number, run with --chat-template none (docs/from-lm-eval.md)"
        )
    return said
