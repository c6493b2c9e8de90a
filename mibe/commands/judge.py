"""`mibe judge RUN --judge SPEC... --output-dir NEW`: a jury of judge models scores a run's summaries."""

from __future__ import annotations

import argparse

from mibe.commands import options
from mibe.types import MibeError


def add(judge: argparse.ArgumentParser) -> None:
    options.add_saved_run(judge)
    judge.add_argument(
        "--judge", action="append", required=True, metavar="SPEC",
        help="hf:PATH, vllm:PATH or openai:URL#NAME (a bare PATH means hf:); repeat for a jury",
    )  # fmt: skip
    judge.add_argument("--tasks", help="text tasks in the run, comma-separated (default: all with a rubric)")
    judge.add_argument("--limit", type=int, help="judge the first N documents of each task")
    judge.add_argument(
        "--human-ratings", metavar="FILE", help="CSV id,criterion,score: judge-human agreement"
    )
    options.add_new_run(judge, "the new run folder (rerun the same command to resume)")
    options.add_judge_order(judge)
    judge.add_argument(
        "--judge-max-new-tokens", type=int, default=256, metavar="N", help="tokens a reply may take"
    )
    judge.add_argument(
        "--device", help="where hf: judges run (default: the run's device when this machine has it, else cpu)"
    )
    judge.add_argument("--dtype", default="auto", choices=options.DTYPES)
    judge.add_argument("--batch-size", type=int, default=8)
    judge.add_argument("--trust-remote-code", action="store_true", help="run the judge repo's own code (off)")
    options.add_remote(
        judge, "URL=REASON",
        "send credentialed tasks to the judge at URL, a non-loopback endpoint (repeat per judge); "
        "said and recorded in results.json",
    )  # fmt: skip


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Judge models only; the evaluated model is never loaded."""
    from mibe.backends import policy
    from mibe.backends.endpoint import Machine
    from mibe.runfolder import saved
    from mibe.runner.judge_calls import Settings
    from mibe.runner.judge_run import judge_run, parse_specs

    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size),
                        ("--judge-max-new-tokens", args.judge_max_new_tokens)):  # fmt: skip
        if value is not None and value < 1:
            raise MibeError(f"{flag} {value}: must be a positive integer")
    machine = Machine(
        device=args.device or "cpu", dtype=args.dtype, trust_remote_code=args.trust_remote_code,
        batch_size=args.batch_size,
    )  # fmt: skip
    settings = Settings(
        parse_specs(args.judge), args.judge_order, args.judge_max_new_tokens, args.limit,
        human_ratings=args.human_ratings, machine=machine, device_given=args.device is not None,
        grants=policy.authorisations(args.allow_remote_credentialed),
    )  # fmt: skip
    judge_run(
        args.run_dir, args.output_dir, settings, saved.split_names(args.tasks), ["mibe", *argv],
        overwrite=args.overwrite,
    )  # fmt: skip
    return 0


COMMAND = options.Command(
    "judge",
    "score a run's summaries with a jury of judge models (docs/judges.md)",
    description="Judge a finished run's text-task outputs against each task's `judge:` rubric and "
    "write a new run folder with judge_<criterion> columns; the evaluated model is not loaded.",
)
