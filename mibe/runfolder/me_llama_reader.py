"""Me-LLaMA's evaluator `--write_out` files (`<task>_write_out_info.json`, the layout of
lm-evaluation-harness 0.3): `doc_id`, `prompt_<i>`, `logit_<i>`, `truth`, checked and normalised."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe.runfolder import harness_rows
from mibe.types import MibeError

# Me-LLaMA builds each generation request as greedy_until(ctx, {"until": None}) and writes its prompt as
# "".join("".join(arg) for arg in args): joining the dict yields its key, so every prompt_0 ends in this.
ME_LLAMA_PROMPT_TAIL = "until"


def _indexed(path: Path, line: int, row: Mapping[str, Any], prefix: str) -> list[Any]:
    """prompt_0, prompt_1, ... (or logit_<i>) in order; the numbering must have no gap."""
    numbers = sorted(int(key[len(prefix) :]) for key in row if re.fullmatch(rf"{prefix}\d+", key))
    if numbers != list(range(len(numbers))):
        missing = next(i for i in range(len(numbers) + 1) if i not in numbers)
        raise MibeError(
            f"{path}:{line}: no {prefix}{missing} key; the run stopped before every request was answered, "
            "give a finished run's file"
        )
    return [row[f"{prefix}{i}"] for i in numbers]


@dataclass(frozen=True)
class _Written:
    id: str
    prompts: list[str]
    logits: list[Any]
    truth: Any
    line: int
    where: str


def parse(path: Path, text: str, choices: Sequence[str] | None) -> harness_rows.Parsed:
    written = []
    for line, row in harness_rows.objects(path, text, "me-llama"):
        doc_id = harness_rows.row_id(path, line, row, "me-llama")
        prompts = _indexed(path, line, row, "prompt_")
        logits = _indexed(path, line, row, "logit_")
        if not prompts or len(logits) != len(prompts):
            raise MibeError(
                f"{path}:{line}: {len(prompts)} prompt_<i> but {len(logits)} logit_<i> keys; "
                "the run stopped before every request was answered, give a finished run's file"
            )
        if not all(isinstance(p, str) for p in prompts):
            raise MibeError(f"{path}:{line}: a prompt_<i> is not text; give the file the harness wrote")
        truth = harness_rows.need(path, line, row, "truth", "me-llama")
        written.append(_Written(doc_id, prompts, logits, truth, line, f"{path}:{line}"))
    first = written[0]
    if len(first.prompts) == 1 and isinstance(first.logits[0], str):
        return _write_out_generation(written)
    if len(first.prompts) == 1:
        raise MibeError(
            f"{first.where}: one log-likelihood per document; mibe imports generated text "
            "or multiple choice (one log-likelihood per option)"
        )
    return _write_out_choices(path, written, choices)


def _write_out_generation(written: list[_Written]) -> harness_rows.Parsed:
    for row in written:
        if len(row.prompts) != 1 or not isinstance(row.logits[0], str):
            raise MibeError(
                f"{row.where}: doc_id {row.id} is not a generated-text row like the file's first; "
                "give one task's file"
            )
    tailed = all(row.prompts[0].endswith(ME_LLAMA_PROMPT_TAIL) for row in written)
    cut = len(ME_LLAMA_PROMPT_TAIL) if tailed else 0
    notes = (
        (f"prompt_0 ends in the text {ME_LLAMA_PROMPT_TAIL!r} that Me-LLaMA's evaluator appends; removed",)
        if tailed
        else ("prompt_0 kept as written: the 0.3 harness appends the request's stop strings to it",)
    )
    rows = [
        harness_rows.ImportedRow(
            id=row.id,
            prompt=row.prompts[0][: len(row.prompts[0]) - cut],
            raw_output=row.logits[0],
            logprobs=None,
            gold=row.truth,
            continuations=None,
            doc=None,
            where=row.where,
        )
        for row in written
    ]
    return harness_rows.Parsed(rows=rows, scoring="generate", notes=notes)


def _write_out_choices(
    path: Path, written: list[_Written], choices: Sequence[str] | None
) -> harness_rows.Parsed:
    rows = []
    for row in written:
        if len(row.prompts) == 1:
            raise MibeError(
                f"{row.where}: doc_id {row.id} has one request, the file's first has several; "
                "give one task's file"
            )
        logprobs = tuple(
            harness_rows.logprob(path, row.line, value, f"logit_{i}") for i, value in enumerate(row.logits)
        )
        context = _shared_context(row.where, row.prompts, choices)
        rows.append(
            harness_rows.ImportedRow(
                id=row.id,
                prompt=context,
                raw_output=None,
                logprobs=logprobs,
                gold=row.truth,
                continuations=tuple(p[len(context) :] for p in row.prompts),
                doc=None,
                where=row.where,
            )
        )
    note = (
        "prompt = prompt_<i> less ' ' + choice i (choices given)"
        if choices is not None
        else "prompt = the longest prefix shared by every prompt_<i>, cut before its last space "
        "(the 0.3 harness scores ' ' + choice after the prompt)"
    )
    return harness_rows.Parsed(rows=rows, scoring="loglikelihood", notes=(note,))


def _shared_context(where: str, prompts: list[str], choices: Sequence[str] | None) -> str:
    """The prompt every option was scored after: the 0.3 harness wrote prompt_i = context + " " + option."""
    if choices is not None:
        if len(choices) != len(prompts):
            raise MibeError(
                f"{where}: {len(prompts)} options scored but {len(choices)} choices given; "
                "give the option texts the harness scored"
            )
        contexts = set()
        for i, (prompt, choice) in enumerate(zip(prompts, choices, strict=True)):
            if not prompt.endswith(" " + choice):
                raise MibeError(
                    f"{where}: prompt_{i} does not end in ' {choice}'; give the option texts the harness "
                    "scored, in its order"
                )
            contexts.add(prompt[: len(prompt) - len(choice) - 1])
        if len(contexts) != 1:
            raise MibeError(f"{where}: the options were scored after different prompts; give one task's file")
        return contexts.pop()
    prefix = _common_prefix(prompts)
    cut = prefix.rfind(" ")
    if cut < 0:
        raise MibeError(
            f"{where}: the prompt_<i> share no prompt ending before a space; "
            "this is not a multiple-choice row of the 0.3 harness"
        )
    return prefix[:cut]


def _common_prefix(texts: list[str]) -> str:
    shortest, longest = min(texts), max(texts)
    for i, char in enumerate(shortest):
        if char != longest[i]:
            return shortest[:i]
    return shortest
