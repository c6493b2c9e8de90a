"""`mibe import HARNESS PATH... --task TASK --output-dir RUN`: another harness's outputs as a run folder
(`import` is Python's keyword: hence the module's trailing underscore)."""

from __future__ import annotations

import argparse

from mibe.commands import options
from mibe.types import PARSERS


def add(imp: argparse.ArgumentParser) -> None:
    imp.add_argument("harness", choices=("lm-eval", "me-llama"), help="the harness that wrote the files")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="its per-document output files (one task)")
    imp.add_argument("--task", required=True, help="the MIBE task (a name or a task-file path) they answer")
    imp.add_argument("--model-name", help="the model's name on boards (default: '<harness> import')")
    imp.add_argument("--parser", default="strict", choices=PARSERS, help="the parser for generated outputs")
    options.add_resampling(imp, "bootstrap resamples for the 95%% intervals", seed="bootstrap seed")
    options.add_reasoning_delimiters(imp, " as mibe run does")
    options.add_new_run(imp)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Reads files only; no model is loaded."""
    from mibe import tasks
    from mibe.backends import traces
    from mibe.runfolder.import_run import import_run

    (task,), _ = tasks.resolve([args.task], flag="--task")
    import_run(
        args.harness, args.paths, task, args.output_dir, args.model_name, args.parser,
        args.seed, args.bootstrap, command=["mibe", *argv],
        delimiters=traces.parse_delimiters(args.reasoning_delimiters), overwrite=args.overwrite,
    )  # fmt: skip
    return 0


COMMAND = options.Command(
    "import",
    "turn another harness's saved outputs (lm-eval, Me-LLaMA) into a run folder",
    description="Score another harness's per-document outputs with mibe's parsers and metrics; no model "
    "is loaded. docs/importing.md lists the fields read from each format.",
)
