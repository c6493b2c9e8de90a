"""Any OpenAI-compatible server (vLLM, TGI, llama.cpp, a hosted API): completions and chat completions.

Standard library only (urllib + threads), so `--backend openai` needs no extra install. Prompts are
fitted with the model's own tokenizer when `--model` is a local folder (as `vllm serve FOLDER` names
the model); otherwise lengths are counted in UTF-8 bytes, which never undercounts tokens.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mibe.backends import common, continuations
from mibe.backends.common import cut_at_stop, server_stops
from mibe.types import MibeError, Request

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(url: str) -> bool:
    """True only for an address on this machine's loopback interface; names are never resolved."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def guard(base_url: str, credentialed: Sequence[str], reason: str | None) -> dict[str, Any] | None:
    """Refuse, before any request, to send credentialed tasks to an endpoint off this machine.

    Returns the override to record in results.json when the user named a reason, else None.
    """
    if not credentialed or is_loopback(base_url):
        return None
    if not (reason or "").strip():
        raise MibeError(
            f"--base-url {base_url}: not a loopback address, and {', '.join(sorted(credentialed))} "
            "hold credentialed data (PhysioNet DUA: never sent to a remote API); serve the model on "
            '127.0.0.1, or pass --allow-remote-credentialed "<why this endpoint is allowed>"'
        )
    return {"endpoint": base_url, "tasks": sorted(credentialed), "reason": reason.strip()}


class _ByteTokenizer:
    """Stands in when no tokenizer is at hand: one id per UTF-8 byte (>= the model's token count)."""

    chat_template = None

    def __call__(self, text: str) -> Any:
        return type("Encoded", (), {"input_ids": list(text.encode("utf-8"))})()

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode("utf-8", errors="ignore")


