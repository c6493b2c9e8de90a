"""`mibe tasks list|show|validate|new`: the built-in tasks, one task's prompt and rules, task files."""

from __future__ import annotations

import argparse

from mibe import textout
from mibe.commands import options


def add(tasks: argparse.ArgumentParser) -> None:
    tsub = tasks.add_subparsers(dest="tasks_command", required=True)
    tsub.add_parser("list", help="the built-in tasks")
    show = tsub.add_parser("show", help="a task's rendered prompt, parse rule and metrics")
    show.add_argument("name", help="a task name or task-file path")
    options.add_data(
        show, demo="", data_dir="render the first document found here (as mibe run reads it)",
        data="data for the task",
    )  # fmt: skip
    validate = tsub.add_parser("validate", help="check task files; exit 2 on the first bad one")
    validate.add_argument("paths", nargs="+", help="task names (built-in) or task-file paths (./x.yaml)")
    new = tsub.add_parser(
        "new", help="write NAME.yaml, NAME.jinja and NAME.jsonl (one invented row) to start a task from",
        formatter_class=options.Defaults,
    )  # fmt: skip
    new.add_argument("task_name", metavar="NAME", help="the task's name: lower-case letters, digits and _")
    new.add_argument(
        "--kind", default="choice", choices=("choice", "letter", "multi_label", "span", "entities", "text"),
        help="the answer kind (docs/task-files.md)",
    )  # fmt: skip
    new.add_argument("--dir", default=".", help="the folder to write into (never overwrites)")


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Reads task files (and, for show, one document); no model is loaded."""
    from mibe import tasks

    if args.tasks_command == "list":
        rows = [("name", "kind", "metrics", "credentialed", "groups", "data source")]
        general = {t.name: t for t in tasks.resolve(["general"])[0]}
        for t in [*(tasks.load_task(p) for p in tasks.builtin_paths().values()), *general.values()]:
            groups = "general" if t.name in general else "all" if t.credentialed else "all, public"
            source = f"{t.source} ({t.config})" if t.config else t.source
            rows.append(
                (
                    t.name,
                    t.answer_type,
                    ",".join(t.metrics),
                    "yes" if t.credentialed else "no",
                    groups,
                    "local only (credentialed)" if t.credentialed else source or "local only",
                )
            )
        # One line per task, however wide: a data source is read (and copied) whole.
        print("\n".join(textout.table(rows, head=0, keep=1, width=textout.WHOLE)))
        print(
            "--tasks all: the MIBE tasks (group all); --tasks public: the ones not credentialed (hosted "
            "models); --tasks general: the general-domain benchmarks of the forgetting study, never in all"
        )
        return 0
    if args.tasks_command == "validate":
        for path in args.paths:
            t = tasks.named(path, f"mibe tasks validate {path[:80]}")
            metrics = ", ".join(t.metrics)
            judged = f"; judged on {', '.join(t.judge.names)}" if t.judge is not None else ""
            kind = f"{t.answer_type}, {len(t.choices)} choices, metrics {metrics}"
            print(f"ok  {path}: task {t.name} ({kind}){judged}")
        return 0
    if args.tasks_command == "new":
        return _new_task(args)
    return _show_task(args)


def _new_task(args: argparse.Namespace) -> int:
    from mibe import taskfiles

    written = taskfiles.new(args.task_name, args.kind, args.dir)
    for path in written:
        print(f"wrote {path}")
    yaml = written[0]
    print(f"next: mibe tasks validate {yaml}; mibe tasks show {yaml}; mibe run --model MODEL --tasks {yaml}")
    return 0


def _show_task(args: argparse.Namespace) -> int:
    from mibe import data, taskfiles
    from mibe.datacheck import parse_pairs
    from mibe.scoring import kinds

    task = taskfiles.find(args.name)
    print(f"# {task.name} (version {task.version}): {task.description}")
    print(f"file: {task.path}\ntemplate: {task.template_name} (hash {task.template_hash})")
    print(f"data: {task.source or 'local only'}; split {task.split}; credentialed: {task.credentialed}")
    print(f"access: {task.access}")
    print(f"answer: {task.answer_type}; choices: {', '.join(task.choices) or '-'}")
    print(f"parse rule: {kinds.get(task.answer_type).rule}")
    print(f"generation: max_new_tokens {task.max_new_tokens}, stop {list(task.stop)}")
    print(f"metrics: {', '.join(task.metrics)}")
    clusters = (
        f"`{task.cluster}`, resampled whole" if task.cluster else "none: documents resampled one by one"
    )
    print(f"clusters: {clusters} (docs/statistics.md)")
    if task.judge is not None:
        low, high = task.judge.scale
        print(f"judge rubric: {', '.join(task.judge.names)} (scale {low}-{high}; docs/judges.md)")
    try:
        prompt, where = taskfiles.first_document(task, args.data_dir, parse_pairs(args.data))
    except data.NoData as exc:
        print(f"--- no document to render: {exc} ---")
        return 0
    print(f"--- rendered prompt (the first document: {where}) ---")
    print(prompt, end="")
    print("\n--- end ---")
    return 0


COMMAND = options.Command(
    "tasks",
    "list, show or validate task files",
)
