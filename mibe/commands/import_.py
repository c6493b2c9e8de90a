"""`mibe import HARNESS PATH... --task TASK --output-dir RUN`: another harness's outputs as a run folder
(`import` is Python's keyword: hence the module's trailing underscore)."""

from __future__ import annotations

import argparse
from typing import Any

from mibe.commands import options
from mibe.types import PARSERS


def add(sub: Any) -> None:
    imp = sub.add_parser(
        "import",
        help="turn another harness's saved outputs (lm-eval, Me-LLaMA) into a run folder",
        description="Score another harness's per-document outputs with mibe's parsers and metrics; no model "
        "is loaded. docs/importing.md lists the fields read from each format.",
    )
    imp.add_argument("harness", choices=("lm-eval", "me-llama"), help="the harness that wrote the files")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="its per-document output files (one task)")
    imp.add_argument("--task", required=True, help="the MIBE task (a name or a task-file path) they answer")
    imp.add_argument("--model-name", help="the model's name on boards (default: '<harness> import')")
    imp.add_argument("--parser", default="strict", choices=PARSERS, help="the parser for generated outputs")
    options.add_resampling(imp, "bootstrap resamples for the 95%% intervals", seed="bootstrap seed")
    options.add_reasoning_delimiters(imp, " as mibe run does")
    options.add_new_run(imp)
    imp.set_defaults(handler=command)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Reads files only; no model is loaded."""
    from mibe.runfolder import import_run

    return import_run.command(args, argv)
