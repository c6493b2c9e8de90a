"""`--backend openai` against endpoints that misbehave: names that are not what they seem, redirects,
servers that hang, and replies that are malformed, cut short or far too long.

Every server here is a loopback `http.server` started by the test; name resolution is tested in a
fresh network namespace (only `lo`, and an /etc/hosts of the test's own), so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mibe.backends import http
from mibe.backends import openai as endpoint
from mibe.types import MibeError, Request
from tests.support.paths import REPO

Respond = Callable[[BaseHTTPRequestHandler, Any], None]


def send(
    h: BaseHTTPRequestHandler,
    status: int,
    data: bytes,
    ctype: str = "application/json",
    length: int | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    """One response; `length` may promise more bytes than are sent (a body cut short), -1 sends none."""
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    if length != -1:
        h.send_header("Content-Length", str(len(data) if length is None else length))
    for name, value in headers:
        h.send_header(name, value)
    h.end_headers()
    with contextlib.suppress(OSError):  # the client may stop reading (a reply over its bound)
        h.wfile.write(data)


def answer(text: str) -> Respond:
    body = json.dumps({"choices": [{"index": 0, "text": text}]}).encode()
    return lambda h, request: send(h, 200, body)


def raw(status: int, data: bytes, ctype: str = "application/json", length: int | None = None) -> Respond:
    return lambda h, request: send(h, status, data, ctype, length)


def redirect(status: int, location: str) -> Respond:
    return lambda h, request: send(h, status, b"", headers=(("Location", location),))


def hang(h: BaseHTTPRequestHandler, request: Any) -> None:
    h.server.owner.release.wait(60)  # accepts, reads the request, never answers


def trickle(text: str, pieces: int, gap: float) -> Respond:
    """A whole answer sent a few bytes at a time, `gap` seconds apart (as a streaming server would)."""

    def respond(h: BaseHTTPRequestHandler, request: Any) -> None:
        data = json.dumps({"choices": [{"index": 0, "text": text}]}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        step = -(-len(data) // pieces)
        for at in range(0, len(data), step):
            h.wfile.write(data[at : at + step])
            h.wfile.flush()
            time.sleep(gap)

    return respond


class Server:
    """A loopback endpoint: GET /v1/models answers; each POST takes the next scripted response."""

    def __init__(self, models: Respond | None = None) -> None:
        self.script: list[Respond] = []
        self.models = models or raw(200, json.dumps({"data": [{"id": "m", "max_model_len": 4096}]}).encode())
        self.seen: list[tuple[str, str, str]] = []  # method, path, Authorization
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _record(self) -> None:
                owner.seen.append((self.command, self.path, self.headers.get("Authorization") or ""))

            def do_GET(self) -> None:
                self._record()
                owner.models(self, None)

            def do_POST(self) -> None:
                self._record()
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                (owner.script.pop(0) if owner.script else answer("yes"))(self, request)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(models: Respond | None = None) -> Server:
        started.append(Server(models))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http.time, "sleep", lambda s: None)  # the backoff itself is not under test


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


# ---- 2. names are judged by the addresses they resolve to, and those addresses are connected to ----

NETNS_CHECK = r"""
import json, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from mibe.backends.openai import OpenAIBackend
from mibe.types import MibeError, Request

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self): self._send({"data": [{"id": "m"}]})
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send({"choices": [{"index": 0, "text": "Host: " + self.headers["Host"]}]})

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
port, hosts, out = server.server_address[1], sys.argv[1], {}

def lookup(name):
    try:
        return sorted({i[4][0] for i in socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)})
    except OSError:
        return []

def attempt(name):
    try:
        backend = OpenAIBackend("m", f"http://{name}:{port}/v1", credentialed=("mednli",), retries=0)
    except MibeError as exc:
        return None, str(exc)
    return backend, backend.generate([Request("d", "q", 8)])[0]

for name in sys.argv[2:]:
    out[name] = {"lookup": lookup(name), "said": attempt(name)[1]}
pinned, said = attempt("dua-box.test")
with open(hosts, "w") as f:  # the name now points off this machine (as DNS rebinding would make it)
    f.write("127.0.0.1 localhost\n10.9.8.7 dua-box.test\n")
if pinned is not None:
    said = pinned.generate([Request("d", "q", 8)])[0]
