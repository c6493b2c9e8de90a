"""`mibe judge RUN --judge SPEC... --output-dir NEW`: a jury of judge models scores a run's summaries."""

from __future__ import annotations

import argparse
from typing import Any

from mibe.commands import options


def add(sub: Any) -> None:
    judge = sub.add_parser(
        "judge", help="score a run's summaries with a jury of judge models (docs/judges.md)",
        description="Judge a finished run's text-task outputs against each task's `judge:` rubric and "
        "write a new run folder with judge_<criterion> columns; the evaluated model is not loaded.",
    )  # fmt: skip
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
    judge.set_defaults(handler=command)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Judge models only; the evaluated model is never loaded."""
    from mibe.runner import judge_run

    return judge_run.command(args, argv)
