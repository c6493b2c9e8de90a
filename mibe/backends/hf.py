"""Hugging Face transformers (+ peft) backend: greedy batched generation and log-likelihoods."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria

from mibe.types import MibeError, Request

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def _adapter_base(path: Path) -> str:
    config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise MibeError(f"{path}/adapter_config.json: no base_model_name_or_path; pass --model BASE")
    return base


class _StopAfterContent(StoppingCriteria):
    """Stop a row once its new text holds a stop string after some non-blank content.

    Chat models often open with a blank line; a stop string there must not end the answer.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int) -> None:
        self.tokenizer, self.stops, self.prompt_len = tokenizer, tuple(stops), prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = [any(s in t.lstrip() for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    lead = len(text) - len(text.lstrip())
    cuts = [text.find(s, lead) for s in stops]
    cuts = [c for c in cuts if c >= 0]
    return text[: min(cuts)] if cuts else text


class HFBackend:
    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        dtype: str = "auto",
        device: str = "cpu",
        trust_remote_code: bool = False,
    ) -> None:
        path = Path(model).expanduser()
        self.adapter = adapter
        if path.is_dir() and _is_adapter(path):
            self.adapter, model = str(path), _adapter_base(path)
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
        self.model_name, self.device, self.dtype_name = model, device, dtype
        self.trust_remote_code = trust_remote_code
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise MibeError(f"--model {model}: cannot load a tokenizer ({first})") from None
        if self.tokenizer.pad_token is None:
            # Greedy decoding never looks at pad tokens; any id the model knows will do.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "left"
        self._model: Any = None
        self._config = transformers.AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        limits = [getattr(self._config, "max_position_embeddings", None)]
        if self.tokenizer.model_max_length and self.tokenizer.model_max_length < 10**7:
            limits.append(self.tokenizer.model_max_length)
        known = [n for n in limits if isinstance(n, int) and n > 0]
        self.max_context: int | None = min(known) if known else None

    # The model loads on first use, so --dry-run never pays for it.
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        dtype = _DTYPES.get(self.dtype_name, "auto")
        try:
            model = AutoModelForCausalLM.from_pretrained(
                self.model_name, dtype=dtype, trust_remote_code=self.trust_remote_code
            )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise MibeError(f"--model {self.model_name}: not a causal LM mibe can load ({first})") from None
        if self.adapter:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, self.adapter)
            except (OSError, ValueError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0][:200]
                raise MibeError(
                    f"--adapter {self.adapter}: does not fit {self.model_name} ({first})"
                ) from None
        model.to(self.device)
        model.eval()
        return model

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text).input_ids

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def chat(self, prompt: str, system_prompt: str | None) -> str:
        if not self.tokenizer.chat_template:
            raise MibeError(f"--chat-template: {self.model_name} has no chat template in its tokenizer")
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        # Chat-formatted prompts already hold the BOS token; don't add a second one.
        has_bos = self.tokenizer.bos_token and all(p.startswith(self.tokenizer.bos_token) for p in prompts)
        batch = self.tokenizer(
            list(prompts), return_tensors="pt", padding=True, add_special_tokens=not has_bos
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request]) -> list[str]:
        if not requests:
            return []
        batch = self._encode([r.prompt for r in requests])
        width = batch["input_ids"].shape[1]
        stops = tuple(sorted({s for r in requests for s in r.stop}))
        criteria = [_StopAfterContent(self.tokenizer, stops, width)] if stops else []
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
            results.append(cut_at_stop(text, request.stop))
        return results

    def _continuation_ids(self, context_ids: list[int], context: str, continuation: str) -> list[int]:
        # lm-evaluation-harness's convention: tokenise the whole string, keep what follows the context.
        whole = self.tokenize(context + continuation)
        if whole[: len(context_ids)] == context_ids and len(whole) > len(context_ids):
            return whole[len(context_ids) :]
        return self.tokenizer(continuation, add_special_tokens=False).input_ids

    def _cache_kwarg(self) -> str:
        # transformers 5.x renamed `past_key_values` to `cache`; older releases know only the first.
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        forward = inspect.signature(type(base).forward).parameters
        return "cache" if "cache" in forward else "past_key_values"

    @torch.inference_mode()
    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float]]:
        """One forward of each context; the choices are scored from its KV cache."""
        results = []
        for request in requests:
            context_ids = self.tokenize(request.prompt)
            conts = [self._continuation_ids(context_ids, request.prompt, c) for c in request.continuations]
            out = self.model(input_ids=torch.tensor([context_ids], device=self.device), use_cache=True)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            scores = [float(first[c[0]]) for c in conts]
            longer = [i for i, c in enumerate(conts) if len(c) > 1]
            if longer:
                width = max(len(conts[i]) - 1 for i in longer)
                rows = [conts[i][:-1] + [0] * (width - len(conts[i]) + 1) for i in longer]
                cache = getattr(out, "cache", None) or out.past_key_values
                cache.batch_repeat_interleave(len(longer))
                mask = torch.ones(len(longer), len(context_ids) + width, dtype=torch.long)
                step = self.model(
                    input_ids=torch.tensor(rows, device=self.device),
                    attention_mask=mask.to(self.device),
                    use_cache=False,
                    **{self._cache_kwarg(): cache},
                )
                logp = torch.log_softmax(step.logits.float(), dim=-1)
                for row, i in enumerate(longer):
                    targets = conts[i][1:]
                    picked = logp[row, torch.arange(len(targets)), torch.tensor(targets)]
                    scores[i] += float(picked.sum())
            results.append(scores)
        return results

    def describe(self) -> dict[str, Any]:
        config_json = json.dumps(self._config.to_dict(), sort_keys=True, default=str)
        return {
            "path": self.model_name,
            "name": Path(self.model_name.rstrip("/")).name,
            "config_hash": hashlib.sha256(config_json.encode()).hexdigest()[:16],
            "adapter": self.adapter,
            "backend": "hf",
            "backend_version": f"transformers {transformers.__version__}, torch {torch.__version__}",
            "dtype": self.dtype_name,
            "device": self.device,
            "max_context": self.max_context,
        }
