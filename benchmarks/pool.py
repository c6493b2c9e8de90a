"""Endpoint pool throughput: 1, 2 and 4 loopback servers, each with a fixed latency per request and
a stated capacity (requests it works on at once; more wait in its queue), against one server.

    python benchmarks/pool.py --requests 480 --latency 0.05 --capacity 4

Each server is the tests' loopback server (tests/support/loopback.py, on 127.0.0.1) that sleeps
`latency` seconds per request under a semaphore of `capacity`. mibe's pool (mibe/backends/pool.py)
sends `--max-concurrency capacity` requests to each server; one server's ideal is capacity / latency
requests per second, N servers' is N times that. The figure is the throughput ratio against one
server (goal >= 0.9x linear).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mibe.backends.openai import OpenAIBackend
from mibe.backends.pool import PoolBackend
from mibe.types import Request
from tests.support.loopback import JSONHandler, serving


def handler(latency: float, capacity: int) -> type[JSONHandler]:
    gate = threading.Semaphore(capacity)

    class Served(JSONHandler):
        def do_GET(self) -> None:
            self._reply({"data": [{"id": "m", "max_model_len": 4096}]})

        def do_POST(self) -> None:
            self._body()
            with gate:  # the server's capacity: more requests wait here
                time.sleep(latency)
            self._reply({"model": "m", "choices": [{"index": 0, "text": "yes", "finish_reason": "stop"}]})

    return Served


def timed(n_servers: int, requests: int, latency: float, capacity: int) -> float:
    with ExitStack() as stack:
        urls = [stack.enter_context(serving(handler(latency, capacity))) for _ in range(n_servers)]
        members = [OpenAIBackend("m", u, max_concurrency=capacity, retries=0) for u in urls]
        backend = PoolBackend(members)
        batch = [Request(f"d{i}", "Is it?", 4, ()) for i in range(requests)]
        started = time.perf_counter()
        for at in range(0, requests, backend.chunk_size):  # as the runner hands them: chunk by chunk
            backend.generate(batch[at : at + backend.chunk_size])
        return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=480)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--capacity", type=int, default=4)
    args = ap.parse_args()
    ideal = args.capacity / args.latency
    print(f"{args.requests} requests, {args.latency * 1000:g} ms each, capacity {args.capacity} per server")
    print("| servers | wall | requests/s | ideal requests/s | vs one server | of linear |")
    print("|---|---|---|---|---|---|")
    base = None
    for n in (1, 2, 4):
        wall = timed(n, args.requests, args.latency, args.capacity)
        rate = args.requests / wall
        base = base or rate
        ratio = rate / base
        print(f"| {n} | {wall:.2f} s | {rate:.1f} | {n * ideal:.0f} | {ratio:.2f}x | {ratio / n:.2f} |")


if __name__ == "__main__":
    main()
