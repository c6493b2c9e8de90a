"""`mibe data check|contamination`: what each task would read, and which evaluation documents a
training corpus repeats. Both read data only; no model is loaded."""

from __future__ import annotations

import argparse
from typing import Any

from mibe.commands import options


def add(data: argparse.ArgumentParser) -> None:
    data_commands = data.add_subparsers(dest="data_command", required=True)
    check = data_commands.add_parser(
        "check", help="per task: where its data comes from, documents, labels, unusable rows"
    )
    options.add_data(check, demo="check the bundled invented documents")
    _add_contamination(
        data_commands.add_parser(
            "contamination",
            help="which evaluation documents a training corpus repeats (docs/contamination.md)",
        )
    )


def _add_contamination(parser: Any) -> None:
    from mibe import corpusscan, matcher  # two constants; the scan itself loads when it runs

    parser.add_argument(
        "corpus", nargs="*", help="files, folders or globs (JSONL, Parquet, text; .gz/.zst), or hub:ID"
    )
    parser.add_argument("--tasks", default="all", help="all, task names, or task-file paths, comma-separated")
    parser.add_argument("--data-dir", help="evaluation data, as `mibe run --data-dir` reads it")
    parser.add_argument(
        "--demo", action="store_true", help="the bundled invented documents as the evaluation side"
    )
    parser.add_argument("--ngram", type=int, default=matcher.NGRAM, help="run length in words")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="report.md, report.csv or report.json (default: Markdown on stdout)",
    )
    parser.add_argument("--num-proc", type=int, default=1, help="processes over corpus parts")
    parser.add_argument(
        "--state", metavar="DIR", help="save each finished part here; rerun to resume a long scan"
    )
    parser.add_argument(
        "--part-mb",
        type=int,
        default=corpusscan.PART_BYTES >> 20,
        help="byte range of a plain file per part, in MB",
    )
    parser.add_argument(
        "--merge", nargs="+", metavar="FILE",
        help="merge part results an engine's scan wrote (Ray Data, Spark) instead of scanning",
    )  # fmt: skip


def command(args: argparse.Namespace, argv: list[str]) -> int:
    from mibe import datacheck, resources

    if args.demo and args.data_dir is None:  # as `mibe run --demo`
        args.data_dir = str(resources.demo_dir())
    if args.data_command == "contamination":
        from mibe.training import contamination

        return contamination.main(args)
    return datacheck.main(args)


COMMAND = options.Command(
    "data",
    "check data before a run (loads no model)",
)
