"""Where `mibe leaderboard` and `mibe compare` write: the format from -o's suffix, never inside a run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mibe.log import logger
from mibe.types import MibeError

_SUFFIXES = {
    ".txt": "table", ".md": "md", ".markdown": "md", ".csv": "csv", ".html": "html", ".htm": "html",
    ".json": "json", ".tex": "latex",
}  # fmt: skip


def fmt(args: argparse.Namespace, allowed: tuple[str, ...]) -> str:
    """--format, else the one -o's suffix names, else the text table."""
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


def check_target(output: str | None, runs: Sequence[str]) -> None:
    from mibe.runfolder.folder import refuse_inside_run

    if output:  # a board written over results.json would destroy the run it shows
        refuse_inside_run(output, runs)


def write(text: str, output: str | None, runs: Sequence[str] = ()) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    path = Path(output)
    check_target(output, runs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MibeError(f"-o {output}: cannot write ({exc.strerror}); choose a writable path") from None
    logger.info(f"mibe: wrote {path}")


def check_bootstrap(n: int, seed: int = 0) -> None:
    from mibe.scoring.stats import MAX_BOOTSTRAP

    if not 1 <= n <= MAX_BOOTSTRAP:
        raise MibeError(f"--bootstrap {n}: must be a positive integer up to {MAX_BOOTSTRAP:,}")
    if not 0 <= seed < 2**32:  # numpy's seed range
        raise MibeError(f"--seed {seed}: must be between 0 and {2**32 - 1}")
