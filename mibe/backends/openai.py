"""Any OpenAI-compatible server (vLLM, TGI, llama.cpp, a hosted API): completions and chat completions.

Standard library only (urllib + threads), so `--backend openai` needs no extra install. Prompts are
fitted with the model's own tokenizer when `--model` is a local folder (as `vllm serve FOLDER` names
the model); otherwise lengths are counted in UTF-8 bytes, which never undercounts tokens.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mibe.backends import common, continuations, http, sampling, traces
from mibe.backends.common import cut_at_stop, server_stops  # noqa: F401 (cut_at_stop: re-exported)
from mibe.backends.http import RETRY_STATUS  # noqa: F401 (re-exported: the retry policy lives in http)
from mibe.types import MibeError, Request

REPLY_SLACK = 64 * 1024  # bytes a reply may hold beyond what was asked for (ids, usage, headers of JSON)
MODELS_REPLY_BYTES = 16 * 1024 * 1024  # a hosted API lists hundreds of models


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


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _named_tokenizer(spec: str, trust_remote_code: bool) -> Any:
    """`--tokenizer NAME|PATH`: a local folder, else a hub id (from the local cache or the hub)."""
    from transformers import AutoTokenizer

    try:
        path = str(Path(spec).expanduser())
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise MibeError(
            f"--tokenizer {spec}: cannot load a tokenizer ({why}); give a local folder holding "
            "tokenizer_config.json or a hub id"
        ) from None


def _resolved(parts: Any) -> tuple[tuple[str, ...], OSError | None]:
    """The server's addresses (none when its name does not resolve, and why)."""
    try:
        return http.resolve(parts.hostname or "", parts.port), None
    except OSError as exc:
        return (), exc


