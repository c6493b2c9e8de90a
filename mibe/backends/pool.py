"""A pool of OpenAI-compatible servers serving one model (`--base-url` given several times, or
`--base-urls FILE`): each request goes to the live server with the fewest requests in flight (at most
`--max-concurrency` per server); a failed request is queued again at once for another server, and a
server that fails `max_failures` requests in a row is removed for the rest of the run. Every server
is one `OpenAIBackend` the endpoint policy admitted on its own (guard verdict, key, announcement,
record); the pool only schedules. A document is answered exactly once: its result is kept from the
one reply that succeeded, and the server that gave it is recorded in its samples row (`endpoint`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from mibe.backends.base import TokenizedBackend
from mibe.backends.http import Cancelled
from mibe.log import logger
from mibe.types import MibeError, Request

MAX_FAILURES = 3  # consecutive failed requests after which a server leaves the pool


def urls(given: Sequence[str], path: str | None) -> list[str]:
    """Every --base-url, then each line of --base-urls FILE (blank lines and # comments skipped);
    a URL named twice is one server."""
    found = [u.rstrip("/") for u in given]
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise MibeError(
                f"--base-urls {path}: cannot read it ({exc}); give a file of URLs, one a line"
            ) from None
        found += [ln.split("#", 1)[0].strip().rstrip("/") for ln in lines]
        if not any(ln.split("#", 1)[0].strip() for ln in lines):
            raise MibeError(f"--base-urls {path}: holds no URL; write one server URL a line")
    return list(dict.fromkeys(u for u in found if u))


def backoff(failures: int) -> float:
    """Seconds a server rests after its n-th failure in a row before it gets another request."""
    return min(30.0, 2.0 ** (failures - 1))


def served_identity(member: Any) -> dict[str, Any]:
    """What a server says it serves (the served-model identity the run records, and every id its
    /v1/models lists): servers of one pool must agree, so every document is answered by one model."""
    return {**member.served, "models": sorted(member.served_models)}


def check_same_model(members: Sequence[Any]) -> None:
    first = served_identity(members[0])
    for m in members[1:]:
        found = served_identity(m)
        if found != first:
            raise MibeError(
                f"--base-url {m.base_url}: serves {_shown(found)}, but --base-url {members[0].base_url} "
                f"serves {_shown(first)}; every server of a pool must serve the same model"
            )


def _shown(identity: dict[str, Any]) -> str:
    names = ", ".join(identity["models"]) or "no model list"
    return f"{names} (context {identity['max_model_len']}, version {identity['version']})"


class _Member:
    """A server's scheduling state: requests in flight, failures in a row, resting until when."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.in_flight, self.failures, self.ready_at = backend, 0, 0, 0.0


class PoolBackend(TokenizedBackend):
    def __init__(
        self,
        members: Sequence[Any],
        max_failures: int = MAX_FAILURES,
        rest: Callable[[int], float] | None = None,
    ) -> None:
        if not members:
            raise MibeError("--base-url: give at least one server")
        check_same_model(members)
        self.all = list(members)
        self.live = [_Member(m) for m in members]
        self.max_failures, self._rest = max_failures, rest
        self.first = members[0]
        self.model_name, self.max_context = self.first.model_name, self.first.max_context
        # One model behind every server: the first's tokenizer counts, cuts and decodes for all.
        self.tokenizer, self.local_tokenizer = self.first.tokenizer, self.first.local_tokenizer
        self.max_concurrency = sum(m.max_concurrency for m in members)
        self.chunk_size = 4 * self.max_concurrency
        self._by: dict[str, Any] = {}  # doc id -> the server that answered it

    # ---- scheduling ---------------------------------------------------------------------------------
    def _pick(self, now: float, avoid: Sequence[_Member] = ()) -> _Member | None:
        """The free server with the fewest in flight; one that already failed this request only when
        no other server is left."""
        avoid = [m for m in avoid if m in self.live]
        free = [m for m in self.live if m.in_flight < m.backend.max_concurrency and m.ready_at <= now]
        fresh = [m for m in free if m not in avoid] if len(self.live) > len(avoid) else free
        return min(fresh, key=lambda m: m.in_flight, default=None)

    def _failed(self, member: _Member, exc: MibeError) -> None:
        member.failures += 1
        if member.failures >= self.max_failures and member in self.live:
            self.live.remove(member)
            left = len(self.live)
            logger.info(
                f"mibe: {member.backend.base_url}: {member.failures} requests in a row failed ({exc}); "
                f"removed from the pool, {left} server{'s' if left != 1 else ''} left"
            )
        else:
            rest = self._rest or backoff  # looked up now: tests replace pool.backoff so nothing waits
            member.ready_at = time.monotonic() + rest(member.failures)

    def _dispatch(self, fn: Callable[[Any, Request], Any], requests: Sequence[Request]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        pending = deque(range(len(requests)))
        running: dict[Future, tuple[int, _Member]] = {}
        self._tried: dict[int, list[_Member]] = {}  # request -> the servers it failed on
        for m in self.live:
            m.backend.http.restart()
        executor = ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(requests))))
        try:
            while pending or running:
                self._submit(fn, requests, pending, running, executor)
                timeout = self._wait_for(running)
                if not running:  # every free server is resting: wait() on nothing would not sleep
                    time.sleep(timeout or 0.0)
                    continue
                done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    i, member = running.pop(future)
                    member.in_flight -= 1
                    exc = future.exception()
                    if exc is None:
                        results[i], member.failures = future.result(), 0
                        self._by[requests[i].doc_id] = member.backend
                        continue
                    if isinstance(exc, Cancelled) or not isinstance(exc, MibeError):
                        raise exc
                    self._failed(member, exc)
                    self._tried.setdefault(i, []).append(member)
                    if not self.live:
                        raise MibeError(f"--base-url: every server of the pool failed; the last: {exc}")
                    pending.appendleft(i)  # to another server at once
            return results
        except BaseException:
            for m in self.all:
                m.http.abort()
            raise
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn: Any, requests: Sequence[Request], pending: deque, running: dict, pool: Any) -> None:
        now = time.monotonic()
        while pending:
            member = self._pick(now, self._tried.get(pending[0], ()))
            if member is None:
                return
            i = pending.popleft()
            member.in_flight += 1
            running[pool.submit(fn, member.backend, requests[i])] = (i, member)

    def _wait_for(self, running: Mapping) -> float | None:
        """How long to wait for a reply: until the first resting server may take requests again."""
        resting = [m.ready_at for m in self.live if m.ready_at > time.monotonic()]
        if not resting:
            return None if running else 0.0
        return max(0.0, min(resting) - time.monotonic())

    # ---- the Backend interface ----------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[str]:
        return self._dispatch(lambda m, r: m._one(r), requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float]]:
        return self._dispatch(lambda m, r: m._scores(r), requests)

    def served_tokens(self, doc_id: str) -> int | None:
        member = self._by.get(doc_id)
        return member.served_tokens(doc_id) if member is not None else None

    def answered_by(self, doc_id: str) -> str | None:
        """The URL of the server that answered a document (its samples row's `endpoint`)."""
        member = self._by.get(doc_id)
        return member.base_url if member is not None else None

    @property
    def answered_as(self) -> set[str]:
        return set().union(*(m.answered_as for m in self.all))

    @property
    def capped_replies(self) -> int:
        return sum(m.capped_replies for m in self.all)

    def sampling_record(self) -> dict[str, Any]:
        """Each server's own record, by URL."""
        return {"endpoints": {m.base_url: m.sampling_record() for m in self.all}}

    def tokenize(self, text: str) -> list[int]:
        return self.first.tokenize(text)

    def render(self, messages: list[dict[str, str]], template: str | None, kwargs: dict[str, Any]) -> str:
        """Rendered once per server: each keeps the messages it sends for this prompt."""
        texts = [m.render(messages, template, kwargs) for m in self.all]
        return texts[0]

    def describe(self) -> dict[str, Any]:
        """The first server's description (the model is the same on each), with every server."""
        return {**self.first.describe(), "endpoints": [m.base_url for m in self.all]}
