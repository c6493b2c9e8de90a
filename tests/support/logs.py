"""The `mibe` logger's messages, collected while a block runs (what `say=lines.append` gave)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class _Lines(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def collected(lines: list[str] | None = None) -> Iterator[list[str]]:
    """The messages (DEBUG and up) the `mibe` logger receives inside the block, in order, appended to
    `lines` when given (a list the test also fills itself, for the order of events)."""
    lines = [] if lines is None else lines
    logger, handler = logging.getLogger("mibe"), _Lines(lines)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
