"""Loopback OpenAI-compatible servers for tests (and benchmarks/pool.py): JSON in, JSON out, on
127.0.0.1 only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet handler that reads a JSON request body and answers JSON (status 200 unless told)."""

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """The handler served on a free loopback port; yields the base URL (…/v1), shut down after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


class Recorder(JSONHandler):
    """An OpenAI-compatible server that answers anything and records, per request, the method, the
    route and the Authorization header it received (None without one), in `seen` (set per server)."""

    seen: list[tuple[str, str, str | None]]
    content = "normal heart size"  # a completion's text
    chat = "faithfulness: 4\ncompleteness: 4\nharmful_omission: 5\nconcision: 3"  # a judge's reply

    def _record(self, method: str) -> None:
        type(self).seen.append((method, self.path.rsplit("/", 1)[-1], self.headers.get("Authorization")))

    def do_GET(self) -> None:
        self._record("GET")
        self._reply({"data": [{"id": "m"}, {"id": "j"}, {"id": "x"}]})

    def do_POST(self) -> None:
        self._body()
        self._record("POST")
        if self.path.endswith("chat/completions"):
            message = {"role": "assistant", "content": self.chat}
            self._reply({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
        else:
            self._reply({"choices": [{"index": 0, "text": self.content, "finish_reason": "stop"}]})


def recorder() -> type[Recorder]:
    """A Recorder class of its own (its own `seen`), for one server."""
    return type("Served", (Recorder,), {"seen": []})
