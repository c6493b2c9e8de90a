"""`mibe tasks new` (a commented task file, template and one invented row to start from) and
`mibe tasks show` (a task's first document, rendered, from data that is already on this machine).

The written files validate and run as they are: `mibe tasks validate NAME.yaml`, then
`mibe run --model M --tasks NAME.yaml`. docs/task-files.md describes every key they hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe import data, names, prompts, resources, tasks
from mibe.scoring import kinds
from mibe.types import TASK_NAME, MibeError, Task


@dataclass(frozen=True)
class Starter:
    """What `tasks new` writes for one answer kind: the question, the row and the task's settings."""

    instruction: str
    fields: str  # the template lines that show the row's fields
    row: dict[str, Any]
    target: str
    choices: tuple[str, ...]
    max_new_tokens: int
    metrics: tuple[str, ...]


STARTERS: dict[str, Starter] = {
    "choice": Starter(
        "Does the finding answer the question? Answer with yes, no or maybe.",
        "Question: {{ question }}\nFinding: {{ finding }}",
        {"question": "Does the daily walk lower resting heart rate?",
         "finding": "Resting heart rate fell by 4 beats per minute after eight weeks of daily walks.",
         "label": "yes"},
        "label", ("yes", "no", "maybe"), 8, kinds.KINDS["choice"].metrics,
    ),
    "letter": Starter(
        "Answer the question with the letter of the best option.",
        # The options as a list the template prints, so --choice-permutations can reorder them.
        "Question: {{ question }}\nOptions:\n"
        "{% for o in options %}{{ 'ABCD'[loop.index0] }}. {{ o }}\n{% endfor -%}",
        {"question": "Which vitamin is made in the skin in sunlight?",
         "options": ["Vitamin A", "Vitamin C", "Vitamin D", "Vitamin K"], "label": "C"},
        "label", ("A", "B", "C", "D"), 8, kinds.KINDS["letter"].metrics,
    ),
    "multi_label": Starter(
        "Name every symptom the note mentions, separated by ; (fever, cough, rash).",
        "Note: {{ note }}",
        {"note": "The child has had a fever and a dry cough for two days.", "labels": ["fever", "cough"]},
        "labels", ("fever", "cough", "rash"), 16, kinds.KINDS["multi_label"].metrics,
    ),
    "span": Starter(
        "Copy the words of the note that answer the question.",
        "Note: {{ note }}\nQuestion: {{ question }}",
        {"note": "Take one tablet twice a day with food.", "question": "How often is the tablet taken?",
         "answer": "twice a day"},
        "answer", (), 16, kinds.KINDS["span"].metrics,
    ),
    "entities": Starter(
        'Repeat the sentence and mark each problem with <span class="problem">...</span>.',
        "Sentence: {{ sentence }}",
        {"sentence": "She reports a headache and mild nausea .",
         "tagged": 'She reports <span class="problem">a headache</span> and '
         '<span class="problem">mild nausea</span> .'},
        "tagged", (), 64, kinds.KINDS["entities"].metrics,
    ),
    "text": Starter(
        "Summarise the note in one sentence.",
        "Note: {{ note }}",
        {"note": "Seen for a sprained left ankle after a fall. Swelling, no fracture on X-ray. "
         "Rest, ice and review in one week.",
         "summary": "Sprained left ankle without fracture; rest and review."},
        "summary", (), 64, ("rouge_l",),  # bertscore_f1 needs a BERT model: see the comment written
    ),
}  # fmt: skip


def _yaml(name: str, kind: str, s: Starter) -> str:
    choices = ", ".join(json.dumps(c) for c in s.choices)
    answer = f"{{type: {kind}, choices: [{choices}]}}" if s.choices else f"{{type: {kind}}}"
    more = (
        "  # bertscore_f1 too, with a BERT model at hand (--bertscore-model PATH)" if kind == "text" else ""
    )
    longest = max(
        (k for k, v in s.row.items() if isinstance(v, str) and k != s.target), key=lambda k: len(s.row[k])
    )
    return f"""# A mibe task file; docs/task-files.md describes every key.
#   check it:            mibe tasks validate {name}.yaml
#   see its first prompt: mibe tasks show {name}.yaml
#   run it:              mibe run --model MODEL --tasks {name}.yaml
name: {name}  # lower-case letters, digits and _; names the results and the samples file
description: "A task of kind {kind}, written by mibe tasks new; say here what it asks."
dataset:
  source: {name}.jsonl  # a file or folder (relative to this file), or an HF hub dataset id
  split: test  # a folder or hub dataset: the split scored (a single file is scored whole)
  # fewshot_split: train  # where --num-fewshot draws its examples (default: the scored documents)
credentialed: false  # true: local data only, and never sent to an endpoint off this machine
template: {name}.jinja  # a name in mibe's prompts/, a .jinja path, or the Jinja text itself
target: {s.target}  # the column that holds the gold answer
answer: {answer}
truncate: {longest}  # the field shortened when a prompt is longer than the model's context
generation: {{max_new_tokens: {s.max_new_tokens}, stop: ["\\n\\n"]}}  # stop: cut the answer at a blank line
metrics: [{", ".join(s.metrics)}]{more}
version: 1  # raise it when you change how the task is scored
"""


