"""`mibe rescore RUN --output-dir NEW`: re-parse a run's saved outputs and recompute its metrics."""

from __future__ import annotations

import argparse

from mibe.commands import options
from mibe.types import PARSERS, MibeError


def add(rescore: argparse.ArgumentParser) -> None:
    options.add_saved_run(rescore)
    rescore.add_argument(
        "--parser", default="strict", choices=PARSERS,
        help="the parser to apply (strict); model: --extractor maps each answer to a label, loading only "
        "the extractor, never the evaluated model",
    )  # fmt: skip
    rescore.add_argument("--extractor", metavar="MODEL", help="with --parser model: hf:PATH, vllm:PATH, ...")
    options.add_remote(
        rescore,
        "URL=REASON",
        "with an openai: extractor, send credentialed tasks to that non-loopback endpoint",
    )
    rescore.add_argument(
        "--device",
        help="where an hf: extractor runs (default: the run's device when this machine has it, else cpu)",
    )
    rescore.add_argument("--tasks", help=options.TRUSTED_TASKS)
    options.add_new_run(rescore)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """No model is ever loaded, except --parser model's extractor (only it)."""
    from mibe.runfolder import rescore, saved

    if (args.parser == "model") != bool(args.extractor):
        raise MibeError(
            "--parser model and --extractor MODEL go together (mibe rescore RUN --parser model ...)"
        )
    if args.parser != "model":
        names, trusted = saved.task_specs(args.tasks)
        rescore.rescore(
            args.run_dir, args.parser, names, args.output_dir, command=["mibe", *argv], trusted=trusted,
            overwrite=args.overwrite,
        )  # fmt: skip
        return 0
    from mibe.runner import extract

    load = extract.loader(args.extractor, args.run_dir, args.device, args.allow_remote_credentialed)
    rescore.rescore(
        args.run_dir, "model", saved.split_names(args.tasks), args.output_dir, ["mibe", *argv],
        extractor=load, overwrite=args.overwrite,
    )  # fmt: skip
    return 0


COMMAND = options.Command(
    "rescore",
    "re-parse a run's saved outputs and recompute its metrics",
)
