"""A task's plan, fixed before anything is sent to the model: the documents it scores and its protocol,
the record of every setting that changes a score (results.json `protocol`; resume reuses samples only
under the same one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mibe import data, prompts
from mibe.runner import templating
from mibe.scoring import kinds
from mibe.types import Backend, Doc, RunConfig, Task, is_paper


@dataclass(frozen=True)
class Plan:
    """What a task will send to the model, before anything is sent."""

    task: Task
    docset: data.DocSet
    docs: list[Doc]
    protocol: dict[str, Any]
    chat: templating.ChatSetup | None = None  # None: resolved from the config when requests are built
    extractor: Any = None  # --parser model: the loaded mibe.runner.extract.Extractor
    draw: int | None = None  # the shot seed of one few-shot draw (mibe/runner/shot_draws.py); None: --seed
    permutation: int | None = None  # the rotation of a letter task's options (mibe/runner/permutations.py)


def scoring_for(task: Task, config: RunConfig) -> str:
    # Only tasks with a closed label set can be scored by comparing the choices' likelihoods.
    if config.scoring == "loglikelihood" and kinds.get(task.answer_type).single:
        return "loglikelihood"
    return "generate"


def generation_for(task: Task, config: RunConfig) -> tuple[int, tuple[str, ...]]:
    if is_paper(config.protocol):  # the paper's scripts: 256 new tokens, no stop strings
        max_new, stop = 256, ()
    else:
        max_new, stop = task.max_new_tokens, task.stop
    return (config.max_new_tokens or max_new), stop


def plan(
    task: Task,
    docset: data.DocSet,
    config: RunConfig,
    backend: Backend,
    pool: Sequence[Doc] | None = None,
    setup: templating.ChatSetup | None = None,
    extractor: Any = None,
    shot_source: str | None = None,
) -> Plan:
    """The task's protocol: resume reuses samples only under the same one. It holds the documents and the
    few-shot pool as the hook produced them, so a changed hook or split never mixes two versions."""
    docs = docset.docs[: config.limit] if config.limit is not None else docset.docs
    shots_from = data.docs_fingerprint(pool) if config.num_fewshot and pool is not None else None
    max_new, stop = generation_for(task, config)
    scoring = scoring_for(task, config)
    setup = (setup or templating.resolve(config, backend)).for_scoring(scoring)
    chat = setup.protocol()
    protocol = {
        "task": task.name,
        "task_version": task.version,
        "task_file_hash": task.file_hash,
        "template_hash": task.template_hash,
        "data": {
            "fingerprint": docset.fingerprint,
            "n_rows": len(docset.docs),
            "documents": data.docs_fingerprint(docset.docs),
            "fewshot_pool": shots_from,
        },
        "split": task.split,
        "limit": config.limit,
        "shots": config.num_fewshot,
        "fewshot_seed": config.seed if config.num_fewshot and not config.fewshot_seeds else None,
        "scoring": scoring,
        "parser": config.resolved_parser if scoring == "generate" else "argmax-loglikelihood",
        "scorer_version": kinds.scorer_version(task.answer_type, config.resolved_parser)
        if scoring == "generate"
        else 1,
        "chat_template": chat.pop("chat_template"),
        "system_prompt": chat.pop("system_prompt"),
        "max_new_tokens": max_new if scoring == "generate" else None,
        "stop": list(stop) if scoring == "generate" else None,
        **chat,
        "reasoning": templating.reasoning(config, scoring),
        "credentialed": task.credentialed,  # readers that show text decide from this, not a task file
    }
    if config.num_fewshot:  # only then (null at 0 shots): zero-shot folders keep resuming as they were
        protocol["shot_source"] = shot_source or "evaluation"
    if config.fewshot_seeds:  # only then, so run folders written before draws existed still resume
        protocol["fewshot_seeds"] = list(config.fewshot_seeds)
    if config.choice_permutations > 1 and task.answer_type == "letter":  # as fewshot_seeds: only then
        prompts.check_permutable(task.name, docs, task.choices, config.choice_permutations)
        protocol["choice_permutations"] = config.choice_permutations
    if protocol["parser"] == "model" and not kinds.get(task.answer_type).labelled:
        protocol["parser"] = "strict"  # the extractor maps answers to labels; free text reads as strict
    if protocol["parser"] == "model":
        protocol["extractor"] = config.extractor
    return Plan(task, docset, docs, protocol, setup, extractor if protocol["parser"] == "model" else None)


def score_parser(p: Plan) -> str:
    """The parser scoring reads rows with: a log-likelihood row holds a choice itself, read as strict."""
    return p.protocol["parser"] if p.protocol["scoring"] == "generate" else "strict"
