"""What every request to a served model states about sampling, so no server default applies silently.

A parameter a request leaves out takes the server's default, and `vllm serve` takes its defaults from
the model's generation_config.json (a repetition_penalty of 1.1, a top_k of 20, ...): the same greedy
request then decodes differently on two servers of one checkpoint. mibe therefore states the standard
parameters on every request and, when the server is vLLM, vLLM's own extensions too. A hosted API that
refuses one of them (an HTTP 400 naming the parameter) loses it for that endpoint only, said in one
line and recorded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

# Greedy decoding, stated in full: the values that turn each knob off.
STANDARD: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}
# vLLM's sampling extensions (top_k -1 is "off" for every vLLM release; 0 only for recent ones).
VLLM: dict[str, Any] = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}
REFUSABLE = ("seed", "top_p", "frequency_penalty", "presence_penalty", "top_k", "min_p", "repetition_penalty")


def is_vllm(version: Mapping[str, Any] | None, models: list[dict[str, Any]]) -> bool:
    """vLLM answers `GET /version` at its root (not under /v1) and lists its models as owned by vllm."""
    owned = {str(m.get("owned_by", "")).lower() for m in models}
    return (isinstance(version, Mapping) and "version" in version) or "vllm" in owned


def refused(detail: str) -> str | None:
    """The parameter an HTTP 400 reply refuses, when it names one mibe may drop; else None."""
    low = detail.lower()
    if "400" not in low:
        return None
    for name in REFUSABLE:
        if re.search(rf"(?<![a-z_]){re.escape(name)}(?![a-z_])", low) and re.search(
            r"unsupported|not supported|unrecognized|unknown|not allowed|extra (inputs|fields)|invalid", low
        ):
            return name
    return None


class Params:
    """One endpoint's parameter set: what each request states, and what the endpoint refused."""

    def __init__(self, server_is_vllm: bool, seed: int | None, server: Mapping[str, Any]) -> None:
        self.values: dict[str, Any] = dict(STANDARD)
        if seed is not None:
            self.values["seed"] = seed
        if server_is_vllm:
            self.values.update(VLLM)
        self.server = dict(server)  # what the server says about itself (vLLM's /version, owned_by)
        self.dropped: dict[str, str] = {}  # parameter -> the server's refusal, first line
        self._lock = threading.Lock()

    def body(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.values)

    def drop(self, name: str, detail: str) -> bool:
        """Forget a refused parameter; True the first time (the caller says it and retries)."""
        with self._lock:
            if name not in self.values:
                return False
            del self.values[name]
            self.dropped[name] = detail.splitlines()[0][:300]
            return True

    def record(self) -> dict[str, Any]:
        """For results.json's model description: what was sent, what was refused, who served it."""
        with self._lock:
            return {"sent": dict(self.values), "refused": dict(self.dropped), "server": self.server}
