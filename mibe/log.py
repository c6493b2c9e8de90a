"""The `mibe` logger: every progress line, note and warning mibe writes goes through it.

Levels: progress and notes are INFO; what a user must see even from Python (each endpoint's one
announcement before its first request, `mibe: warning: ...` lines) is WARNING.

Library code (`mibe.evaluate`, `mibe.runner.api.run`, the run-folder functions) installs no handler.
A Python caller that configures nothing sees only the WARNING records, on stderr, through Python's
last-resort handler (message only); `logging.basicConfig(level=logging.INFO)` shows the progress too,
and pytest's `caplog` (or tests/support/logs.py) reads the records. The command line (`mibe.cli.main`,
`to_stderr`) writes every INFO record (DEBUG with `--debug`) to stderr, one message a line, as the
`say` callable did. Results (tables, JSON) printed to stdout are not log lines: they stay prints.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("mibe")


class StderrHandler(logging.Handler):
    """Writes `%(message)s` to the `sys.stderr` of the moment (looked up at each emit, so pytest's
    capsys, or a caller's redirect_stderr, sees the lines); through tqdm.write once tqdm is loaded, so
    a line said while a progress bar runs (an HTTP retry, an out-of-memory retry) does not break it."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream, tqdm = sys.stderr, sys.modules.get("tqdm")
            if tqdm is not None and hasattr(tqdm, "tqdm"):
                tqdm.tqdm.write(self.format(record), file=stream)
            else:
                stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


@contextmanager
def to_stderr(debug: bool = False) -> Iterator[None]:
    """While a command runs: the `mibe` records at INFO (DEBUG with `debug`) go to stderr. Idempotent:
    inside another `to_stderr` (a command that calls another) nothing is added; on leaving, the logger is
    as it was, so library calls after `main()` returns stay silent. The records do not propagate to the
    root logger meanwhile (a root handler some library installed would repeat every line)."""
    if any(isinstance(h, StderrHandler) for h in logger.handlers):
        yield
        return
    handler, level, propagate = StderrHandler(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False  # a library that calls logging.basicConfig must not print each line twice
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


class _Nothing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def silenceable() -> Iterator[Callable[[], None]]:
    """A block whose code may call the yielded `silence()` (a training rank other than the first: one
    rank speaks for all); the `mibe` logger drops every record from then to the end of the block."""
    nothing = _Nothing()
    try:
        yield lambda: logger.addFilter(nothing)
    finally:
        logger.removeFilter(nothing)