def _jinja(name: str, s: Starter) -> str:
    # `-#}` strips the newline after each comment: the prompt ends right after "Answer:".
    return (
        f"{{# {name}.jinja: the prompt for each row; {{{{ field }}}} shows one column of {name}.jsonl. -#}}\n"
        f"{s.instruction}\n{s.fields}\n"
        'Answer:{# The model writes what follows "Answer:"; a newline or space here changes it. -#}\n'
    )


def new(name: str, kind: str, folder: str | Path = ".") -> list[Path]:
    """Write NAME.yaml, NAME.jinja and NAME.jsonl (one invented row) into `folder`; never overwrite."""
    if not re.fullmatch(TASK_NAME, name):
        raise MibeError(
            f"mibe tasks new {name[:80]}: a task name is up to 64 lower-case letters, digits and _, "
            "e.g. my_task"
        )
    names.check_task_name(name, f"mibe tasks new {name}")
    if name in tasks.builtin_paths():  # its runs would be named like the built-in task's
        raise MibeError(f"mibe tasks new {name}: a built-in task has that name; pick another, e.g. my_{name}")
    if kind not in STARTERS:
        raise MibeError(f"--kind {kind}: one of {', '.join(STARTERS)}")
    where = Path(folder).expanduser()
    if where.exists() and not where.is_dir():
        raise MibeError(f"--dir {where}: not a folder; name a folder (it is made if missing)")
    s = STARTERS[kind]
    row = {"id": "invented-1", **s.row, "invented": True}  # invented: results are marked, never real
    files = {
        where / f"{name}.yaml": _yaml(name, kind, s),
        where / f"{name}.jinja": _jinja(name, s),
        where / f"{name}.jsonl": json.dumps(row, ensure_ascii=False) + "\n",
    }
    taken = [p for p in files if p.exists() or p.is_symlink()]
    if taken:
        raise MibeError(
            f"{taken[0]}: already exists; mibe tasks new never overwrites: pick another NAME or --dir"
        )
    try:
        where.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            with path.open("x", encoding="utf-8") as out:  # "x": a file made meanwhile is not replaced
                out.write(text)
    except FileExistsError as exc:  # a dangling link where a file would go
        raise MibeError(f"{exc.filename}: already exists (a link?); tasks new never overwrites") from None
    except OSError as exc:
        raise MibeError(f"--dir {where}: cannot write ({exc.strerror}); choose a writable --dir") from None
    return list(files)


def find(spec: str) -> Task:
    """A task by name (built-in) or task-file path, for `tasks show`, by the name rule (mibe/names.py):
    a bare name is never a file of that name in the current folder, whose hook would run."""
    return tasks.named(spec, f"mibe tasks show {spec[:80]}")


def first_document(task: Task, data_dir: str | None, pairs: Mapping[str, str]) -> tuple[str, str]:
    """The task's first usable document, rendered, and where it came from. From --data/--data-dir
    when given, else the task's local source, else a bundled invented row; never from the hub."""
    if data_dir is not None or task.name in pairs:
        location = data.locate(task, data_dir, pairs)
    elif task.source and Path(task.source).is_absolute() and Path(task.source).exists():
        location = data.Location("local", task.source)
    elif (
        resources.demo_dir() / f"{task.name}.jsonl"
    ).is_file() and task.path.parent == resources.tasks_dir():
        location = data.Location("local", str(resources.demo_dir() / f"{task.name}.jsonl"))
    elif task.source and not Path(task.source).is_absolute():
        shadow = names.hub_shadow(task.source, task.path.parent)
        raise data.NoData(
            f"{task.name}: its data is on the HF hub ({task.source}), which `tasks show` never fetches; "
            f"pass --data {task.name}=PATH or --data-dir DIR" + (f"; {shadow}" if shadow else "")
        )
    else:
        raise data.NoData(
            f"{task.name}: no data here ({task.access}); pass --data {task.name}=PATH or --data-dir DIR"
        )
    docs = data.load_docs(task, location).docs
    try:
        return prompts.doc_prompt(task.template, docs[0]), f"{location.where}, document {docs[0].id}"
    except MibeError as exc:
        raise MibeError(f"{task.path}: field 'template': {exc}") from None
