"""Feed requests to the backend in batches: longest first, a token budget on accelerators, the batch
halved on out-of-memory (greedy outputs do not depend on the batch size), progress as it goes."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from mibe.log import logger
from mibe.types import Backend, MibeError, Request

# Short prompts share the longest batch's token budget, in at most this many times its rows: a lost
# batch costs more to redo, and past that a GPU is kept busy anyway.
MAX_GROWTH = 8


def batch_rows(costs: Sequence[int], start: int, size: int, budget: int | None) -> int:
    """How many requests from `start` the next batch takes: `size` of them, or, under a token
    budget, as many as fit it padded to the first one's cost (requests come longest first)."""
    left = len(costs) - start
    if budget is None:
        return min(size, left)
    return max(1, min(left, budget // max(1, costs[start]), size * MAX_GROWTH))


def is_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError (CUDA/MPS) or the allocator's RuntimeError text; MemoryError on CPU.
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class Progress:
    """A task's bar: whole documents done (a document counts once its row is written), with the
    tokens so far and their rate, kept current within a batch by the backend's per-step callback
    (`on_step(tokens)`: each generated token step, each log-likelihood forward). The callback does a
    counter and a clock read; the bar redraws twice a second. One bar at a time: the backend's own
    loading bars are off while it is open (hf.py), so a log never holds tqdm's cursor-up escapes."""

    def __init__(self, total: int, done: int, name: str) -> None:
        from tqdm.auto import tqdm

        fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} doc [{elapsed}<{remaining}{postfix}]"
        self.bar = tqdm(
            total=total, initial=done, desc=name, file=sys.stderr, leave=True, bar_format=fmt, position=0
        )
        self.tokens, self._base, self._rows, self._steps, self._seen = 0, done, 0, 1, 0
        self._shown = self._created = time.monotonic()
        self._started: float | None = None  # the first step: the model loads on first use, not counted
        self._before = 0  # tokens counted before the first step

    def start(self, rows: int, steps: int) -> None:
        """A batch of `rows` documents begins; it takes at most `steps` callbacks."""
        self._rows, self._steps, self._seen = rows, max(1, steps), 0

    def on_step(self, tokens: int) -> None:
        now = time.monotonic()
        if self._started is None:  # the rate counts from here: the first step's tokens come after
            self._started, self._before = now, self.tokens
        self.tokens += tokens
        self._seen += 1
        if now - self._shown >= 0.5:
            self._shown = now
            self._show(now)

    def finish(self, rows: int, tokens: int) -> None:
        """The batch's `rows` documents are written; `tokens` is its count when no callback ran."""
        self._base += rows
        self.tokens += tokens if self._seen == 0 else 0
        self.bar.n = self._base
        self._show(time.monotonic())

    def _show(self, now: float) -> None:
        since, base = (self._created, 0) if self._started is None else (self._started, self._before)
        rate = f", {(self.tokens - base) / (now - since):.0f} tok/s" if now - since >= 0.5 else ""
        self.bar.set_postfix_str(f"{self.tokens} tok{rate}", refresh=False)
        self.bar.refresh()

    def write(self, line: str) -> None:
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()


def progress(total: int, done: int, name: str) -> Progress:
    return Progress(total, done, name)


def _call(backend: Backend, batch: Sequence[Request]) -> list[Any]:
    if batch[0].continuations:
        scores = backend.loglikelihood(batch)
        for request, values in zip(batch, scores, strict=True):
            # Checked before the row is written: a NaN saved in the samples would stay on every resume.
            # -inf is a choice the model rules out; NaN or +inf, or nothing finite, is a broken model.
            if any(math.isnan(v) or v == math.inf for v in values) or not any(map(math.isfinite, values)):
                raise MibeError(
                    f"document {request.doc_id}: the model gave the log-likelihoods {values} "
                    "(a numerically broken model or precision: try --dtype float32)"
                )
        return scores
    return backend.generate(batch)


def run(
    backend: Backend,
    requests: list[Request],
    lengths: dict[str, int],
    size: int,
    budget_per_row: int | None,
    extra: int,
    name: str,
    bar: Progress | None = None,
) -> Iterator[tuple[list[Request], list[Any]]]:
    """(batch, outputs) pairs, longest prompt first, so an out-of-memory batch shows up at once.

    `budget_per_row` set (accelerators): `size` rows of the longest prompts fix a token budget
    that shorter prompts share in larger batches. Not on a CPU, where larger batches only ran slower
    (600 documents at batch 4 / 8 / 16: 18 / 19.5 / 23 s)."""
    requests = sorted(requests, key=lambda r: -lengths[r.doc_id])
    costs = [lengths[r.doc_id] + extra for r in requests]
    budget = size * costs[0] if budget_per_row and costs else None
    start = 0
    while start < len(requests):
        rows = batch_rows(costs, start, size, budget)
        batch = requests[start : start + rows]
        if bar is not None:  # generation: a step per new token; log-likelihood: one or two forwards
            bar.start(len(batch), 2 if batch[0].continuations else max(r.max_new_tokens for r in batch))
        try:
            outputs = _call(backend, batch)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if rows == 1:
                raise MibeError(
                    f"{name}: out of memory at batch size 1 (document {batch[0].doc_id}); "
                    "use a smaller --dtype, a larger device, or a shorter-context model"
                ) from None
            half = rows // 2
            size, budget = min(size, half), budget and costs[start] * half
            logger.info(f"mibe: {name}: out of memory; retrying with batch size {half}")
            continue
        yield batch, outputs
        start += len(batch)
