"""HTTP for the endpoint backend: standard library only, one resolved address, no redirects.

Why not urllib: it resolves the host name again for every request (so the address the credentialed
guard checked need not be the one connected to), follows redirects with the API key attached, uses
HTTP(S)_PROXY (a proxy off this machine would see credentialed prompts), and reads a reply of any
size whole. Here the name is resolved once and every request connects to those addresses (TLS still
checks the certificate against the name), a redirect is an error, a reply is read up to a bound the
caller derives from what it asked for, and the timeout is an idle one: no byte for that long.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from mibe.log import logger
from mibe.types import MibeError

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
ERROR_BODY_BYTES = 4096  # an error page is shown, never kept: its first few KiB say what is wrong


class Cancelled(Exception):
    """The backend was interrupted (Ctrl-C in the main thread): a worker stops without retrying."""


class _Attempt(Exception):
    """One failed attempt: what went wrong, and whether another attempt may fare better."""

    def __init__(self, what: str, retry: bool) -> None:
        super().__init__(what)
        self.what, self.retry = what, retry


def split(base_url: str) -> SplitResult:
    """The URL's parts, checked before any lookup: http(s), a host, a port, no user:password."""
    try:
        parts = urlsplit(base_url)
    except ValueError as exc:  # "Invalid IPv6 URL": a bracket left open
        raise MibeError(f"--base-url {base_url}: not a URL ({exc}); e.g. http://[::1]:8000/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MibeError(f"--base-url {base_url}: expected http(s)://HOST:PORT/v1")
    if parts.username is not None or parts.password is not None:
        shown = base_url.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1], 1)
        raise MibeError(
            f"--base-url {shown}: holds user:password, which would be sent to the server in clear; "
            "drop it from the URL and pass the key with --api-key-env VARIABLE"
        )
    try:
        parts.port  # noqa: B018 (the property raises on a port that is not a number)
    except ValueError:
        raise MibeError(f"--base-url {base_url}: the port is not a number 0-65535") from None
    return parts


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is not part of it
    except ValueError:
        return False
    return True


