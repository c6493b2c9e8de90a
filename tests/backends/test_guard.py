"""Credentialed data never goes to an endpoint off this machine unless the user says why.

Remote URLs here are under the reserved `.invalid` domain, and the socket layer is closed for the
in-process runs, so a test that let a request through would fail instead of contacting anything.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mibe import cli
from mibe.backends import policy
from mibe.types import MibeError


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.8.9.10/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://[::ffff:127.0.0.1]:8000/v1", True),
        # Names are judged by what they resolve to (backends/test_endpoint_security.py), not as written.
        ("http://localhost:8000/v1", False),
        ("https://LOCALHOST./v1", False),
        ("http://worker.localhost/v1", False),
        ("http://mimic-cluster.invalid/v1", False),
        ("http://10.0.0.5:8000/v1", False),
        ("http://192.168.1.20/v1", False),
        ("http://0.0.0.0:8000/v1", False),
        ("http://127.0.0.1.invalid/v1", False),  # a name, not an address: never resolved
        ("http://localhost.invalid/v1", False),
        ("https://api.example.invalid/v1", False),
        ("not a url", False),
    ],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert policy.is_loopback(url) is loopback


@pytest.mark.parametrize(
    ("url", "credentialed", "reason", "expected"),
    [
        ("http://a.invalid/v1", (), None, None),  # nothing credentialed: no guard
        ("http://127.0.0.1:8000/v1", ("mednli",), None, None),  # loopback: allowed, nothing to record
        (
            "http://a.invalid/v1",
            ("mednli", "emrqa"),
            " private DUA deployment ",
            {
                "endpoint": "http://a.invalid/v1",
                "tasks": ["emrqa", "mednli"],
                "reason": "private DUA deployment",
            },
        ),
    ],
)
def test_guard_allows(url: str, credentialed: tuple, reason: str | None, expected: dict | None) -> None:
    assert policy.guard(url, credentialed, reason) == expected


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_guard_refuses_without_a_reason(reason: str | None) -> None:
    with pytest.raises(MibeError) as info:
        policy.guard("http://a.invalid/v1", ("mednli",), reason)
    message = str(info.value)
    assert "\n" not in message
    assert "mednli" in message and "--allow-remote-credentialed" in message


class _Closed(OSError):
    pass


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name lookup and connection fails and is recorded."""
    tried: list[str] = []

    def lookup(host: object, *args: object, **kwargs: object) -> list:
        tried.append(f"getaddrinfo {host}")
        raise _Closed(f"test: no network ({host})")

    def connect(self: socket.socket, address: object) -> None:
        tried.append(f"connect {address}")
        raise _Closed(f"test: no network ({address})")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return tried


def test_remote_credentialed_run_is_refused_before_any_request(
    tmp_path: Path, no_network: list[str], capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    argv = ["run", "--backend", "openai", "--base-url", "http://mimic-cluster.invalid/v1"]
    argv += ["--model", "served-model", "--demo", "--tasks", "pubmedqa,mednli", "--output-dir", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "mednli" in err and "--allow-remote-credentialed" in err
    # The name was looked up (to judge what it resolves to), and nothing was connected to.
    assert no_network == ["getaddrinfo mimic-cluster.invalid"]
    assert not out.exists()


def test_the_override_lets_the_run_through_to_the_network(
    tmp_path: Path, no_network: list[str], capsys: pytest.CaptureFixture
) -> None:
    # With a reason the guard steps aside: the first thing that happens is the endpoint lookup
    # (refused here). tests/backends/test_openai.py shows the override recorded in results.json.
    argv = ["run", "--backend", "openai", "--base-url", "http://mimic-cluster.invalid/v1"]
    argv += ["--model", "served-model", "--demo", "--tasks", "mednli", "--output-dir", str(tmp_path / "r")]
    argv += ["--allow-remote-credentialed", "hospital-internal vLLM under our DUA"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the server" in err, err
    assert no_network and all("mimic-cluster.invalid" in t for t in no_network)


def test_public_tasks_may_use_a_remote_endpoint(
    tmp_path: Path, no_network: list[str], capsys: pytest.CaptureFixture
) -> None:
    argv = ["run", "--backend", "openai", "--base-url", "http://mimic-cluster.invalid/v1"]
    argv += ["--model", "served-model", "--demo", "--tasks", "pubmedqa", "--output-dir", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    assert "cannot reach the server" in capsys.readouterr().err


def test_openai_backend_needs_no_torch() -> None:
    # The endpoint backend and its guard are standard library only: a thin client machine works.
    code = "import sys, mibe.backends.openai; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
