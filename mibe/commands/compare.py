"""`mibe compare RUN_A RUN_B`: two runs on the documents both scored (reads run folders only)."""

from __future__ import annotations

import argparse

from mibe.commands import options

FORMATS = ("table", "md", "csv", "json")


def add(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    options.add_written(p, FORMATS)
    options.add_resampling(p, "paired-bootstrap resamples")


def command(args: argparse.Namespace, argv: list[str]) -> int:
    from mibe.boards import compare_text
    from mibe.boards.compare import compare as run_compare
    from mibe.commands import output

    output.check_bootstrap(args.bootstrap, args.seed)
    fmt = output.fmt(args, FORMATS)
    output.check_target(args.output, [args.run_a, args.run_b])
    report = run_compare(args.run_a, args.run_b, n_boot=args.bootstrap, seed=args.seed)
    output.write(compare_text.render(report, fmt), args.output, [args.run_a, args.run_b])
    return 0


COMMAND = options.Command(
    "compare",
    "two runs on the documents both scored: differences, paired tests, agreement",
)
