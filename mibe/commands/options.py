"""The options several commands share, declared once, and the help formatter that shows defaults."""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

OVERWRITE = "replace what mibe wrote in the folder, its caches too; nothing else is deleted"
DATA_DIR = "folder with <task>.jsonl/.json/.csv/.tsv/.parquet or <task>/"
TASKS = "all, public (the non-credentialed built-ins), task names, or task-file paths, comma-separated"
DTYPES = ("auto", "float32", "bfloat16", "float16")


class Command(NamedTuple):
    """A subcommand's entry in `mibe --help`, declared by its module; mibe/cli.py makes the subparser,
    hands it to the module's `add` for its flags and binds the module's `command` as its handler."""

    name: str
    help: str
    description: str | None = None
    formatter: type[argparse.HelpFormatter] = argparse.HelpFormatter

    def parser(self, sub: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            self.name, help=self.help, description=self.description, formatter_class=self.formatter
        )


class Defaults(argparse.HelpFormatter):
    """`--help` shows each option's default, except those that mean "not given" (None, off, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
        if "%(default)" in text or unset or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def add_data(parser: Any, demo: str, data_dir: str = DATA_DIR, data: str = "data for one task") -> None:
    """Where a task's documents come from, as `mibe run` reads them (docs/run-folder.md)."""
    parser.add_argument("--data-dir", help=data_dir)
    parser.add_argument("--data", action="append", default=[], metavar="TASK=PATH", help=data)
    if demo:
        parser.add_argument("--tasks", default="all", help=TASKS)
        parser.add_argument("--demo", action="store_true", help=demo)


def add_saved_run(parser: Any, tasks: str | None = None) -> None:
    """The run folder a command reads, and the tasks of it to read."""
    parser.add_argument("run_dir", help="a run folder written by `mibe run`")
    if tasks is not None:
        parser.add_argument("--tasks", help=tasks)


TRUSTED_TASKS = "task names in the run, or task files to trust (their hooks may run), comma-separated"


def add_new_run(parser: Any, where: str = "the new run folder (new or empty)") -> None:
    """The run folder a command writes, never over another's without --overwrite."""
    parser.add_argument("--output-dir", required=True, help=where)
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE)


def add_resampling(parser: Any, resamples: str, seed: str | None = None) -> None:
    parser.add_argument("--bootstrap", type=int, default=1000, help=resamples)
    parser.add_argument("--seed", type=int, default=1234, help=seed)


def add_written(parser: Any, formats: tuple[str, ...]) -> None:
    """-o FILE and --format: a board's or a comparison's output."""
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (the format follows the suffix)")
    parser.add_argument("--format", choices=formats, help="default: from -o's suffix, else table")


def add_remote(parser: Any, metavar: str, why: str) -> None:
    """--allow-remote-credentialed: who may receive credentialed text (mibe/backends/policy.py)."""
    parser.add_argument("--allow-remote-credentialed", action="append", default=[], metavar=metavar, help=why)


def add_repeated(parser: Any, flag: str, metavar: str, text: str) -> None:
    """An option given once per item (a list, empty by default); its help says it repeats."""
    parser.add_argument(flag, action="append", default=[], metavar=metavar, help=f"{text} (repeatable)")


def add_judge_order(parser: Any) -> None:
    parser.add_argument(
        "--judge-order", default="reference_first", choices=("reference_first", "candidate_first")
    )


def add_reasoning_delimiters(parser: Any, how: str) -> None:
    parser.add_argument(
        "--reasoning-delimiters", metavar="OPEN,CLOSE",
        help=f"the tags around a reasoning trace, split off before parsing{how} (default <think>,</think>; "
        "several pairs separated by ';')",
    )  # fmt: skip