out["rebound"] = {"lookup": lookup("dua-box.test"), "pinned": said, "new": attempt("dua-box.test")[1]}
print(json.dumps({"port": port, **out}))
"""

HOSTS = """127.0.0.1 localhost
127.0.0.1 dua-box.test
10.9.8.7 remote-box.test
127.0.0.1 mixed.test
10.9.8.7 mixed.test
"""
NAMES = ["foo.localhost", "LOCALHOST.", "localhost", "dua-box.test", "remote-box.test", "mixed.test"]


@pytest.fixture(scope="module")
def in_netns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """NETNS_CHECK's findings, run in a new network namespace (only `lo`) with the test's /etc/hosts."""
    if not (shutil.which("unshare") and shutil.which("ip") and shutil.which("mount")):
        pytest.skip("needs unshare, ip and mount (util-linux, iproute2) to make a network namespace")
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here (unshare -n -m: {probe.stderr.strip()})")
    hosts = tmp_path_factory.mktemp("netns") / "hosts"
    hosts.write_text(HOSTS)
    script = 'mount --bind "$1" /etc/hosts && ip link set lo up && exec "$2" -c "$3" "$1" "${@:4}"'
    command = ["unshare", "-n", "-m", "bash", "-c", script, "bash", str(hosts), sys.executable, NETNS_CHECK]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([*command, *NAMES], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_names_that_do_not_resolve_to_loopback_are_refused(in_netns: dict[str, Any]) -> None:
    port = in_netns["port"]
    for name in ["remote-box.test", "mixed.test"]:  # mixed: one loopback address is not enough
        said = in_netns[name]["said"]
        assert in_netns[name]["lookup"] == sorted({"10.9.8.7", *in_netns[name]["lookup"]})
        assert f"--base-url http://{name}:{port}/v1: {name} resolves to" in said, said
        assert "10.9.8.7" in said and "--allow-remote-credentialed" in said


@pytest.mark.parametrize("name", ["foo.localhost", "LOCALHOST."])
def test_loopback_looking_names_are_judged_by_their_lookup(in_netns: dict[str, Any], name: str) -> None:
    # Neither is in the namespace's /etc/hosts and no DNS server is reachable from it: unresolved,
    # so refused (before, the spelling alone passed the guard and the name went to DNS). A resolver
    # that maps *.localhost to 127.0.0.1 itself (systemd-resolved) makes it an allowed loopback name.
    found, said = in_netns[name]["lookup"], in_netns[name]["said"]
    if found and all(http.is_loopback_address(a) for a in found):
        assert said == f"Host: {name}:{in_netns['port']}", said
    else:
        assert "does not resolve to a loopback address here" in said, said
        assert "--allow-remote-credentialed" in said


@pytest.mark.parametrize("name", ["localhost", "dua-box.test"])
def test_a_name_resolving_to_loopback_only_is_allowed(in_netns: dict[str, Any], name: str) -> None:
    # dua-box.test: a name of the machine's own in /etc/hosts (before: refused for not being spelt
    # as a loopback name). The server sees the name in the Host header, as written.
    assert in_netns[name]["lookup"] == ["127.0.0.1"]
    assert in_netns[name]["said"] == f"Host: {name}:{in_netns['port']}"


def test_the_resolved_address_is_pinned(in_netns: dict[str, Any]) -> None:
    rebound = in_netns["rebound"]
    assert rebound["lookup"] == ["10.9.8.7"]  # a fresh lookup would now leave the machine
    assert rebound["pinned"] == f"Host: dua-box.test:{in_netns['port']}"  # the backend still goes to lo
    assert "dua-box.test resolves to 10.9.8.7" in rebound["new"]  # and a new backend is refused


@pytest.mark.parametrize("netloc", ["u:p@127.0.0.1", "u@127.0.0.1", ":secret@127.0.0.1"])
def test_user_and_password_in_the_url_are_refused(serve: Callable[..., Server], netloc: str) -> None:
    server = serve()
    url = server.url.replace("127.0.0.1", netloc)
    with pytest.raises(MibeError) as info:
        endpoint.OpenAIBackend("m", url, credentialed=("mednli",))
    said = one_line(info)
    assert said.startswith("--base-url http://***@127.0.0.1:") and "--api-key-env" in said, said
    assert "secret" not in said and "u:p" not in said
    assert server.seen == []  # refused before any request


def test_https_checks_the_certificate_against_the_name_while_connecting_to_the_pinned_address(
    serve: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    make = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
    ]
    make += ["-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(make, check=True, capture_output=True)
    server = serve()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted as the only authority
    port = server.httpd.server_address[1]
    backend = endpoint.OpenAIBackend("m", f"https://localhost:{port}/v1", credentialed=("mednli",))
    assert set(backend.http.addresses) <= {"127.0.0.1", "::1"}
    assert backend.generate([Request("d1", "abc", 4)]) == ["yes"]
    with pytest.raises(MibeError) as info:  # the certificate names localhost, not the address
        endpoint.OpenAIBackend("m", f"https://127.0.0.1:{port}/v1")
    assert "certificate is not accepted (IP address mismatch" in one_line(info)
    # the refused one was not retried: the two probes (/models, vLLM's /version) and one POST in all
    assert [(m, path) for m, path, _ in server.seen] == [
        ("GET", "/v1/models"), ("GET", "/version"), ("POST", "/v1/completions")
    ]  # fmt: skip


# ---- 3. redirects are not followed: the API key stays with the server it was meant for ------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("where", ["models", "completions"])
def test_redirects_are_refused(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, status: int, where: str
) -> None:
    monkeypatch.setenv("MIBE_TEST_KEY", "secret")
    elsewhere = serve()
    target = f"{elsewhere.url}/{where}"
    server = serve(redirect(status, target) if where == "models" else None)
    server.script = [redirect(status, target)]
    with pytest.raises(MibeError) as info:
        backend = endpoint.OpenAIBackend("m", server.url, api_key_env="MIBE_TEST_KEY")
        backend.generate([Request("d1", "abc", 4)])
    said = one_line(info)
    assert said == (
        f"{server.url}/{where}: redirected to {target} (HTTP {status}); mibe does not follow redirects "
        "for endpoint calls (the API key would go along); use the final URL as --base-url"
    )
    assert elsewhere.seen == []  # the other port never saw a request, nor the key


# ---- 9. a hung endpoint: an idle timeout per read, retries said, Ctrl-C stops at once ---------------


def test_a_server_that_never_answers_fails_in_one_line(serve: Callable[..., Server]) -> None:
    server = serve(hang)
    started = time.monotonic()
    with pytest.raises(MibeError) as info:
        endpoint.OpenAIBackend("m", server.url, request_timeout=1)
    took = time.monotonic() - started
    assert one_line(info) == (
        f"{server.url}/models: no reply for 1 s (tried 2 times); check the server, or raise --request-timeout"
    )
    assert took < 6, took  # two 1 s waits and one backoff, not 2 x 600 s


def test_a_hung_request_is_retried_aloud_then_one_line(
    serve: Callable[..., Server], no_backoff: None, said: list[str]
) -> None:
    server = serve()
    server.script = [hang, hang]
    backend = endpoint.OpenAIBackend("m", server.url, request_timeout=1, retries=1)
    started = time.monotonic()
    with pytest.raises(MibeError) as info:
        backend.generate([Request("d1", "abc", 4)])
    assert time.monotonic() - started < 5
    assert "completions: no reply for 1 s (tried 2 times)" in one_line(info)
    assert said == [f"mibe: {server.url}/completions: no reply for 1 s; retry 1 of 1 in 1 s"]


def test_the_timeout_is_per_read_so_a_slow_steady_answer_is_not_cut(serve: Callable[..., Server]) -> None:
    server = serve()
    server.script = [trickle("a long and steady answer", pieces=4, gap=0.4)]  # 1.6 s in all
    backend = endpoint.OpenAIBackend("m", server.url, request_timeout=1, retries=0)
    assert backend.generate([Request("d1", "abc", 16)]) == ["a long and steady answer"]


def test_a_failed_request_ends_the_batch_without_waiting_for_a_hung_one(serve: Callable[..., Server]) -> None:
    server = serve()
    server.script = [hang, raw(400, b'{"error": {"message": "bad request"}}')]  # whichever comes first hangs
    backend = endpoint.OpenAIBackend("m", server.url, max_concurrency=2, request_timeout=30)
    started = time.monotonic()
    with pytest.raises(MibeError, match=r"HTTP 400: .*bad request"):
        backend.generate([Request("d1", "abc", 4), Request("d2", "xyz", 4)])
    assert time.monotonic() - started < 3  # not the 30 s the hung request would take


def test_ctrl_c_stops_a_run_at_once_and_keeps_what_was_answered(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve()
    server.script = [answer("yes")] * 3 + [hang] * 20  # the first task's 3 documents, then silence
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "mibe.cli", "run", "--backend", "openai", "--base-url", server.url]
    argv += ["--model", "m", "--demo", "--tasks", "pubmedqa,medqa", "--max-concurrency", "2"]
    argv += ["--chat-template", "none"]  # the scripted server answers completions
    process = subprocess.Popen(
        [*argv, "--output-dir", str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while sum(1 for method, _, _ in server.seen if method == "POST") < 5:  # the second task waits
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert took < 5, took
    # Its own line's end; tqdm's unclosed bar may precede it on the same line (the runner's to fix).
    assert "mibe: interrupted; run the same command again to resume\n" in err, err
    finished = json.loads((out / "results.json").read_text())["tasks"]
    assert len(finished) == 1  # the task answered before Ctrl-C stays, scored
    (task,) = finished
    assert len((out / "samples" / f"{task}.jsonl").read_text().splitlines()) == 3


# ---- 10. malformed replies: one line naming the URL and what was wrong; retried where it can help ----

HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>nginx</body></html>"
HUGE = json.dumps({"choices": [{"index": 0, "text": "x" * 2_000_000}]}).encode()


@pytest.mark.parametrize(
    ("script", "wrong", "tries"),
    [
        ([raw(200, b'{"choices": [{"text": "ye')], "the reply is not valid JSON at byte 22", 1),
        ([raw(200, b"<html><body>Sign in</body></html>", "text/html")], "answered HTML, not JSON", 1),
        ([raw(200, b'{"choices": []}')], "the reply has no choices ('choices': [])", 1),
        ([raw(200, b'{"choices": [{"index": 0}]}')], "the first choice has no text", 1),
        ([raw(200, b'{"choices": [{"text": 7}]}')], "the first choice's text is int, not text", 1),
        ([raw(200, b'{"error": {"message": "no model m"}}')], "the server answered an error: no model m", 1),
        ([raw(200, b"[1, 2]")], "the reply is JSON but not an object", 1),
        ([raw(200, b'{"choices": [', length=1000)] * 2, "the reply was cut short (13 of 1000 bytes)", 2),
        ([raw(502, HTML_502, "text/html")] * 2, "HTTP 502: 502 Bad Gateway Bad Gateway nginx", 2),
        ([raw(200, HUGE)], f"the reply is {len(HUGE)} bytes, more than the 67072 mibe reads", 1),
        ([raw(200, HUGE, length=-1)], "the reply is more than the 67072 bytes mibe reads", 1),
    ],
)
def test_a_malformed_reply_is_one_line_naming_the_url(
    serve: Callable[..., Server], no_backoff: None, script: list[Respond], wrong: str, tries: int
) -> None:
    server = serve()
    server.script = list(script)
    backend = endpoint.OpenAIBackend("m", server.url, retries=1)
    with pytest.raises(MibeError) as info:
        backend.generate([Request("d1", "abc", 4)])
    said = one_line(info)
    assert said.startswith(f"{server.url}/completions: {wrong}"), said
    assert "<" not in said
    assert len([s for s in server.seen if s[0] == "POST"]) == tries


@pytest.mark.parametrize(
    "first",
    [raw(200, b'{"choices": [{"index": 0, "text": "y', length=500), raw(502, HTML_502, "text/html")],
    ids=["cut-body", "html-502"],
)
def test_a_passing_fault_is_retried_then_answers(
    serve: Callable[..., Server], no_backoff: None, first: Respond, said: list[str]
) -> None:
    server = serve()
    server.script = [first, answer("yes")]
    backend = endpoint.OpenAIBackend("m", server.url, retries=1)
    assert backend.generate([Request("d1", "abc", 4)]) == ["yes"]
    assert (
        len(said) == 1
        and said[0].startswith(f"mibe: {server.url}/completions: ")
        and "retry 1 of 1" in said[0]
    )


def test_a_reply_longer_than_asked_is_capped_and_counted(
    serve: Callable[..., Server], said: list[str]
) -> None:
    # 4 tokens asked; the server ignores max_tokens. What is kept is what 4 tokens can hold at most
    # (64 bytes a token without the model's tokenizer), and the run says so once.
    server = serve()
    server.script = [answer("y" * 5000), answer("z" * 300), answer("short")]
    backend = endpoint.OpenAIBackend("m", server.url, max_concurrency=1)
    out = backend.generate([Request(d, "abc", 4) for d in ("d1", "d2", "d3")])
    assert out == ["y" * 256, "z" * 256, "short"]
    assert backend.capped_replies == 2
    assert said == [
        f"mibe: {server.url}: the reply for document d1 is longer than the 4 tokens asked for (the server "
        "ignores max_tokens?); kept the first 256 bytes; such replies are counted in capped_replies"
    ]
