"""Endpoint pool throughput: 1, 2 and 4 loopback servers, each with a fixed latency per request and
a stated capacity (requests it works on at once; more wait in its queue), against one server.

    python benchmarks/pool.py --requests 480 --latency 0.05 --capacity 4

Each server is a ThreadingHTTPServer on 127.0.0.1 that sleeps `latency` seconds per request under a
semaphore of `capacity`. mibe's pool (mibe/backends/pool.py) sends `--max-concurrency capacity`
requests to each server; one server's ideal is capacity / latency requests per second, N servers'
is N times that. The figure is the throughput ratio against one server (goal >= 0.9x linear).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mibe.backends.openai import OpenAIBackend
from mibe.backends.pool import PoolBackend
from mibe.types import Request


def handler(latency: float, capacity: int) -> type[BaseHTTPRequestHandler]:
    gate = threading.Semaphore(capacity)

    class Served(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply({"data": [{"id": "m", "max_model_len": 4096}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with gate:  # the server's capacity: more requests wait here
                time.sleep(latency)
            self._reply({"model": "m", "choices": [{"index": 0, "text": "yes", "finish_reason": "stop"}]})

    return Served


@contextmanager
def serve(latency: float, capacity: int) -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(latency, capacity))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def timed(n_servers: int, requests: int, latency: float, capacity: int) -> float:
    with ExitStack() as stack:
        urls = [stack.enter_context(serve(latency, capacity)) for _ in range(n_servers)]
        quiet = lambda line: None  # noqa: E731
        members = [OpenAIBackend("m", u, max_concurrency=capacity, retries=0, say=quiet) for u in urls]
        backend = PoolBackend(members, say=quiet)
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
        print(
            f"| {n} | {wall:.2f} s | {rate:.1f} | {n * ideal:.0f} | {rate / base:.2f}x | {rate / base / n:.2f} |"
        )


if __name__ == "__main__":
    main()