def is_loopback_address(host: str) -> bool:
    """True only for an address (not a name) on the loopback interface, IPv4-mapped IPv6 included."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address `host` resolves to, in the resolver's order (an address stays itself, unlooked-up).

    Raises OSError when the name does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def _detail(data: bytes) -> str:
    """An error body as one short line: tags dropped (a proxy's HTML page), whitespace folded."""
    text = data.decode("utf-8", errors="replace")
    if text.lstrip().startswith("<"):
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
        text = re.sub(r"<[^>]*>", " ", text)
    return " ".join(text.split())[:300]


def parse_json(data: bytes, content_type: str) -> dict[str, Any]:
    """A 2xx body as a JSON object, or _Attempt saying in a few words what the body was instead."""
    head = data[:200].decode("utf-8", errors="replace").lstrip()
    if "html" in content_type.lower() or head.startswith("<"):
        raise _Attempt(
            f"answered HTML, not JSON ({_detail(data)[:80]!r}); is --base-url the API's URL?", False
        )
    try:
        reply = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        where = f" at byte {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise _Attempt(f"the reply is not valid JSON{where} ({head[:60]!r})", False) from None
    if not isinstance(reply, dict):
        raise _Attempt(f"the reply is JSON but not an object ({head[:60]!r})", False)
    return reply


def read_body(response: http.client.HTTPResponse, limit: int) -> bytes:
    """At most `limit` bytes of the body; a longer one is refused, a body cut short is retried."""
    declared = response.length
    if declared is not None and declared > limit:
        raise _Attempt(
            f"the reply is {declared} bytes, more than the {limit} mibe reads for this request", False
        )
    chunks, got = [], 0
    try:
        while piece := response.read(min(65536, limit + 1 - got)):
            chunks.append(piece)
            got += len(piece)
            if got > limit:
                raise _Attempt(f"the reply is more than the {limit} bytes mibe reads for this request", False)
    except http.client.IncompleteRead as exc:  # a chunked body whose connection closed mid-chunk
        raise _Attempt(f"the reply was cut short after {got + len(exc.partial)} bytes", True) from None
    if response.length:  # Content-Length promised more than arrived before the connection closed
        raise _Attempt(f"the reply was cut short ({got} of {declared} bytes)", True)
    return b"".join(chunks)


class Endpoint:
    """One server: its name resolved once, every request connected to those addresses."""

    def __init__(
        self,
        base_url: str,
        addresses: Sequence[str],
        idle_timeout: float,
        headers: dict[str, str],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.parts = split(self.base_url)
        self.addresses = tuple(addresses)
        self.idle_timeout, self.headers = idle_timeout, headers
        self._live: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    # ---- interruption ------------------------------------------------------------------------------
    def restart(self) -> None:
        """A fresh cancel flag for the next batch; workers of an interrupted one keep the old, set one."""
        self.cancelled = threading.Event()

    def abort(self) -> None:
        """Stop every request in flight now: their blocked reads return at once, nothing is retried."""
        self.cancelled.set()
        with self._lock:
            live = list(self._live)
        for connection in live:
            with contextlib.suppress(AttributeError, OSError):  # no socket yet, or already closed
                connection.sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread

    # ---- one request ----------------------------------------------------------------------------------
    def _connect(self, connection: http.client.HTTPConnection, port: int, timeout: float) -> socket.socket:
        """The pinned addresses in order; the name is never looked up again."""
        last: OSError | None = None
        for host in self.addresses:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            connection.sock = sock  # reachable by abort() while connecting
            try:
                sock.settimeout(timeout)  # per blocking call: an idle timeout, not a total one
                sock.connect((host, port))
                return sock
            except OSError as exc:
                last = exc
                sock.close()
        raise last or OSError("no address to connect to")

    def _once(self, method: str, url: str, path: str, data: bytes | None, limit: int) -> dict[str, Any]:
        parts = self.parts
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        # host stays the name as written: the Host header and TLS (SNI, certificate) use it.
        connection = kind(parts.hostname, parts.port, timeout=self.idle_timeout)
        # http.client opens its socket through this attribute: connect to the pinned addresses instead.
        connection._create_connection = lambda address, timeout, *rest: self._connect(
            connection, address[1], timeout
        )
        with self._lock:
            self._live.add(connection)
        try:
            connection.request(method, path, body=data, headers=self.headers)
            response = connection.getresponse()
            if 300 <= response.status < 400:
                where = response.getheader("Location")
                raise MibeError(
                    f"{url}: redirected to {urljoin(url, where) if where else 'another URL'} "
                    f"(HTTP {response.status}); mibe does not follow redirects for endpoint calls (the API "
                    "key would go along); use the final URL as --base-url"
                )
            if response.status >= 400:
                try:
                    detail = _detail(response.read(ERROR_BODY_BYTES))
                except http.client.HTTPException:
                    detail = response.reason
                raise _Attempt(f"HTTP {response.status}: {detail}", response.status in RETRY_STATUS)
            return parse_json(read_body(response, limit), response.getheader("Content-Type") or "")
        finally:
            with self._lock:
                self._live.discard(connection)
            connection.close()

    def call(
        self, route: str, body: dict[str, Any] | None, limit: int, retries: int, quiet: bool = False
    ) -> dict[str, Any]:
        """The JSON reply to GET (body None) or POST `route`, retried with backoff where that can help;
        each retry is announced (unless `quiet`: the first probe's failure says it all in one line)."""
        cancelled = self.cancelled  # this batch's flag, even if a later batch replaces it
        url = f"{self.base_url}/{route}"
        path = f"{self.parts.path.rstrip('/')}/{route}"
        data = None if body is None else json.dumps(body).encode()
        attempts = retries + 1
        for attempt in range(attempts):
            if cancelled.is_set():
                raise Cancelled(url)
            try:
                return self._once("GET" if data is None else "POST", url, path, data, limit)
            except _Attempt as exc:
                failure = exc
            except TimeoutError:
                failure = _Attempt(f"no reply for {self.idle_timeout:g} s", True)
            except ssl.SSLCertVerificationError as exc:  # the same certificate next time
                failure = _Attempt(f"the server's certificate is not accepted ({exc.verify_message})", False)
            except OSError as exc:  # refused, reset, unreachable
                failure = _Attempt(f"cannot reach the server ({exc})", True)
            except http.client.HTTPException as exc:
                failure = _Attempt(f"not a valid HTTP reply ({type(exc).__name__}: {exc})", False)
            if cancelled.is_set():  # the failure is abort()'s doing: say nothing, retry nothing
                raise Cancelled(url)
            if not failure.retry or attempt == attempts - 1:
                raise MibeError(self._final(url, failure, attempt + 1)) from None
            # Exponential backoff with jitter, so many clients do not retry in lockstep.
            delay = min(30.0, 2**attempt) * (0.5 + random.random() / 2)
            if not quiet:
                logger.info(f"mibe: {url}: {failure.what}; retry {attempt + 1} of {retries} in {delay:.0f} s")
            self._sleep(delay, cancelled, url)
        raise AssertionError("unreachable")

    def _final(self, url: str, failure: _Attempt, tries: int) -> str:
        tried = f" (tried {tries} times)" if tries > 1 else ""
        if failure.what.startswith("cannot reach"):
            return f"--base-url {self.base_url}: {failure.what}{tried}; start it or fix --base-url"
        if failure.what.startswith("no reply"):
            return f"{url}: {failure.what}{tried}; check the server, or raise --request-timeout"
        return f"{url}: {failure.what}{tried}"

    @staticmethod
    def _sleep(delay: float, cancelled: threading.Event, url: str) -> None:
        # Short naps (not Event.wait) so a patched time.sleep skips the backoff in tests as before.
        for _ in range(max(1, round(delay / 0.2))):
            if cancelled.is_set():
                raise Cancelled(url)
            time.sleep(min(0.2, delay))
