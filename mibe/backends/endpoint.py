"""Each model mibe talks to — the evaluated model, a judge, the answer extractor — as an `Endpoint`:
its own backend configuration (what to load or where to send, with which key, on which device).
A judge or an extractor never borrows the evaluated model's configuration: it shares only the
machine settings the user gave for this command (`Machine`), and its key comes from its own spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mibe.backends.spec import ModelSpec
from mibe.types import RunConfig

ROLES = ("model", "judge", "extractor")
DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # the evaluated model's key when --api-key-env is not given


@dataclass(frozen=True)
class Machine:
    """Settings of this machine a second model runs under (the command's --device, --dtype, ...)."""

    device: str = "cpu"
    dtype: str = "auto"
    trust_remote_code: bool = False
    batch_size: int = 8
    max_concurrency: int = 8
    request_timeout: float = 120.0
    seed: int = 1234


@dataclass(frozen=True)
class Endpoint:
    role: str  # one of ROLES
    flag: str  # how the user named it, for messages: --model, --judge, --extractor
    text: str  # as written: the --model value or the spec
    backend: str  # hf, vllm or openai
    model: str  # a folder or hub id; for openai, the served model's name
    base_url: str | None = None  # openai only
    adapter: str | None = None
    key_env: str | None = None  # the variable the key is read from; None: no key is sent
    key_required: bool = False  # named by the user: unset is an error (the default is only used if set)
    machine: Machine = field(default_factory=Machine)
    # --backend vllm of the evaluated model
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    adapters: str | None = None  # --adapters D: the engine switches between D/<task>/ adapters
    pool: tuple[str, ...] = ()  # openai: every server of an endpoint pool (base_url is the first)
    quantize: str | None = None  # hf: --quantize 4bit|8bit (mibe/backends/quantize.py)
    device_map: str | None = None  # hf: --device-map auto
    tokenizer: str | None = None  # openai: --tokenizer, for counting and truncation


def machine_of(config: RunConfig) -> Machine:
    return Machine(
        config.device, config.dtype, config.trust_remote_code, config.batch_size,
        config.max_concurrency, config.request_timeout, config.seed,
    )  # fmt: skip


def evaluated(config: RunConfig) -> Endpoint:
    """The evaluated model: its key from --api-key-env, else OPENAI_API_KEY when that is set."""
    named = config.api_key_env
    key_env = named or (DEFAULT_KEY_ENV if os.environ.get(DEFAULT_KEY_ENV) else None)
    return Endpoint(
        "model", "--model", config.model, config.backend, config.model, config.base_url, config.adapter,
        key_env if config.backend == "openai" else None, bool(named), machine_of(config),
        config.tensor_parallel_size, config.pipeline_parallel_size, config.data_parallel_size,
        config.gpu_memory_utilization, config.max_model_len, config.adapters,
        tuple(config.base_urls) if len(config.base_urls) > 1 else (), config.quantize, config.device_map,
        config.tokenizer,
    )  # fmt: skip


def second(spec: ModelSpec, role: str, flag: str, machine: Machine) -> Endpoint:
    """A judge or an extractor: the spec's model, URL and key variable, on this command's machine."""
    return Endpoint(
        role, flag, spec.text, spec.backend, spec.model, spec.base_url,
        key_env=spec.key_env, key_required=spec.key_env is not None, machine=machine,
    )  # fmt: skip
