"""`--request-timeout` reaches the endpoint backend and never blocks a resume."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mibe import cli
from mibe.backends import factory
from mibe.commands import run_config
from mibe.runner import api


class Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_request_timeout_reaches_the_backend_and_never_blocks_a_resume() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        args = ["run", "--model", "m", "--backend", "openai", "--base-url", url, "--request-timeout", "7.5"]
        parsed = cli._parser().parse_args(args)
        parsed.model = parsed.model[0]  # --model may be repeated (a sweep): main picks each in turn
        config = run_config.from_args(parsed)
        assert config.request_timeout == 7.5
        assert factory.make_backend(config).http.idle_timeout == 7.5
        assert "request_timeout" not in api.identity(config)
        assert "--request-timeout" in cli._parser()._subparsers._group_actions[0].choices["run"].format_help()
    finally:
        server.shutdown()
