"""Hugging Face transformers (+ peft) backend: greedy batched generation and log-likelihoods."""

from __future__ import annotations

import copy
import hashlib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria

from mibe import lineage
from mibe.backends import common, continuations, traces
from mibe.backends import quantize as quantizing
from mibe.backends.base import TokenizedBackend
from mibe.types import MibeError, Request

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


_CACHED_PROMPTS = 16384


def _tensor(rows: list[list[int]], device: str) -> torch.Tensor:
    # Through numpy: torch.tensor on nested lists took 1.2 ms a batch, this 0.2 ms.
    return torch.from_numpy(np.array(rows, dtype=np.int64)).to(device)


def _zero_padded(rows: Sequence[Sequence[int]], device: str) -> torch.Tensor:
    """Ragged rows of ids, right-padded with 0 to the longest."""
    width = max(len(r) for r in rows)
    return _tensor([list(r) + [0] * (width - len(r)) for r in rows], device)


class _StopAfterContent(StoppingCriteria):
    """Stop a row once its new text holds a stop string after some non-blank content, and after
    its reasoning trace when the request names trace delimiters (never inside the thinking).

    Chat models often open with a blank line; a stop string there must not end the answer.
    """

    def __init__(self, tokenizer: Any, requests: Sequence[Request], prompt_len: int) -> None:
        self.tokenizer, self.requests, self.prompt_len = tokenizer, tuple(requests), prompt_len
        self.stops = tuple(sorted({s for r in requests for s in r.stop}))

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = [traces.stop_reached(t, self.stops, r) for t, r in zip(texts, self.requests, strict=True)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _CountSteps(StoppingCriteria):
    """Reports each generation step (one new token per row) to the progress callback; stops nothing."""

    def __init__(self, on_step: Callable[[int], None], rows: int, device: Any) -> None:
        self.on_step, self.rows = on_step, rows
        self.never = torch.zeros(rows, dtype=torch.bool, device=device)  # made once, not per step

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.on_step(self.rows)
        return self.never


class HFBackend(TokenizedBackend):
    reports_steps = True  # on_step: each generation step and forward, for the progress bar

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        dtype: str = "auto",
        device: str = "cpu",
        trust_remote_code: bool = False,
        quantize: str | None = None,
        device_map: str | None = None,
    ) -> None:
        common.check_model_path(model)
        self.quantize, self.device_map = quantize, device_map
        path = Path(model).expanduser()
        self.adapter = adapter
        if path.is_dir() and common.is_adapter(path):
            self.adapter, model = str(path), common.adapter_base(path)
        elif not path.exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
            raise MibeError(f"--model {model}: no such folder; give a model folder or a hub id")
        elif not path.exists():
            from mibe import hub

            try:
                hub.probe(model)
            except Exception as exc:  # offline, unknown repo, gated: all mean "cannot load it"
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                raise MibeError(
                    f"--model {model}: not a local folder and not loadable from the HF hub ({first})"
                ) from None
        # An adapter trained with its own chat template saves the tokenizer beside it: use that one.
        own = self.adapter and (Path(self.adapter) / "tokenizer_config.json").is_file()
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                self.adapter if own else model, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise MibeError(f"--model {model}: cannot load a tokenizer ({first})") from None
        config = transformers.AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        self._setup(tokenizer, config, model, device, dtype)
        self.trust_remote_code = trust_remote_code

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, name: str = "in-memory") -> HFBackend:
        """Score a model already in memory (a notebook, a training loop) without reloading it."""
        self = cls.__new__(cls)
        self.adapter, self.trust_remote_code, self.quantize, self.device_map = None, False, None, None
        self._setup(tokenizer, model.config, name, str(model.device), str(model.dtype).removeprefix("torch."))
        self._model = model.eval()
        return self

    def _setup(self, tokenizer: Any, config: Any, name: str, device: str, dtype: str) -> None:
        self.model_name, self.device, self.dtype_name = name, device, dtype
        self.tokenizer, self._config, self._model = tokenizer, config, None
        self._active: str | None = None  # the peft adapter this twin answers through (with_adapter)
        # Set by the runner while a task runs: called with the tokens of each step or forward.
        self.on_step: Callable[[int], None] | None = None
        if self.tokenizer.pad_token is None:
            # Greedy decoding never looks at pad tokens; any id the model knows will do.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "left"
        self._ids: dict[str, tuple[int, ...]] = {}  # prompt -> ids, oldest first
        self._choice_ids: dict[tuple[str, tuple[str, ...]], list[list[int]]] = {}
        self.max_context: int | None = common.context_length(config, self.tokenizer)

    # The model loads on first use, so --dry-run never pays for it.
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        if self._active is not None and self._model.active_adapter != self._active:
            self._model.set_adapter(self._active)  # twins share one model: each asks for its own adapter
        return self._model

    def with_adapter(self, adapter: str | None) -> HFBackend:
        """This model answering through another LoRA adapter, loaded beside the ones before it (peft's
        load_adapter; set_adapter on use): several adapters scored over one load of the base."""
        if adapter is None:
            if self._active is not None:
                raise MibeError("with_adapter(None): this model already answers through LoRA adapters")
            return self
        from peft import PeftModel

        name = "a" + hashlib.sha256(str(Path(adapter).resolve()).encode()).hexdigest()[:12]
        model = self.model
        try:
            if not isinstance(model, PeftModel):
                self._model = PeftModel.from_pretrained(model, adapter, adapter_name=name).eval()
            elif name not in model.peft_config:
                model.load_adapter(adapter, adapter_name=name)
                model.eval()  # no adapter's dropout at scoring time
        except (OSError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise MibeError(f"--adapters {adapter}: does not fit {self.model_name} ({first})") from None
        twin = copy.copy(self)
        twin.adapter, twin._active = adapter, name
        return twin

    def _load(self) -> Any:
        from transformers.utils import logging as hf_logging

        dtype = _DTYPES.get(self.dtype_name, "auto")
        # The model loads on the first step, under the task's bar: a second bar would interleave
        # with it (and leave cursor-up escapes in a log), so the loading bar is off meanwhile.
        was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        quantizing.check_runnable(self.quantize, self.device)
        extra = quantizing.load_kwargs(self.quantize, self.device_map, self.device, dtype)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                self.model_name, dtype=dtype, trust_remote_code=self.trust_remote_code, **extra
            )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise MibeError(f"--model {self.model_name}: not a causal LM mibe can load ({first})") from None
        finally:
            if was_on:
                hf_logging.enable_progress_bar()
        if self.adapter:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, self.adapter)
            except (OSError, ValueError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0][:200]
                raise MibeError(
                    f"--adapter {self.adapter}: does not fit {self.model_name} ({first})"
                ) from None
        if not quantizing.placed(extra):  # placed while loading (device_map): quantised weights never move
            model.to(self.device)
        model.eval()
        return model

    def tokenize(self, text: str) -> list[int]:
        # Prompts are tokenised to fit, to sort and to run: the cache makes that one pass each.
        ids = self._ids.get(text)
        if ids is None:
            self.tokenize_many([text])
            ids = self._ids[text]
        return list(ids)

    def tokenize_many(self, texts: Sequence[str], continuations: Sequence[str] = ()) -> None:
        """Tokenise `texts` into the cache in batched calls, which the tokenizer spreads over the
        cores, and with `continuations`, each text's choice ids too (see tokenize_with_choices).
        The runner hands over a task's prompts before its first forward: tokenising between
        forwards ran at half speed, the cores still held by torch's spinning threads."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._ids]
        for special in (True, False):
            group = [t for t in todo if common.adds_special_tokens(self.tokenizer, t) == special]
            if group:
                found = self.tokenizer(group, add_special_tokens=special).input_ids
                self._ids.update(zip(group, map(tuple, found), strict=True))
        if continuations:
            requests = [Request("", t, 0, (), tuple(continuations)) for t in dict.fromkeys(texts)]
            self.tokenize_with_choices(requests)
        for cache in (self._ids, self._choice_ids):
            while len(cache) > _CACHED_PROMPTS:
                del cache[next(iter(cache))]

    def _left_padded(self, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = _tensor([[pad] * (width - len(r)) + list(r) for r in rows], self.device)
        mask = _tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], self.device)
        return {"input_ids": ids, "attention_mask": mask}

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request]) -> list[str]:
        if not requests:
            return []
        batch = self._left_padded([self.tokenize(r.prompt) for r in requests])
        width = batch["input_ids"].shape[1]
        stopping = any(r.stop for r in requests)
        criteria = [_StopAfterContent(self.tokenizer, requests, width)] if stopping else []
        if self.on_step is not None:
            criteria.append(_CountSteps(self.on_step, len(requests), self.device))
        out = self.model.generate(
            **batch,
            max_new_tokens=max(r.max_new_tokens for r in requests),
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            stopping_criteria=transformers.StoppingCriteriaList(criteria),
        )
        texts = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        results = []
        for request, ids, text in zip(requests, out[:, width:], texts, strict=True):
            if len(ids) > request.max_new_tokens:  # a shorter cap inside a mixed batch
                text = self.tokenizer.decode(ids[: request.max_new_tokens], skip_special_tokens=True)
            results.append(traces.cut_request(text, request))
        return results

    def tokenize_with_choices(self, requests: Sequence[Request]) -> list[tuple[list[int], list[list[int]]]]:
        """Each request's context ids and its choices' ids, by lm-evaluation-harness's convention:
        the ids of context + choice tokenised whole, after the context's own ids."""
        keys = [(r.prompt, tuple(r.continuations)) for r in requests]
        todo = [(r, k) for r, k in zip(requests, keys, strict=True) if k not in self._choice_ids]
        if todo:
            contexts = [self.tokenize(r.prompt) for r, _ in todo]
            found = continuations.choice_ids(self.tokenize, self.tokenizer, [r for r, _ in todo], contexts)
            self._choice_ids.update(zip((k for _, k in todo), found, strict=True))
        return [(self.tokenize(r.prompt), self._choice_ids[k]) for r, k in zip(requests, keys, strict=True)]

    def _cache_kwarg(self) -> str:
        # transformers 5.x renamed `past_key_values` to `cache`; older releases know only the first.
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        forward = inspect.signature(type(base).forward).parameters
        return "cache" if "cache" in forward else "past_key_values"

    @torch.inference_mode()
    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float]]:
        """One forward for the batch's contexts; the choices are read from its KV cache.

        A choice's first token is scored from the context's last position; choices of more than
        one token feed their remaining tokens through the cache in a second forward, one row per
        choice, so the context is encoded once per document (not once per choice).
        """
        prepared = self.tokenize_with_choices(requests)
        lengths = [len(ctx) for ctx, _ in prepared]
        width = max(lengths)
        # Padded on the right: causal attention already keeps every context from the padding
        # after it, so the forward needs no mask and runs attention's causal kernel (flash on a
        # GPU); a left-padded batch with a mask ran 25% slower here. A row's own last token pads
        # it, so the padding warning for a pad id at the edge never fires.
        ids = _tensor([ctx + ctx[-1:] * (width - len(ctx)) for ctx, _ in prepared], self.device)
        multi = [(b, j) for b, (_, conts) in enumerate(prepared) for j, c in enumerate(conts) if len(c) > 1]
        ends = sorted({n - 1 for n in lengths})  # the only positions whose logits are needed
        out = self.model(
            input_ids=ids, logits_to_keep=torch.tensor(ends, device=self.device), use_cache=bool(multi)
        )
        if self.on_step is not None:
            self.on_step(int(ids.numel()))
        column = {end: i for i, end in enumerate(ends)}
        rows = torch.arange(len(prepared), device=self.device)
        at = torch.tensor([column[n - 1] for n in lengths], device=self.device)
        first = torch.log_softmax(out.logits[rows, at].float(), dim=-1)
        # Gathered in one call: indexing 2,000 choices one by one cost more than a forward.
        heads = [[c[0] for c in conts] for _, conts in prepared]
        picked = first.gather(1, _zero_padded(heads, self.device))
        results = [row[: len(h)] for row, h in zip(picked.tolist(), heads, strict=True)]
        if multi:
            sums = self._choice_tails(out, prepared, multi, lengths, width)
            for (b, j), value in zip(multi, sums, strict=True):
                results[b][j] += value
        return results

    def _choice_tails(
        self, out: Any, prepared: list, multi: list[tuple[int, int]], lengths: list[int], width: int
    ) -> list[float]:
        """Each multi-token choice's log-likelihood after its first token, through the context's cache."""
        owners = torch.tensor([b for b, _ in multi], device=self.device)
        tails = [prepared[b][1][j][1:] for b, j in multi]
        steps = max(len(t) for t in tails)
        cache = getattr(out, "cache", None) or out.past_key_values
        cache.reorder_cache(owners)  # one cache row per multi-token choice
        # Each row continues its own context from its real length; the context's padding
        # (between its end and the new tokens in the cache) is masked out, and padding after
        # a short choice comes after its real tokens, where causal attention ignores it.
        feed = [prepared[b][1][j][:-1] for b, j in multi]  # each token predicts the next
        step_ids = _zero_padded(feed, self.device)
        bounds = torch.tensor([lengths[b] for b, _ in multi], device=self.device)
        real = (torch.arange(width, device=self.device)[None] < bounds[:, None]).long()
        step_mask = torch.cat([real, torch.ones(len(multi), steps, dtype=real.dtype, device=self.device)], 1)
        step = self.model(
            input_ids=step_ids,
            attention_mask=step_mask,
            position_ids=bounds[:, None] + torch.arange(steps, device=self.device)[None],
            use_cache=False,
            **{self._cache_kwarg(): cache},
        )
        if self.on_step is not None:
            self.on_step(int(step_ids.numel()))
        logp = torch.log_softmax(step.logits.float(), dim=-1)
        targets = _zero_padded(tails, self.device)
        ends_at = torch.tensor([len(t) for t in tails], device=self.device)
        pad = torch.arange(steps, device=self.device)[None] >= ends_at[:, None]
        return logp.gather(2, targets[..., None])[..., 0].masked_fill(pad, 0.0).sum(-1).tolist()

    def describe(self) -> dict[str, Any]:
        return {
            **lineage.identity(self.model_name, self._config, self.adapter),
            "backend": "hf",
            "backend_version": f"transformers {transformers.__version__}, torch {torch.__version__}",
            "dtype": self.dtype_name,
            **({"quantization": self.quantize} if self.quantize else {}),  # absent: older folders resume
            **({"device_map": self.device_map} if self.device_map else {}),
            "device": self.device,
            "max_context": self.max_context,
        }
