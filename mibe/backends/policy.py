"""The one policy for every model endpoint (the evaluated model, judges, the answer extractor): who
receives text and keys. Every command that talks to a model passes each endpoint through `admit`
before anything loads or any request leaves, then builds it with mibe.backends.factory.

- The credentialed guard, per endpoint: credentialed tasks go only to local models and loopback
  endpoints, unless the user authorised that endpoint (`--allow-remote-credentialed URL=REASON`;
  a bare `REASON` covers only the evaluated model's `--base-url`, never a judge or an extractor).
- The API key, per endpoint: the evaluated model's from `--api-key-env` (or OPENAI_API_KEY when set);
  a judge's or an extractor's only from its own spec (`openai:URL#NAME?key_env=VAR`).
- The announcement and the record: each endpoint that receives text over HTTP is said in one line on
  stderr before its first request, and every model is recorded in results.json's `endpoints` (role,
  URL, model, local/loopback/remote, credentialed tasks sent, the authorisation and its reason, the
  key's variable name — never the key).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from mibe.backends import http
from mibe.backends.endpoint import Endpoint
from mibe.types import MibeError

FLAG = "--allow-remote-credentialed"


def is_loopback(url: str) -> bool:
    """True only when the URL's host is a loopback address; a name is never resolved here (the backend
    resolves it once and hands the addresses to `guard`)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # not a URL: nothing proves it loopback
        return False
    return http.is_loopback_address(host)


REASON_FIX = '--allow-remote-credentialed "<why this endpoint is allowed>"'


def guard(
    base_url: str,
    credentialed: Sequence[str],
    reason: str | None,
    addresses: Sequence[str] = (),
    label: str | None = None,
    fix: str = REASON_FIX,
) -> dict[str, Any] | None:
    """Refuse, before any request, to send credentialed tasks to an endpoint off this machine.

    `addresses`: what the URL's host name resolved to; every one must be loopback (an address in the
    URL is checked itself). `reason`: the authorisation the endpoint policy found for this endpoint
    (mibe.backends.policy). Returns the override to record in results.json when there is one, else
    None. `label` and `fix` word the refusal for the flag that named the endpoint.
    """
    if not credentialed:
        return None
    if (reason or "").strip():
        return {"endpoint": base_url, "tasks": sorted(credentialed), "reason": reason.strip()}
    host = urlsplit(base_url).hostname or ""
    found = [host] if http.is_address(host) else list(addresses)
    if found and all(http.is_loopback_address(a) for a in found):
        return None
    if http.is_address(host) or not host:
        where = "not a loopback address"
    else:
        where = (
            f"{host} resolves to {', '.join(found)}, not only to loopback"
            if found
            else (f"{host} does not resolve to a loopback address here")
        )
    raise MibeError(
        f"{label or '--base-url ' + base_url}: {where}, and {', '.join(sorted(credentialed))} "
        "hold credentialed data (PhysioNet DUA: never sent to a remote API); serve the model on "
        f"127.0.0.1, or pass {fix}"
    )


@dataclass(frozen=True)
class Authorisation:
    """One `--allow-remote-credentialed` value: an endpoint URL (None: the --base-url endpoint) and why."""

    url: str | None
    reason: str


def authorisations(values: Sequence[str] | str | None) -> tuple[Authorisation, ...]:
    """`URL=REASON` (that endpoint) or a bare `REASON` (the evaluated model's --base-url only)."""
    found: list[Authorisation] = []
    for value in (values,) if isinstance(values, str) else values or ():
        text = value.strip()
        url, reason = None, text
        if text.startswith(("http://", "https://")):
            url, eq, reason = text.partition("=")
            url = url.rstrip("/")
            if not eq or not reason.strip():
                raise MibeError(f'{FLAG} {value}: give the reason after the URL: {FLAG} "{url}=<why>"')
            try:  # a malformed URL is one line here, not a silent mismatch later
                http.split(url)
            except MibeError as exc:
                raise MibeError(f"{FLAG} {value}: {str(exc).split(': ', 1)[-1]}") from None
        if not reason.strip():
            raise MibeError(f'{FLAG}: empty; say why, e.g. {FLAG} "URL=covered by our PhysioNet DUA"')
        if any(a.url == url for a in found):
            named = f"for {url}" if url else "without URL= (for --base-url)"
            raise MibeError(f"{FLAG}: two reasons {named}; give one per endpoint")
        found.append(Authorisation(url, reason.strip()))
    return tuple(found)


def reason_for(endpoint: Endpoint, grants: Sequence[Authorisation]) -> str | None:
    """The authorisation that covers this endpoint: one naming its URL, else (evaluated model only)
    the bare reason."""
    if endpoint.base_url is None:
        return None
    url = endpoint.base_url.rstrip("/")
    named = [a.reason for a in grants if a.url == url]
    if named:
        return named[0]
    bare = [a.reason for a in grants if a.url is None]
    return bare[0] if bare and endpoint.role == "model" else None