def _tokenizers(model: str, named: str | None, trust_remote_code: bool) -> tuple[Any, bool]:
    """The tokenizer that counts and cuts, and whether it is the served model's own (prompts then go
    as its token ids). A --tokenizer only counts and cuts, and prompts go as text, since its ids
    would mean other words to the server."""
    if named:
        return _named_tokenizer(named, trust_remote_code), False
    own = _local_tokenizer(model, trust_remote_code)
    return (own, True) if own is not None else (_ByteTokenizer(), False)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def choices(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """A completion reply's choices in index order; ValueError says what is wrong with the reply."""
    found = reply.get("choices")
    if not isinstance(found, list):
        error = reply.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        raise ValueError(
            f"the server answered an error: {message}" if message else "no 'choices' in the reply"
        )
    if not found:
        raise ValueError("the reply has no choices ('choices': [])")
    if not all(isinstance(c, dict) for c in found):
        raise ValueError("a choice in the reply is not an object")
    return sorted(found, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)


def _served_count(reply: dict[str, Any], choice: dict[str, Any], max_new: int, counted: int) -> int | None:
    """The new tokens of one reply: the server's usage, else what its finish_reason implies."""
    usage = reply.get("usage")
    used = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if isinstance(used, int) and not isinstance(used, bool) and used >= 0:
        return used
    reason = choice.get("finish_reason")
    if reason == "length":
        return max_new
    return min(counted, max_new - 1) if reason == "stop" else None  # stopped before the cap


def choice_text(choice: dict[str, Any], chat: bool) -> str:
    """The generated text of one choice (null content, e.g. a refusal, is empty text)."""
    holder, key = (choice.get("message"), "content") if chat else (choice, "text")
    if not isinstance(holder, dict) or key not in holder:
        raise ValueError(f"the first choice has no {'message.content' if chat else 'text'}")
    text = holder[key]
    if not isinstance(text, str | None):
        raise ValueError(f"the first choice's {key} is {type(text).__name__}, not text")
    return valid_text(text or "")


def valid_text(text: str) -> str:
    """JSON may carry a lone UTF-16 surrogate ("\\ud800") no UTF-8 file can hold: a split pair is
    joined, a lone one becomes U+FFFD, so the samples file can always be written."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


REASONING_FIELDS = ("reasoning_content", "reasoning")  # vLLM/SGLang reasoning parsers, old and new name


def choice_reasoning(choice: dict[str, Any], chat: bool) -> str | None:
    """The trace a server's reasoning parser returned apart from the content, or None."""
    holder = choice.get("message") if chat else choice
    for key in REASONING_FIELDS:
        found = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(found, str) and found.strip():
            return valid_text(found)
    return None


class OpenAIBackend:
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
        say: Callable[[str], None] = _stderr,
        seed: int | None = None,
        max_model_len: int | None = None,
        tokenizer: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = http.split(self.base_url)  # user:password and non-http URLs are refused before a lookup
        self.model_name, self.retries, self.say = model, retries, say
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
        self.http = http.Endpoint(self.base_url, addresses, request_timeout, headers, say)
        self.max_concurrency = max(1, max_concurrency)
        self.chunk_size = 4 * self.max_concurrency  # the runner hands this many requests per call
        self.tokenizer_name = tokenizer  # --tokenizer: counts and cuts for a model served elsewhere
        self.tokenizer, self.local_tokenizer = _tokenizers(model, tokenizer, trust_remote_code)
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
            say(f"mibe: warning: {self.base_url}/models serves {shown}, not '{model}'; check --model")
        self.answered_as: set[str] = set()  # the `model` of each reply, recorded in results.json

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
                    self.say(
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
            found = http.Endpoint(root, addresses, timeout, headers, self.say).call(
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
            self.say(
                f"mibe: {self.base_url}: the reply for document {request.doc_id} is longer than the "
                f"{request.max_new_tokens} tokens asked for (the server ignores max_tokens?); kept the "
                f"first {limit} bytes; such replies are counted in capped_replies"
            )
        return data[:limit].decode("utf-8", errors="ignore")

    # ---- the Backend protocol -------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        if isinstance(self.tokenizer, _ByteTokenizer):
            return list(self.tokenizer(text).input_ids)
        special = common.adds_special_tokens(self.tokenizer, text)
        return list(self.tokenizer(text, add_special_tokens=special).input_ids)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def chat(
        self,
        prompt: str,
        system_prompt: str | None,
        template: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> str:
        """The rendered text (stored in samples, used to count tokens, and sent as the prompt for
        log-likelihoods); generation sends the messages to /chat/completions, where the server
        renders them, with `kwargs` as chat_template_kwargs and `template` when it is not the
        tokenizer's own (a file, a training record)."""
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": prompt})
        own = getattr(self.tokenizer, "chat_template", None)
        if own or (template and self.local_tokenizer):
            text = common.chat(self.tokenizer, self.model_name, prompt, system_prompt, template, kwargs)
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
            first = choices(reply)[0]
            text = choice_text(first, chat=chat is not None)
        except ValueError as exc:
            raise MibeError(f"{self.base_url}/{route}: {exc}") from None
        if isinstance(reply.get("model"), str):
            self.answered_as.add(reply["model"][:200])
        counted = len(self.tokenize(text))  # bytes without a local tokenizer: an upper bound
        self._served[request.doc_id] = _served_count(reply, first, request.max_new_tokens, counted)
        pair = request.reasoning[0] if request.reasoning else traces.THINK[0]
        finished = first.get("finish_reason") != "length"
        text = traces.with_reasoning(text, choice_reasoning(first, chat is not None), finished, pair)
        return traces.cut_request(self._cap(text, request), request)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        return self._map(self._one, requests)

    def served_tokens(self, doc_id: str) -> int | None:
        """The new tokens the server says it wrote for a document (its usage, or its finish_reason),
        or None: without the model's tokenizer, counting bytes would call short answers cut off."""
        return self._served.get(doc_id)

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
        # Each echoed token: its text twice (tokens, top_logprobs), JSON-escaped, a log-prob, an offset.
        units = sum(len(p) for p in sent)
        reply = self._post(
            "completions", {**body, "prompt": sent}, REPLY_SLACK + units * (256 + 12 * self.token_bytes)
        )
        try:
            found = choices(reply)
        except ValueError as exc:
            raise MibeError(f"{self.base_url}/completions: {exc}") from None
        return self._pick(request, sent, lengths, found)

    def _pick(
        self, request: Request, sent: list[Any], lengths: list[int], found: list[dict[str, Any]]
    ) -> list[float]:
        """Each continuation's summed log-prob from the echoed prompt log-probs."""
        if len(found) != len(sent) or any(not isinstance(c.get("logprobs"), dict) for c in found):
            raise MibeError(
                f"{self.base_url}: the server returned no prompt log-probs (echo + logprobs); "
                "use --scoring generate with this endpoint"
            )
        if len(found) > 1 and sorted(
            c.get("index") for c in found if isinstance(c.get("index"), int)
        ) != list(range(len(found))):  # the order of choices is the order of the prompts only by their index
            raise MibeError(
                f"{self.base_url}/completions: the reply's choices lack the 'index' 0..{len(found) - 1} "
                f"that ties each to its prompt (document {request.doc_id}); not OpenAI-compatible here"
            )
        return [self._summed(request, prompt, length, choice) for prompt, length, choice in zip(
            sent, lengths, found, strict=True)]  # fmt: skip

    def _summed(self, request: Request, prompt: Any, length: int, choice: dict[str, Any]) -> float:
        """One continuation's log-prob: the echoed values of its tokens, all of them, each <= 0."""
        logprobs = choice["logprobs"]
        values = logprobs.get("token_logprobs") or []  # the prompt's tokens, then the one generated
        if isinstance(prompt, str):
            start, offsets = len(request.prompt), logprobs.get("text_offset") or []
            # Every echoed token has an offset, and the generated token starts at the prompt's end:
            # a shorter list would sum the continuation over fewer tokens.
            whole = len(offsets) == len(values) and any(at >= len(prompt) for at in offsets)
            picked = [v for v, at in zip(values, offsets, strict=False) if start <= at < len(prompt)]
        else:
            whole = len(values) >= len(prompt)
            picked = values[len(prompt) - length : len(prompt)]
        where = f"{self.base_url}/completions: document {request.doc_id}"
        if (
            not whole
            or not picked
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in picked)
        ):
            raise MibeError(f"{where}: incomplete prompt log-probs (fewer echoed tokens than the prompt has)")
        if any(math.isnan(v) or v > 1e-6 for v in picked):  # -inf: a token the model rules out
            bad = next(v for v in picked if math.isnan(v) or v > 1e-6)
            raise MibeError(
                f"{where}: a log-prob of {bad} (log-probs are numbers <= 0); the server is wrong here"
            )
        return float(sum(picked))

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
            or ("local" if not isinstance(self.tokenizer, _ByteTokenizer) else "utf-8 bytes"),
            "max_context": self.max_context,
            "credentialed_override": self.override,
        }
