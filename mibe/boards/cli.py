"""`mibe leaderboard` and `mibe compare`: their flags and what they do (argparse only at import)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mibe.types import MibeError

FORMATS = ("table", "md", "csv", "html", "latex")
COMPARE_FORMATS = ("table", "md", "csv", "json")
_SUFFIXES = {
    ".txt": "table", ".md": "md", ".markdown": "md", ".csv": "csv", ".html": "html", ".htm": "html",
    ".json": "json", ".tex": "latex",
}  # fmt: skip


def add_leaderboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard",
        help="runs side by side with the paper's published rows: table, markdown, CSV or HTML",
        description="One row per run, one column per task, metric and protocol; 95%% intervals, "
        "averages over complete rows, ranks, and whether the best row is significantly ahead.",
    )
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run folders written by `mibe run`")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (the format follows the suffix)")
    p.add_argument("--format", choices=FORMATS, help="default: from -o's suffix, else table")
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
    p.add_argument(
        "--label", action="append", default=[], metavar="RUN=NAME",
        help="name RUN's row NAME on the board (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--reference", action="append", default=[], metavar="FILE",
        help="a reference table (leaderboards/'s layout: a protocol block, then the CSV), its rows always "
        "shown: beside the runs' columns they share, else in a reference section (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--group", action="append", default=[], metavar="NAME=RUN,RUN,...",
        help="these runs (also given as RUN_DIR) as one row NAME, each task from its own run (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--average", metavar="public|all|T1,T2,...",
        help="average and rank over these tasks only (public: the built-ins that are not credentialed)",
    )  # fmt: skip
    p.add_argument(
        "--compare-across", default="", metavar="template|system-prompt",
        help="let rows whose protocols differ only in these fields share columns (said above the table)",
    )  # fmt: skip
    p.add_argument("--all-metrics", action="store_true", help="every metric, not only the paper's")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples for the significance tests")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--delta-vs-base", action="store_true",
        help="instead of the board: each checkpoint minus its base model's run, per task, with paired tests "
        "and medical and general averages apart (the base found through the training lineage, or --base)",
    )  # fmt: skip
    p.add_argument(
        "--base", action="append", default=[], metavar="RUN=BASE_RUN",
        help="with --delta-vs-base: RUN's base model run is BASE_RUN (repeatable)",
    )  # fmt: skip


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="two runs on the documents both scored: differences, paired tests, agreement",
    )
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (the format follows the suffix)")
    p.add_argument("--format", choices=COMPARE_FORMATS, help="default: from -o's suffix, else table")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired-bootstrap resamples")
    p.add_argument("--seed", type=int, default=1234)


def _format(args: argparse.Namespace, allowed: tuple[str, ...]) -> str:
    if args.format:
        return args.format
    if not args.output:
        return "table"
    suffix = Path(args.output).suffix.lower()
    if _SUFFIXES.get(suffix) not in allowed:
        known = ", ".join(s for s, f in _SUFFIXES.items() if f in allowed)
        raise MibeError(
            f"-o {args.output}: unknown suffix {suffix or '(none)'}; use {known}, or pass --format"
        )
    return _SUFFIXES[suffix]


def _check_target(output: str | None, runs: Sequence[str]) -> None:
    from mibe.runfolder.folder import refuse_inside_run

    if output:  # a board written over results.json would destroy the run it shows
        refuse_inside_run(output, runs)


def _write(text: str, output: str | None, runs: Sequence[str] = ()) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    path = Path(output)
    _check_target(output, runs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MibeError(f"-o {output}: cannot write ({exc.strerror}); choose a writable path") from None
    print(f"mibe: wrote {path}", file=sys.stderr)


def _check_bootstrap(n: int, seed: int = 0) -> None:
    from mibe.scoring.stats import MAX_BOOTSTRAP

    if not 1 <= n <= MAX_BOOTSTRAP:
        raise MibeError(f"--bootstrap {n}: must be a positive integer up to {MAX_BOOTSTRAP:,}")
    if not 0 <= seed < 2**32:  # numpy's seed range
        raise MibeError(f"--seed {seed}: must be between 0 and {2**32 - 1}")


def leaderboard(args: argparse.Namespace) -> int:
    from mibe.boards.board import build

    _check_bootstrap(args.bootstrap, args.seed)
    if not args.runs and args.published == "none" and not args.reference:
        raise MibeError("nothing to show: pass run folders, or leave out --published none")
    if args.base and not args.delta_vs_base:
        raise MibeError("--base: only with --delta-vs-base")
    if args.delta_vs_base:
        return _delta(args)
    fmt = _format(args, FORMATS)
    for where in (args.output, args.plot):
        _check_target(where, args.runs)
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
    _write(text, args.output, args.runs)
    if args.plot:
        from mibe.boards.plot import plot

        plot(board, Path(args.plot), args.plot_kind)
        print(f"mibe: wrote {args.plot}", file=sys.stderr)
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

    if args.plot:
        raise MibeError("--plot: not with --delta-vs-base; leave one out")
    report = delta.delta(args.runs, args.base, n_boot=args.bootstrap, seed=args.seed)
    _write(delta_text.render(report, _format(args, FORMATS)), args.output)
    return 0


def compare(args: argparse.Namespace) -> int:
    from mibe.boards import compare_text
    from mibe.boards.compare import compare as run_compare

    _check_bootstrap(args.bootstrap, args.seed)
    fmt = _format(args, COMPARE_FORMATS)
    _check_target(args.output, [args.run_a, args.run_b])
    report = run_compare(args.run_a, args.run_b, n_boot=args.bootstrap, seed=args.seed)
    _write(compare_text.render(report, fmt), args.output, [args.run_a, args.run_b])
    return 0