@dataclass(frozen=True)
class Admission:
    """An endpoint the policy let through, with what it may receive and under which authorisation."""

    endpoint: Endpoint
    credentialed: tuple[str, ...]  # credentialed tasks whose text it receives
    where: str  # local (in this process), loopback, or remote
    reason: str | None  # the authorisation that lets credentialed text go to it (None: not needed)
    members: tuple[Admission, ...] = ()  # an endpoint pool: each server, admitted on its own

    @property
    def servers(self) -> tuple[Admission, ...]:
        """Each server that receives text: the pool's members, else this endpoint itself."""
        return self.members or (self,)

    @property
    def key_env(self) -> str | None:
        return self.endpoint.key_env if self.endpoint.backend == "openai" else None

    def record(self) -> dict[str, Any]:
        """results.json's `endpoints` entry: never the key, only the variable that held it."""
        e = self.endpoint
        return {
            "role": e.role,
            "spec": e.text,
            "backend": e.backend,
            "url": e.base_url,
            "model": e.model,
            "where": self.where,
            "credentialed": list(self.credentialed),
            "authorisation": self.reason,
            "key_env": self.key_env,
        }

    def line(self) -> str:
        """The one line said on stderr before the endpoint's first request."""
        e = self.endpoint
        sent = ", ".join(self.credentialed) if self.credentialed else "none"
        why = f', authorised: "{self.reason}"' if self.reason else ""
        key = f"API key from ${self.key_env}" if self.key_env else "no API key"
        return (
            f"mibe: {e.role} endpoint {e.base_url} ({self.where}, model {e.model}): credentialed tasks "
            f"sent: {sent}{why}; {key}"
        )


def admit(endpoint: Endpoint, credentialed: Iterable[str], grants: Sequence[Authorisation]) -> Admission:
    """The guard verdict for one endpoint, before anything is built or sent: one line when refused
    (a remote endpoint for credentialed tasks without its authorisation, a key variable not set)."""
    tasks = tuple(sorted(set(credentialed)))
    if endpoint.pool and endpoint.backend == "openai":  # each server on its own: guard, key, record
        members = tuple(admit(replace(endpoint, base_url=u, pool=()), tasks, grants) for u in endpoint.pool)
        where = "remote" if any(m.where == "remote" for m in members) else "loopback"
        return Admission(endpoint, tasks, where, None, members)
    if endpoint.backend != "openai":
        return Admission(endpoint, tasks, "local", None)
    url = endpoint.base_url or ""
    if not url:
        raise MibeError("--backend openai needs --base-url, e.g. http://127.0.0.1:8000/v1")
    label = f"{endpoint.flag} {endpoint.text}: " if endpoint.role != "model" else ""
    try:
        parts = http.split(url)
    except MibeError as exc:
        raise MibeError(f"{label}{exc}") from None
    _check_key(endpoint, label)
    addresses: tuple[str, ...] = ()
    try:
        addresses = http.resolve(parts.hostname or "", parts.port)
    except OSError as exc:
        unresolved = exc  # refused by the guard for credentialed tasks, else unreachable
    loopback = bool(addresses) and all(http.is_loopback_address(a) for a in addresses)
    reason = reason_for(endpoint, grants)
    fix = f'{FLAG} "{url}=<why this endpoint is allowed>"' if endpoint.role != "model" else REASON_FIX
    where = f"{label}refused: {url}" if label else None
    override = guard(url, tasks, reason, addresses, where, fix)
    if not addresses:  # said now, in one line, before any model loads
        raise MibeError(
            f"{label}--base-url {url}: cannot reach the server ({parts.hostname} does not resolve: "
            f"{unresolved}); start it or fix the URL"
        )
    return Admission(endpoint, tasks, "loopback" if loopback else "remote", reason if override else None)


def _check_key(endpoint: Endpoint, label: str) -> None:
    if endpoint.key_required and endpoint.key_env and not os.environ.get(endpoint.key_env):
        named = "--api-key-env " if endpoint.role == "model" else "key_env="
        raise MibeError(f"{label}{named}{endpoint.key_env}: that environment variable is not set")


def check_named(grants: Sequence[Authorisation], endpoints: Sequence[Endpoint]) -> None:
    """A `URL=REASON` that names no endpoint of this command is a typo, never silently unused."""
    urls = {u.rstrip("/") for e in endpoints for u in (*e.pool, e.base_url) if u}
    for grant in grants:
        if grant.url is not None and grant.url not in urls:
            shown = ", ".join(sorted(urls)) or "none"
            raise MibeError(
                f"{FLAG} {grant.url}=...: no endpoint of this command is at that URL (endpoints: "
                f"{shown}); write the URL exactly as --base-url, --judge or --extractor give it"
            )


def records(
    admitted: Iterable[Admission | None], earlier: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """results.json's `endpoints`: what an earlier (resumed) start recorded, then this start's, once
    each (None: a model given in memory, or no extractor)."""
    out = [dict(r) for r in earlier if isinstance(r, dict)]
    for a in admitted:
        for server in a.servers if a is not None else ():
            if server.record() not in out:
                out.append(server.record())
    return out
