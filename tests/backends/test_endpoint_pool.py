"""An endpoint pool (`--base-url` several times, or `--base-urls FILE`): requests go to the server with
the fewest in flight, a server that stops mid-run loses no document and scores none twice, each row
records the server that answered, and servers serving different models are refused in one line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mibe import cli
from mibe.backends import openai as endpoint
from mibe.backends import pool
from mibe.types import MibeError, Request
from tests.support.loopback import JSONHandler
from tests.support.paths import REPO

N_DOCS = 30


class _Server(JSONHandler):
    """Answers 'yes' to every document, records the ids it answered; after `stop_after` answers the
    server shuts itself down (connections are refused from then on)."""

    served: ClassVar[str] = "m"
    answered: ClassVar[list[str]] = []
    stop_after: ClassVar[int | None] = None  # answers before it stops answering
    lock: ClassVar[Any] = None

    def do_GET(self) -> None:
        self._reply({"data": [{"id": type(self).served, "max_model_len": 4096}]})

    def do_POST(self) -> None:
        body = self._body()
        cls = type(self)
        with cls.lock:
            stopped = cls.stop_after is not None and len(cls.answered) >= cls.stop_after
            if not stopped:
                cls.answered.append(json.dumps(body.get("prompt") or body.get("messages")))
        if stopped:  # a dead server: the connection closes without a reply
            self.close_connection = True
            return
        answer = (
            {"message": {"role": "assistant", "content": "yes"}} if "messages" in body else {"text": "yes"}
        )
        self._reply({"model": cls.served, "choices": [{"index": 0, **answer, "finish_reason": "stop"}]})


def _stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@contextmanager
def _serve(served: str = "m", stop_after: int | None = None) -> Iterator[tuple[str, type[_Server]]]:
    fields = {"served": served, "answered": [], "stop_after": stop_after, "lock": threading.Lock()}
    handler: Any = type("Served", (_Server,), fields)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    finally:
        _stop(server)


def _data(tmp_path: Path) -> Path:
    """N_DOCS PubMedQA documents (the demo's first, with distinct ids)."""
    demo = REPO / "tasks" / "demo" / "pubmedqa.jsonl"
    first = json.loads(demo.read_text().splitlines()[0])
    path = tmp_path / "pubmedqa.jsonl"
    rows = [{**first, "pmid": f"doc-{i}", "QUESTION": f"{first['QUESTION']} ({i})"} for i in range(N_DOCS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path: Path, urls: list[str], *extra: str) -> int:
    argv = ["run", "--backend", "openai", "--model", "m", "--tasks", "pubmedqa", "--bootstrap", "20"]
    argv += ["--data", f"pubmedqa={_data(tmp_path)}", "--output-dir", str(tmp_path / "r")]
    for url in urls:
        argv += ["--base-url", url]
    return cli.main([*argv, "--max-concurrency", "2", *extra])


def _rows(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "r" / "samples" / "pubmedqa.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_server_stopped_mid_run_loses_nothing_and_scores_each_document_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "backoff", lambda failures: 0.0)  # no rest between a server's failures
    with ExitStack() as stack:
        servers = [stack.enter_context(_serve(stop_after=s)) for s in (None, 4, None)]
        assert _run(tmp_path, [u for u, _ in servers]) == 0
    said = capsys.readouterr().err
    assert f"mibe: {servers[1][0]}: 3 requests in a row failed" in said and "2 servers left" in said
    rows = _rows(tmp_path)
    assert sorted(r["id"] for r in rows) == sorted(f"doc-{i}" for i in range(N_DOCS))  # each once
    answered = {u: [r for r in rows if r["endpoint"] == u] for u, _ in servers}
    for url, handler in servers:  # each reply a server sent is one row, and no other row names it
        assert len(answered[url]) == len(handler.answered) > 0
    assert len(servers[1][1].answered) == 4  # it answered 4, then stopped: its later requests went elsewhere
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["tasks"]["pubmedqa"]["n"] == N_DOCS
    assert [e["url"] for e in results["endpoints"]] == [u for u, _ in servers]  # each recorded


def test_each_row_records_its_endpoint_and_the_load_is_shared(tmp_path: Path) -> None:
    with _serve() as (a, ha), _serve() as (b, hb):
        assert _run(tmp_path, [a, b]) == 0
    rows = _rows(tmp_path)
    assert {r["endpoint"] for r in rows} == {a, b}
    assert len(ha.answered) + len(hb.answered) == N_DOCS  # no request sent twice
    assert sum(r["endpoint"] == a for r in rows) == len(ha.answered)


def test_servers_serving_different_models_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _serve("m") as (a, _), _serve("other") as (b, hb):
        assert _run(tmp_path, [a, b]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"mibe: error: --base-url {b}: serves other") and "same model" in err
    assert hb.answered == []  # refused before any document was sent


def test_base_urls_file(tmp_path: Path) -> None:
    with _serve() as (a, _), _serve() as (b, _):
        listing = tmp_path / "servers.txt"
        listing.write_text(f"# the pool\n{a}\n\n{b}/  # trailing slash is the same server\n{a}\n")
        assert pool.urls([], str(listing)) == [a, b]
        assert _run(tmp_path, [], "--base-urls", str(listing)) == 0
    assert {r["endpoint"] for r in _rows(tmp_path)} == {a, b}


def test_a_missing_base_urls_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MibeError, match=r"^--base-urls .*nope.txt: cannot read it"):
        pool.urls([], str(tmp_path / "nope.txt"))


def test_every_server_failing_is_one_error_not_a_hang() -> None:
    with _serve() as (a, _), _serve() as (b, _):
        members = [endpoint.OpenAIBackend("m", u, retries=0) for u in (a, b)]
    backend = pool.PoolBackend(members, rest=lambda n: 0.0)
    with pytest.raises(MibeError, match="every server of the pool failed"):
        backend.generate([Request(f"d{i}", "Is it?", 4, ()) for i in range(4)])


def test_the_fewest_in_flight_get_the_next_request() -> None:
    with _serve() as (a, _), _serve() as (b, _):
        members = [endpoint.OpenAIBackend("m", u, max_concurrency=3) for u in (a, b)]
        backend = pool.PoolBackend(members)
        backend.live[0].in_flight = 2
        assert backend._pick(0.0) is backend.live[1]
        backend.live[1].in_flight = 3  # full: the busier one still has room
        assert backend._pick(0.0) is backend.live[0]
        backend.live[0].in_flight = 3
        assert backend._pick(0.0) is None


class _Flaky(_Server):
    """Drops the connection of its first two requests, then answers."""

    refused: ClassVar[int] = 0

    def do_POST(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.refused += 1
            drop = cls.refused <= 2
        if drop:
            self._body()
            self.close_connection = True
            return
        super().do_POST()


def test_a_resting_server_is_waited_for_and_then_answers() -> None:
    """One server failing twice then answering: the pool rests it after each failure (1st, then 2nd
    failure in a row), then its answer is kept, once."""
    handler: Any = type("Flaky", (_Flaky,), {"answered": [], "lock": threading.Lock(), "refused": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        rests: list[int] = []
        member = endpoint.OpenAIBackend("m", url, retries=0)
        backend = pool.PoolBackend([member], rest=lambda n: rests.append(n) or 0.05)
        out = backend.generate([Request("d0", "Is it?", 4, ())])
    finally:
        _stop(server)
    assert out == ["yes"] and rests == [1, 2] and handler.refused == 3
    assert backend.answered_by("d0") == url and len(handler.answered) == 1
