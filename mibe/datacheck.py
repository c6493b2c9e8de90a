"""`mibe data check`: what each task would read before a long run; loads no model.

Per task: where its data comes from (the resolution of docs/run-folder.md, exactly as `mibe run`
applies it), whether it is there (and where to get it when not), the number of usable documents, the gold
label distribution, the data fingerprint `mibe run` records, and the rows it cannot use (count and
the first one, with why).

Exit codes follow `mibe run`: 2 when a task named in `--tasks` has no usable data, or when no task
has any; 0 otherwise, so `--tasks all` reports the missing tasks and succeeds as long as one task
has usable data.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mibe import data, prompts, tasks, textout
from mibe.types import Doc, MibeError, Task


@dataclass(frozen=True)
class TaskCheck:
    task: str
    source: str | None  # a path, "hub <id>", or None when nothing was found
    problem: str | None  # why there is no usable data
    access: str  # where the data comes from, for tasks that lack it
    n_docs: int = 0
    labels: Mapping[str, int] = field(default_factory=dict)
    fingerprint: str | None = None
    n_skipped: int = 0
    first_skipped: str | None = None
    invented: bool = False
    found: bool = True  # False: nothing at the source (no file, or the hub could not serve it)

    @property
    def usable(self) -> bool:
        return self.n_docs > 0


def labels(task: Task, docs: Sequence[Doc]) -> dict[str, int]:
    """Gold counts in the task's label order; entities by class; nothing for free text."""
    if task.answer_type in ("choice", "letter"):
        counts = Counter(d.gold for d in docs)
        return {c: counts[c] for c in task.choices if counts[c]}
    if task.answer_type == "multi_label":
        counts = Counter(name for d in docs for name in d.gold)
        out = {c: counts[c] for c in task.choices if counts[c]}
        empty = sum(1 for d in docs if not d.gold)
        return {**out, "(no label)": empty} if empty else out
    if task.answer_type == "entities":
        counts = Counter(m for d in docs for m in re.findall(r'<span class="(\w+)">', str(d.gold)))
        plain = sum(1 for d in docs if "<span" not in str(d.gold))
        return {**dict(counts.most_common()), "(no entity)": plain}
    return {}


def check_task(task: Task, data_dir: str | None, pairs: Mapping[str, str]) -> TaskCheck:
    try:
        location = data.locate(task, data_dir, pairs)
    except (data.NoData, MibeError) as exc:
        return TaskCheck(task.name, None, str(exc), task.access)
    source = location.where if location.kind == "local" else f"hub {location.where}"
    try:
        docset = data.load_docs(task, location)
        for doc in docset.docs:  # a run stops at the first document its template cannot render
            prompts.compose(task.template, doc, [])
    except (data.NoData, MibeError) as exc:
        return TaskCheck(task.name, source, str(exc), task.access, found=location.kind == "local")
    return TaskCheck(
        task.name,
        source,
        None,
        task.access,
        n_docs=len(docset.docs),
        labels=labels(task, docset.docs),
        fingerprint=docset.fingerprint,
        n_skipped=docset.n_skipped,
        first_skipped=docset.first_problem,
        invented=any(d.invented for d in docset.docs),
    )


def render(checks: Sequence[TaskCheck]) -> str:
    rows = [[c.task, "\n".join(_said(c))] for c in checks]
    # Kept whole, not wrapped at the terminal's width: a source path or the access URL is copied whole.
    lines = textout.table(rows, head=0, keep=1, width=textout.WHOLE)
    usable = sum(1 for c in checks if c.usable)
    lines.append(f"{usable} of {len(checks)} tasks have usable data")
    return "\n".join(lines) + "\n"


def _said(c: TaskCheck) -> list[str]:
    """What the check found for one task, a line per fact, beside the task's name."""
    if not c.usable:
        lines = ["NO USABLE DATA" if c.found and c.source else "MISSING"]
        if c.source:
            lines.append(f"source: {c.source}")
        why = (c.problem or "").replace(f" ({c.access})", "")  # the access line follows
        return [*lines, f"why: {why}", f"get it: {c.access}"]
    invented = " (invented)" if c.invented else ""
    lines = [f"found: {c.n_docs} documents{invented}", f"source: {c.source}"]
    if c.labels:
        lines.append("labels: " + ", ".join(f"{k} {v}" for k, v in c.labels.items()))
    lines.append(f"fingerprint: {c.fingerprint}")
    unusable = f"{c.n_skipped}; first: {c.first_skipped}" if c.n_skipped else "0"
    return [*lines, f"unusable rows: {unusable}"]


def exit_code(checks: Sequence[TaskCheck], explicit: set[str]) -> tuple[int, str | None]:
    named = [c.task for c in checks if c.task in explicit and not c.usable]
    if named:
        return 2, f"no usable data for {', '.join(named)} (named in --tasks); see the report above"
    if not any(c.usable for c in checks):
        return 2, "no task has usable data; pass --data-dir DIR or --data TASK=PATH"
    return 0, None


def parse_pairs(items: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise MibeError(f"--data {item}: expected TASK=PATH, e.g. --data mednli=~/mednli/")
        if task in pairs and pairs[task] != path:  # the last would win without a word
            raise MibeError(f"--data {item}: {task} was already given --data {task}={pairs[task]}; give one")
        pairs[task] = path
    return pairs


def main(args: argparse.Namespace) -> int:
    pairs = parse_pairs(args.data)
    if args.data_dir is not None and not Path(args.data_dir).expanduser().is_dir():
        raise MibeError(f"--data-dir {args.data_dir}: no such folder")
    chosen, explicit = tasks.resolve([args.tasks])
    unknown = sorted(set(pairs) - {t.name for t in chosen})
    if unknown:
        raise MibeError(f"--data {unknown[0]}=...: no task named {unknown[0]} among --tasks {args.tasks}")
    checks = [check_task(task, args.data_dir, pairs) for task in chosen]
    print(render(checks), end="", flush=True)
    code, why = exit_code(checks, explicit)
    if why:
        raise MibeError(why)
    return code
