"""Any OpenAI-compatible server (vLLM, TGI, llama.cpp, a hosted API): completions and chat completions.

Standard library only (urllib + threads), so `--backend openai` needs no extra install. Prompts are
fitted with the model's own tokenizer when `--model` is a local folder (as `vllm serve FOLDER` names
the model); otherwise lengths are counted in UTF-8 bytes, which never undercounts tokens.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from mibe.backends import common, continuations, counting, http, replies, sampling, traces
from mibe.backends.base import TokenizedBackend
from mibe.backends.common import server_stops
from mibe.backends.policy import guard
from mibe.log import logger
from mibe.types import MibeError, Request

REPLY_SLACK = 64 * 1024  # bytes a reply may hold beyond what was asked for (ids, usage, headers of JSON)
MODELS_REPLY_BYTES = 16 * 1024 * 1024  # a hosted API lists hundreds of models


def _resolved(parts: Any) -> tuple[tuple[str, ...], OSError | None]:
    """The server's addresses (none when its name does not resolve, and why)."""
    try:
        return http.resolve(parts.hostname or "", parts.port), None
    except OSError as exc:
        return (), exc


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class OpenAIBackend(TokenizedBackend):
    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        request_timeout: float = 120.0,
        retries: int = 6,
        credentialed: Sequence[str] = (),
        allow_remote_credentialed: str | None = None,
        trust_remote_code: bool = False,
        seed: int | None = None,
        max_model_len: int | None = None,
        tokenizer: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = http.split(self.base_url)  # user:password and non-http URLs are refused before a lookup
        self.model_name, self.retries = model, retries
        if request_timeout <= 0:
            raise MibeError(f"--request-timeout {request_timeout:g}: must be a positive number of seconds")
        # Only the variable this endpoint was given (mibe.backends.endpoint decides which): never a
        # default here, so no key meant for another server is sent to this one.
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not self.api_key:
            raise MibeError(f"--api-key-env {api_key_env}: that environment variable is not set")
        # Resolved once: the guard judges, and every request connects to, these very addresses.
        addresses, unresolved = _resolved(parts)
        self.override = guard(self.base_url, credentialed, allow_remote_credentialed, addresses)
        if not addresses:
            raise MibeError(
                f"--base-url {self.base_url}: cannot reach the server ({parts.hostname} does not resolve: "
                f"{unresolved}); start it or fix --base-url"
            ) from None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self.http = http.Endpoint(self.base_url, addresses, request_timeout, headers)
        self.max_concurrency = max(1, max_concurrency)
        self.chunk_size = 4 * self.max_concurrency  # the runner hands this many requests per call
        self.tokenizer_name = tokenizer  # --tokenizer: counts and cuts for a model served elsewhere
        self.tokenizer, self.local_tokenizer = counting.tokenizers(model, tokenizer, trust_remote_code)
        # Bytes one token can hold at most (the tokenizer's longest piece), to bound what is kept.
        vocab = getattr(self.tokenizer, "get_vocab", dict)()
        self.token_bytes = max((len(t.encode("utf-8")) for t in vocab), default=64)
        self.capped_replies = 0  # replies holding more than the tokens asked for, cut to that
        self._capped_lock = threading.Lock()
        self._chats: dict[str, tuple[list[dict[str, str]], dict[str, Any]]] = {}
        self._served: dict[str, int | None] = {}  # doc id -> new tokens the server reports
        served = self._models()
        self.sampling = self._sampling(served, addresses, request_timeout, headers, seed)
        self.served = self._served_identity(served, model)  # its /models entry: max_model_len too
        # --max-model-len: the served model's context when /models does not say (hosted APIs)
        self.max_context: int | None = max_model_len or _whole(self.served["max_model_len"])
        names = self.served_models = [str(m.get("id")) for m in served if m.get("id")]  # a pool compares
        if names and model not in names:  # a server that ignores `model` answers as its own
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            logger.warning(
                f"mibe: warning: {self.base_url}/models serves {shown}, not '{model}'; check --model"
            )
        self._answered_as: set[str] = set()  # the `model` of each reply, recorded in results.json

    # ---- HTTP -------------------------------------------------------------------------------------
    def _post(self, route: str, body: dict[str, Any], limit: int) -> dict[str, Any]:
        """POST with the endpoint's sampling parameters; a parameter the server refuses (HTTP 400
        naming it) is dropped for this endpoint, said once, recorded, and the request sent again."""
        while True:
            sent = {**body, **self.sampling.body()}
            try:
                return self.http.call(route, sent, limit, self.retries)
            except MibeError as exc:
                name = sampling.refused(str(exc))
                if name is None or name not in sent:
                    raise
                if self.sampling.drop(name, str(exc)):
                    logger.info(
                        f"mibe: {self.base_url}: the server refuses the sampling parameter '{name}'; "
                        "sent without it from now on (results.json: model.sampling.refused)"
                    )

    def _sampling(
        self,
        served: list[dict[str, Any]],
        addresses: Sequence[str],
        timeout: float,
        headers: dict,
        seed: int | None,
    ) -> sampling.Params:
        """This endpoint's parameter set, from what the server says it is."""
        version = self._version(addresses, timeout, headers)
        server = {"version": version.get("version") if version else None}
        server["owned_by"] = sorted({str(m["owned_by"]) for m in served if m.get("owned_by")}) or None
        return sampling.Params(sampling.is_vllm(version, served), seed, server)

    def _version(self, addresses: Sequence[str], timeout: float, headers: dict[str, str]) -> dict | None:
        """vLLM's `GET /version`, served at the root (not under /v1); None where there is none."""
        root = self.base_url.removesuffix("/v1")
        if root == self.base_url:
            return None
        try:
            found = http.Endpoint(root, addresses, timeout, headers).call(
                "version", None, REPLY_SLACK, retries=0, quiet=True
            )
        except MibeError:
            return None
        return found if isinstance(found, dict) else None

    def _served_identity(self, served: list[dict[str, Any]], model: str) -> dict[str, Any]:
        """What the server says it serves under `model` (its /models entry: root, context length) and
        its /version: a served model's identity for resume, while the URL itself is volatile (several
        URLs may serve one model). What a server does not say is None."""
        entry = next((m for m in served if m.get("id") == model), {})
        keep = lambda v: v if isinstance(v, str | int | float) and not isinstance(v, bool) else None  # noqa: E731
        return {
            "id": model,
            "root": keep(entry.get("root")),
            "max_model_len": keep(entry.get("max_model_len")),
            "version": keep(self.sampling.server.get("version")),
        }

    def _models(self) -> list[dict[str, Any]]:
        data = self.http.call("models", None, MODELS_REPLY_BYTES, retries=1, quiet=True).get("data")
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        """fn over items on worker threads. On Ctrl-C (or any failure) the requests in flight are cut
        and the queued ones dropped, so the main thread returns at once and no worker keeps the
        process alive; the samples of batches already answered are on disk."""
        self.http.restart()
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(items))))
        try:
            futures = [pool.submit(fn, item) for item in items]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)  # a failure ends the batch at once
            failed = next((f for f in futures if f in done and f.exception() is not None), None)
            if failed is not None:
                raise failed.exception()  # type: ignore[misc]
            return [f.result() for f in futures]
        except BaseException:
            self.http.abort()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _cap(self, text: str, request: Request) -> str:
        """At most the bytes max_new_tokens tokens can hold: a server that ignores max_tokens does not
        get a longer answer scored (nor stored). Counted, and said once."""
        limit = request.max_new_tokens * self.token_bytes
        data = text.encode("utf-8")
        if len(data) <= limit:
            return text
        with self._capped_lock:
            self.capped_replies += 1
            first = self.capped_replies == 1
        if first:
            logger.info(
                f"mibe: {self.base_url}: the reply for document {request.doc_id} is longer than the "
                f"{request.max_new_tokens} tokens asked for (the server ignores max_tokens?); kept the "
                f"first {limit} bytes; such replies are counted in capped_replies"
            )
        return data[:limit].decode("utf-8", errors="ignore")

    # ---- the Backend interface ------------------------------------------------------------------
    @property
    def answered_as(self) -> set[str]:
        return set(self._answered_as)

    def sampling_record(self) -> dict[str, Any]:
        return self.sampling.record()

    def render(self, messages: list[dict[str, str]], template: str | None, kwargs: dict[str, Any]) -> str:
        """The rendered text (stored in samples, used to count tokens, and sent as the prompt for
        log-likelihoods); generation sends the messages to /chat/completions, where the server
        renders them, with `kwargs` as chat_template_kwargs and `template` when it is not the
        tokenizer's own (a file, a training record)."""
        own = self.chat_template
        if own or (template and self.local_tokenizer):
            text = super().render(messages, template, kwargs)
        else:  # no local tokenizer: a stand-in rendering, for counting only
            text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"
        extra: dict[str, Any] = {"chat_template_kwargs": dict(kwargs)} if kwargs else {}
        if template and template != own:
            extra["chat_template"] = template
        if self.local_tokenizer and common.adds_special_tokens(self.tokenizer, text):
            # mibe's BOS rule, as the hf and vllm backends tokenise: vLLM's chat path adds no BOS the
            # template does not write unless asked (its add_special_tokens), and outputs would differ.
            extra["add_special_tokens"] = True
        self._chats[text] = (messages, extra)
        return text

    def _prompt(self, text: str) -> str | list[int]:
        """Token ids when the tokenizer is at hand (as the HF and vLLM backends tokenise: a BOS unless
        the prompt starts with one), so the server cannot tokenise differently; else the text."""
        return self.tokenize(text) if self.local_tokenizer else text

    def _one(self, request: Request) -> str:
        common = {"model": self.model_name, "max_tokens": request.max_new_tokens, "temperature": 0.0}
        # OpenAI's API takes at most four; none while a trace may be open (it would cut the thinking).
        stops = [] if traces.may_reason(self.tokenizer, request) else server_stops(request.stop)[:4]
        if stops:
            common["stop"] = stops
        chat = self._chats.get(request.prompt)
        if chat is None:
            route, body = "completions", {**common, "prompt": self._prompt(request.prompt)}
        else:
            route, body = "chat/completions", {**common, "messages": chat[0], **chat[1]}
        # What a reply may hold: the tokens asked for, JSON-escaped (<= 6 bytes a byte), plus slack.
        reply = self._post(route, body, REPLY_SLACK + 6 * request.max_new_tokens * self.token_bytes)
        try:
            first = replies.choices(reply)[0]
            text = replies.choice_text(first, chat=chat is not None)
        except ValueError as exc:
            raise MibeError(f"{self.base_url}/{route}: {exc}") from None
        if isinstance(reply.get("model"), str):
            self._answered_as.add(reply["model"][:200])
        counted = len(self.tokenize(text))  # bytes without a local tokenizer: an upper bound
        self._served[request.doc_id] = replies.served_count(reply, first, request.max_new_tokens, counted)
        pair = request.reasoning[0] if request.reasoning else traces.THINK[0]
        finished = first.get("finish_reason") != "length"
        text = traces.with_reasoning(text, replies.choice_reasoning(first, chat is not None), finished, pair)
        return traces.cut_request(self._cap(text, request), request)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        return self._map(self._one, requests)

    def served_tokens(self, doc_id: str) -> int | None:
        """The new tokens the server says it wrote for a document (its usage, or its finish_reason),
        or None: without the model's tokenizer, counting bytes would call short answers cut off."""
        return self._served.get(doc_id)

    def _scores(self, request: Request) -> list[float]:
        if request.prompt in self._chats and isinstance(self.tokenizer, counting.ByteTokenizer):
            raise MibeError(
                "--scoring loglikelihood with --chat-template over an endpoint needs the model's "
                "tokenizer: pass --model as the local model folder the server serves"
            )
        body = {"model": self.model_name, "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0.0}
        if isinstance(self.tokenizer, counting.ByteTokenizer):  # text prompts; continuations found by offset
            sent: list[Any] = [request.prompt + c for c in request.continuations]
            lengths = [0] * len(sent)
        else:  # token ids, split exactly as the HF backend splits them (lm-eval's convention)
            context = self.tokenize(request.prompt)
            (tails,) = continuations.choice_ids(self.tokenize, self.tokenizer, [request], [context])
            sent, lengths = [context + t for t in tails], [len(t) for t in tails]
        # Each echoed token: its text twice (tokens, top_logprobs), JSON-escaped, a log-prob, an offset.
        units = sum(len(p) for p in sent)
        reply = self._post(
            "completions", {**body, "prompt": sent}, REPLY_SLACK + units * (256 + 12 * self.token_bytes)
        )
        try:
            found = replies.choices(reply)
        except ValueError as exc:
            raise MibeError(f"{self.base_url}/completions: {exc}") from None
        return replies.picked(self.base_url, request, sent, lengths, found)

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
            "served": self.served,
            "tokenizer": self.tokenizer_name
            or ("local" if not isinstance(self.tokenizer, counting.ByteTokenizer) else "utf-8 bytes"),
            "max_context": self.max_context,
            "credentialed_override": self.override,
        }
