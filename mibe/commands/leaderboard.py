"""`mibe leaderboard RUN...`: runs side by side with the paper's published rows (reads run folders only)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mibe.commands import options
from mibe.log import logger
from mibe.types import MibeError

FORMATS = ("table", "md", "csv", "html", "latex")


def add(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run folders written by `mibe run`")
    options.add_written(p, FORMATS)
    p.add_argument(
        "--plot", metavar="FILE.png|pdf|svg",
        help="also draw the board as one figure for a paper: tasks x models, 95%% intervals (matplotlib)",
    )  # fmt: skip
    p.add_argument(
        "--plot-kind", default="main", choices=("main", "calibration", "metrics"),
        help="main (default): each task's main metric; calibration: reliability diagrams of "
        "log-likelihood tasks; metrics: every metric as bars",
    )  # fmt: skip
    p.add_argument(
        "--published", default="reference", metavar="reference|none|TABLE,...",
        help="reference (default): the paper's published rows beside the runs' columns they share, "
        "unranked; none: leave them out; TABLE,...: these shipped tables (paper_zero_shot), shown in "
        "full when they share no column",
    )  # fmt: skip
    p.add_argument(
        "--no-published", dest="published", action="store_const", const="none", help="--published none"
    )
    options.add_repeated(p, "--label", "RUN=NAME", "name RUN's row NAME on the board")
    options.add_repeated(p, "--reference", "FILE", "a reference table (leaderboards/'s layout: a protocol "
                         "block, then the CSV), its rows always shown: beside the runs' columns they share, "
                         "else in a reference section")  # fmt: skip
    options.add_repeated(p, "--group", "NAME=RUN,RUN,...", "these runs (also given as RUN_DIR) as one row "
                         "NAME, each task from its own run")  # fmt: skip
    p.add_argument(
        "--average", metavar="public|all|T1,T2,...",
        help="average and rank over these tasks only (public: the built-ins that are not credentialed)",
    )  # fmt: skip
    p.add_argument(
        "--compare-across", default="", metavar="template|system-prompt",
        help="let rows whose protocols differ only in these fields share columns (said above the table)",
    )  # fmt: skip
    p.add_argument("--all-metrics", action="store_true", help="every metric, not only the paper's")
    options.add_resampling(p, "resamples for the significance tests")
    p.add_argument(
        "--delta-vs-base", action="store_true",
        help="instead of the board: each checkpoint minus its base model's run, per task, with paired tests "
        "and medical and general averages apart (the base found through the training lineage, or --base)",
    )  # fmt: skip
    options.add_repeated(
        p, "--base", "RUN=BASE_RUN", "with --delta-vs-base: RUN's base model run is BASE_RUN"
    )


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Reads run folders only; no model is loaded."""
    from mibe.boards.board import build
    from mibe.commands import output

    output.check_bootstrap(args.bootstrap, args.seed)
    if not args.runs and args.published == "none" and not args.reference:
        raise MibeError("nothing to show: pass run folders, or leave out --published none")
    if args.base and not args.delta_vs_base:
        raise MibeError("--base: only with --delta-vs-base")
    if args.delta_vs_base:
        return _delta(args)
    fmt = output.fmt(args, FORMATS)
    for where in (args.output, args.plot):
        output.check_target(where, args.runs)
    if args.plot:
        from mibe.boards.plot import check_path

        check_path(Path(args.plot), args.plot_kind)
    from mibe.boards.grouping import parse_groups

    board = build(
        args.runs, args.published, args.all_metrics, args.bootstrap, args.seed, labels=_labels(args.label),
        references=args.reference, groups=parse_groups(args.group), average=args.average,
        compare_across=[x.strip() for x in args.compare_across.split(",") if x.strip()],
    )  # fmt: skip
    if fmt == "html":
        from mibe.boards.html import html

        text = html(board)
    elif fmt == "latex":
        from mibe.boards.latex import latex

        text = latex(board)
    else:
        from mibe.boards import render

        text = {"table": render.text, "md": render.markdown, "csv": render.csv_text}[fmt](board)
    output.write(text, args.output, args.runs)
    if args.plot:
        from mibe.boards.plot import plot

        plot(board, Path(args.plot), args.plot_kind)
        logger.info(f"mibe: wrote {args.plot}")
    return 0


def _labels(given: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in given:
        run, sep, name = item.partition("=")
        if not sep or not run:
            raise MibeError(f"--label {item}: write RUN=NAME (a run folder given, then its row's name)")
        out[run] = name
    return out


def _delta(args: argparse.Namespace) -> int:
    from mibe.boards import delta, delta_text
    from mibe.commands import output

    if args.plot:
        raise MibeError("--plot: not with --delta-vs-base; leave one out")
    report = delta.delta(args.runs, args.base, n_boot=args.bootstrap, seed=args.seed)
    output.write(delta_text.render(report, output.fmt(args, FORMATS)), args.output)
    return 0


COMMAND = options.Command(
    "leaderboard",
    "runs side by side with the paper's published rows: table, markdown, CSV or HTML",
    description="One row per run, one column per task, metric and protocol; 95%% intervals, "
    "averages over complete rows, ranks, and whether the best row is significantly ahead.",
)
