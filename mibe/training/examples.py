"""Instruction examples: SFT rows (conversations / Alpaca) and a MIBE task's training documents,
each as segments of prompt and response text, then token ids with response-only labels."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mibe.log import logger
from mibe.training import conversations, sources
from mibe.training import recipe as recipes
from mibe.types import Doc, MibeError, Task

if TYPE_CHECKING:  # mibe.data is imported where a task is trained on, as before, not with this module
    from mibe.data import DocSet, Location

Example = dict[str, Any]  # segments, the prompt text (for the guard) and every text (for the guard)


class NoTrainingRows(MibeError):
    """A task has no training rows where mibe looked (`train task all` skips it)."""


def chat_template(setting: str, tokenizer: Any, base: str | None = None) -> tuple[str | None, str]:
    """The template text and where it came from: none, the tokenizer's, a shipped name, a file, inline.

    `auto` follows `mibe run`'s rule (mibe.backends.chat.resolve_chat_template): the base model's own
    training record first (a checkpoint mibe trained without a template has none, although its
    tokenizer kept its base's), else the tokenizer's; where that finds none, the shipped default."""
    if setting == "none":
        return None, "none"
    if setting == "auto":
        from mibe.backends import chat

        try:
            record = chat.training_record(base)
            found = chat.resolve_chat_template("auto", "mibe", record, tokenizer.chat_template)
        except MibeError as exc:
            raise MibeError(f"recipe key chat_template auto: {exc}") from None
        if found.template is not None:
            return found.template, found.source
        setting = "default"
    if "{%" in setting or "{{" in setting:
        return setting, "inline"
    path = Path(setting).expanduser()
    if not path.is_file():
        path = recipes.shipped_dir() / "chat_templates" / f"{setting}.jinja"
    if not path.is_file():
        known = sorted(p.stem for p in (recipes.shipped_dir() / "chat_templates").glob("*.jinja"))
        raise MibeError(
            f"chat_template {setting}: no such file; use auto, none, a .jinja file or one of "
            + ", ".join(known)
        )
    return path.read_text(encoding="utf-8"), str(path)


def _renderer(tokenizer: Any, template: str) -> Callable[[Sequence[dict[str, str]], bool], str]:
    """The chat template applied as text, the shape `conversations.chat_segments` renders with."""

    def render(messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            list(messages),
            chat_template=template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    return render


def _row_example(row: Any, render: Callable, where: str, index: int) -> Example:
    """One SFT row as an example; ValueError names the row and what is wrong with it."""
    try:
        messages = conversations.to_messages(row)
        segments = conversations.chat_segments(messages, render)
    except ValueError as exc:
        raise ValueError(f"{where} row {index + 1}: {exc}") from None
    except Exception as exc:  # a chat template raising on this conversation's roles
        raise ValueError(f"{where} row {index + 1}: the chat template refused it ({exc})") from None
    users = [m["content"] for m in messages if m["role"] == "user"]
    ident = row.get("id")
    return {
        "segments": segments,
        "prompt": users[0],
        "texts": [m["content"] for m in messages],
        "id": None if ident is None else str(ident),
        "layout": conversations.layout(row),
    }


def weighted(made: list[Example], weight: float, seed: int) -> list[Example]:
    """round(weight x rows) rows: every row floor(weight) times, then a seeded sample for the rest."""
    wanted = round(weight * len(made))
    whole, rest = divmod(wanted, len(made)) if made else (0, 0)
    return made * whole + random.Random(seed).sample(made, rest)


def _source_examples(spec: Any, number: int, recipe: dict[str, Any], render: Callable, cache: Path):
    source = sources.check(spec, Path.cwd(), f"recipe key data[{number}]")
    rows, info = sources.load_rows(source, cache / "datasets")
    where = source.get("path") or source.get("hub")
    made, skipped, first = [], 0, None
    for index, row in enumerate(rows):
        try:
            made.append(_row_example(row, render, where, index))
        except ValueError as exc:
            skipped += 1
            first = first or str(exc)
    weight = float(source.get("weight", 1))
    used = weighted(made, weight, recipe["seed"] + number)
    layouts = dict(Counter(e["layout"] for e in made))
    info.update(weight=weight, usable_rows=len(made), used_rows=len(used), layouts=layouts)
    info.update(skipped_rows=skipped, first_problem=first)
    why = f"; {skipped} unusable (first: {first})" if skipped else ""
    logger.info(f"mibe: {where}: {len(used)} rows used of {info['rows']} (weight {weight:g}, {layouts}{why})")
    return used, info, skipped, first


def sft_examples(recipe: dict[str, Any], template: str | None, tokenizer: Any, cache: Path):
    """Rows of every data source, as examples; (examples, manifest, skipped, first problem).

    Each source may carry a `weight` (default 1): it then gives round(weight x its usable rows)."""
    if template is None:
        raise MibeError(
            "chat_template none: instruction rows need a chat template; use auto or a .jinja file"
        )
    listed = recipe["data"] if isinstance(recipe["data"], list) else [recipe["data"]]
    render = _renderer(tokenizer, template)
    examples: list[Example] = []
    manifest, skipped, first = [], 0, None
    for number, spec in enumerate(listed):
        used, info, bad, problem = _source_examples(spec, number, recipe, render, cache)
        examples += used
        manifest.append(info)
        skipped += bad
        first = first or problem
    return examples, manifest, skipped, first


def _task_docs(task: Task, recipe: dict[str, Any]) -> tuple[DocSet, Location]:
    """The task's training documents and where they were read; (docset, location)."""
    from mibe import data

    where, split = recipe.get("data"), recipe["split"]
    how = f"pass --data PATH (a file of {task.name} training rows, or a folder with {split}.jsonl/.csv/...)"
    try:
        if where is None:
            location = data.locate(task, None, {})
        elif Path(where).expanduser().exists():
            location = data.Location("local", str(Path(where).expanduser().resolve()))
        else:  # the task file's own hub source is used when data is unset; other ids are not read here
            raise MibeError(f"--data {where}: no such file or folder; {how}")
        docset = data.load_docs(task, location, split)
    except data.NoData as exc:
        # Its advice names `mibe run` flags; training takes --data instead.
        reason = str(exc).split("; point mibe")[0]
        raise NoTrainingRows(f"no '{split}' training rows: {reason}; {how}") from None
    if not docset.docs:
        raise MibeError(f"{location.where}: no usable {task.name} rows ({docset.first_problem})")
    return docset, location


def _task_example(task: Task, doc: Doc, template: str | None, tokenizer: Any, budget: int) -> Example:
    """One document as `mibe run` prompts it zero-shot, answered as a few-shot block answers it."""
    from mibe import prompts

    def count(text: str) -> int:
        return len(tokenizer(text).input_ids)

    def detokenize(ids: Sequence[int]) -> str:
        return tokenizer.decode(list(ids), skip_special_tokens=True)

    answer = prompts.shot_answer(doc)
    # The document is shortened so that the prompt and the whole answer fit in max_length.
    room = budget - len(tokenizer(" " + answer, add_special_tokens=False).input_ids) - 2
    prompt, _ = prompts.fit(
        task.template, doc, [], task.truncate, count, lambda t: tokenizer(t).input_ids, detokenize, room
    )
    if template is None:
        segments = conversations.plain_segments(prompt, answer)
    else:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        segments = conversations.chat_segments(messages, _renderer(tokenizer, template))
    return {"segments": segments, "prompt": prompt, "texts": [prompt, answer], "id": str(doc.id)}


def _task_manifest(task: Task, docset: DocSet, split: str) -> dict[str, Any]:
    """What the provenance file records of the task data: the task file, its source and fingerprint."""
    return {
        "task": task.name,
        "task_file": str(task.path),
        "task_file_hash": task.file_hash,
        "template_hash": task.template_hash,
        "source": docset.source,
        "split": split,
        "fingerprint": docset.fingerprint,
        "documents": len(docset.docs),
    }


def task_examples(recipe: dict[str, Any], template: str | None, tokenizer: Any):
    """A MIBE task's training documents rendered with its own template, answered with its gold text.

    The prompt is exactly what `mibe run` sends for the document (zero-shot, the task's template,
    the document text shortened the same way when it is too long); the answer is written as a
    few-shot block writes it. Returns (task, examples, manifest, skipped, first problem, location).
    """
    from mibe import tasks

    (task,), _ = tasks.resolve([recipe["task"]])
    docset, location = _task_docs(task, recipe)
    examples = [_task_example(task, doc, template, tokenizer, recipe["max_length"]) for doc in docset.docs]
    manifest = _task_manifest(task, docset, recipe["split"])
    logger.info(f"mibe: {task.name}: {len(docset.docs)} training documents from {docset.source}")
    return task, examples, manifest, docset.n_skipped, docset.first_problem, location


def tokenised(examples: Sequence[Example], tokenizer: Any, max_length: int) -> tuple[list[dict], int]:
    """Token ids and labels for every example that keeps a response token; (rows, dropped)."""
    rows, dropped = [], 0
    for example in examples:
        encoded = conversations.tokenise(example["segments"], tokenizer, max_length)
        if encoded is None:
            dropped += 1
        else:
            rows.append(encoded)
    return rows, dropped
