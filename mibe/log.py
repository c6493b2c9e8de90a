"""The `mibe` logger: every progress line, note and warning mibe writes goes through it.

Library code (`mibe.evaluate`, `mibe.runner.api.run`, the run-folder functions) never prints by
itself: the logger carries a NullHandler, so a Python caller sees nothing until it configures logging,
e.g. `logging.basicConfig(level=logging.INFO)`, or reads the records (pytest's `caplog`). The command
line (`mibe.cli.main`) writes them to stderr, one message a line, as `say` did: INFO and above, DEBUG
with `--debug`. Results (tables, JSON) are not log lines: they stay prints to stdout.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("mibe")
logger.addHandler(logging.NullHandler())


class StderrHandler(logging.Handler):
    """Writes `%(message)s` to the `sys.stderr` of the moment (looked up at each emit, so pytest's
    capsys, or a caller's redirect_stderr, sees the lines)."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


@contextmanager
def to_stderr(debug: bool = False) -> Iterator[None]:
    """While a command runs: the `mibe` records at INFO (DEBUG with `debug`) go to stderr. Idempotent:
    inside another `to_stderr` (a command that calls another) nothing is added; on leaving, the logger is
    as it was, so library calls after `main()` returns stay silent."""
    if any(isinstance(h, StderrHandler) for h in logger.handlers):
        yield
        return
    handler, level = StderrHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


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