def _local_tokenizer(model: str, trust_remote_code: bool) -> Any:
    path = Path(model).expanduser()
    if not (path / "tokenizer_config.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


class OpenAIBackend:
    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 600.0,
        retries: int = 6,
        credentialed: Sequence[str] = (),
        allow_remote_credentialed: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.override = guard(self.base_url, credentialed, allow_remote_credentialed)  # before any request
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise MibeError(f"--base-url {base_url}: expected http(s)://HOST:PORT/v1")
        self.model_name, self.timeout, self.retries = model, timeout, retries
        self.max_concurrency = max(1, max_concurrency)
        self.chunk_size = 4 * self.max_concurrency  # the runner hands this many requests per call
        key_name = api_key_env or "OPENAI_API_KEY"
        self.api_key = os.environ.get(key_name)
        if api_key_env and not self.api_key:
            raise MibeError(f"--api-key-env {api_key_env}: that environment variable is not set")
        self.tokenizer = _local_tokenizer(model, trust_remote_code) or _ByteTokenizer()
        self._chats: dict[str, list[dict[str, str]]] = {}
        served = self._models()
        limits = [m.get("max_model_len") for m in served if m.get("id") == model]
        self.max_context: int | None = next((n for n in limits if isinstance(n, int)), None)

    # ---- HTTP -------------------------------------------------------------------------------------
    def _post(self, route: str, body: dict[str, Any] | None, retries: int | None = None) -> dict[str, Any]:
        url = f"{self.base_url}/{route}"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else json.dumps(body).encode()
        attempts = (self.retries if retries is None else retries) + 1
        for attempt in range(attempts):
            request = urllib.request.Request(url, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", errors="replace")[:300]
                if exc.code not in RETRY_STATUS or attempt == attempts - 1:
                    raise MibeError(f"{url}: HTTP {exc.code}: {' '.join(detail.split())}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == attempts - 1:
                    why = getattr(exc, "reason", exc)
                    raise MibeError(
                        f"--base-url {self.base_url}: cannot reach the server ({why}); start it or fix "
                        "--base-url"
                    ) from None
            # Exponential backoff with jitter, so many clients do not retry in lockstep.
            time.sleep(min(30.0, 2**attempt) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def _models(self) -> list[dict[str, Any]]:
        reply = self._post("models", None, retries=1)
        return [m for m in reply.get("data", []) if isinstance(m, dict)]

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(items)))) as pool:
            return list(pool.map(fn, items))

    # ---- the Backend protocol -------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        if isinstance(self.tokenizer, _ByteTokenizer):
            return list(self.tokenizer(text).input_ids)
        special = common.adds_special_tokens(self.tokenizer, text)
        return list(self.tokenizer(text, add_special_tokens=special).input_ids)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def chat(self, prompt: str, system_prompt: str | None) -> str:
        """The rendered text (stored in samples, used to count tokens); the server renders the real
        one from the messages, which are sent to /chat/completions."""
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": prompt})
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"
        self._chats[text] = messages
        return text

    def _prompt(self, text: str) -> str | list[int]:
        """Token ids when the tokenizer is at hand (as the HF and vLLM backends tokenise: a BOS unless
        the prompt starts with one), so the server cannot tokenise differently; else the text."""
        return text if isinstance(self.tokenizer, _ByteTokenizer) else self.tokenize(text)

    def _one(self, request: Request) -> str:
        common = {"model": self.model_name, "max_tokens": request.max_new_tokens, "temperature": 0.0}
        stops = server_stops(request.stop)[:4]  # OpenAI's API takes at most four
        if stops:
            common["stop"] = stops
        messages = self._chats.get(request.prompt)
        if messages is not None:
            reply = self._post("chat/completions", {**common, "messages": messages})
            text = reply["choices"][0]["message"].get("content") or ""
        else:
            reply = self._post("completions", {**common, "prompt": self._prompt(request.prompt)})
            text = reply["choices"][0].get("text") or ""
        return cut_at_stop(text, request.stop)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        return self._map(self._one, requests)

    def _scores(self, request: Request) -> list[float]:
        if request.prompt in self._chats and isinstance(self.tokenizer, _ByteTokenizer):
            raise MibeError(
                "--scoring loglikelihood with --chat-template over an endpoint needs the model's "
                "tokenizer: pass --model as the local model folder the server serves"
            )
        body = {"model": self.model_name, "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0.0}
        if isinstance(self.tokenizer, _ByteTokenizer):  # text prompts; continuations found by offset
            sent: list[Any] = [request.prompt + c for c in request.continuations]
            lengths = [0] * len(sent)
        else:  # token ids, split exactly as the HF backend splits them (lm-eval's convention)
            context = self.tokenize(request.prompt)
            (tails,) = continuations.choice_ids(self.tokenize, self.tokenizer, [request], [context])
            sent, lengths = [context + t for t in tails], [len(t) for t in tails]
        reply = self._post("completions", {**body, "prompt": sent})
        choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != len(sent) or any(not c.get("logprobs") for c in choices):
            raise MibeError(
                f"{self.base_url}: the server returned no prompt log-probs (echo + logprobs); "
                "use --scoring generate with this endpoint"
            )
        scores = []
        for prompt, length, choice in zip(sent, lengths, choices, strict=True):
            logprobs = choice["logprobs"]
            values = logprobs["token_logprobs"]  # the prompt's tokens, then the one generated
            if isinstance(prompt, str):
                start, offsets = len(request.prompt), logprobs["text_offset"]
                picked = [v for v, at in zip(values, offsets, strict=False) if start <= at < len(prompt)]
            else:
                picked = values[len(prompt) - length : len(prompt)]
            if not picked or any(v is None for v in picked):
                raise MibeError(f"{self.base_url}: incomplete prompt log-probs for document {request.doc_id}")
            scores.append(float(sum(picked)))
        return scores

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float]]:
        return self._map(self._scores, requests)

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.model_name,
            "name": Path(self.model_name.rstrip("/")).name,
            "adapter": None,
            "backend": "openai",
            "backend_version": "OpenAI-compatible HTTP API",
            "endpoint": self.base_url,
            "tokenizer": "local" if not isinstance(self.tokenizer, _ByteTokenizer) else "utf-8 bytes",
            "max_context": self.max_context,
            "credentialed_override": self.override,
        }
