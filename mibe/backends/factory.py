"""The one factory for every model mibe runs or calls: the evaluated model, judges and the answer
extractor. It builds only what the endpoint policy admitted (mibe.backends.policy.admit), so each
endpoint gets its own guard verdict, its own key and its own announcement; nothing here reads the
evaluated model's settings for a second model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mibe.backends import devices, fit, quantize
from mibe.backends.endpoint import Endpoint, evaluated
from mibe.backends.policy import Admission, admit, authorisations
from mibe.log import logger
from mibe.types import Backend, MibeError, RunConfig


def build(admission: Admission) -> Backend:
    """The backend for an admitted endpoint; an HTTP endpoint is announced before its first request.
    A refusal names the flag that named the model (--judge, --extractor, not --model)."""
    e = admission.endpoint
    try:
        return _build(admission)
    except MibeError as exc:
        if e.role == "model":
            raise
        raise MibeError(_as_flag(str(exc), e)) from None


def _as_flag(message: str, e: Endpoint) -> str:
    """A loader's message names --model or --base-url; for a judge or an extractor, name its flag."""
    head = f"{e.flag} {e.text}: "
    if message.startswith(head):
        return message
    message = re.sub(r"^--(model|base-url) .*?: ", "", message, count=1)
    return head + message


def _build(admission: Admission) -> Backend:
    e = admission.endpoint
    quantize.check(e.quantize, e.backend, e.device_map)  # HF only: one line before anything is built
    if e.machine.device != "cpu" or e.backend == "vllm":  # data-parallel ranks: their own GPUs
        devices.pin_devices(e.tensor_parallel_size * e.pipeline_parallel_size)
    if e.backend == "openai" and admission.members:
        from mibe.backends.pool import PoolBackend

        return PoolBackend([_served(m, retries=0) for m in admission.members])
    if e.backend == "openai":
        return _served(admission)
    note = fit.engine_note(e.backend) if e.backend in ("hf", "vllm") else None
    if note:  # before the engine loads: the user can stop and switch
        logger.info(note)
    if e.backend == "vllm":
        from mibe.backends.vllm import VLLMBackend  # says how to install vllm when it is absent

        return VLLMBackend.from_config(e)
    if e.backend != "hf":
        raise MibeError(f"--backend {e.backend}: expected hf, vllm or openai")
    if e.data_parallel_size > 1:
        raise MibeError(
            f"--data-parallel-size {e.data_parallel_size}: with --backend hf, leave it out and start "
            f"`accelerate launch --multi_gpu --num_processes {e.data_parallel_size} -m mibe.cli run` "
            "(docs/backends.md)"
        )
    devices.check(e.machine.device)
    device, _ = devices.resolve(e.machine.device)  # the Python API's make_backend: auto still unresolved
    from mibe.backends import embedded
    from mibe.backends.hf import HFBackend

    return HFBackend(
        embedded.resolve(e.model),
        adapter=e.adapter,
        dtype=e.machine.dtype,
        device=device,
        trust_remote_code=e.machine.trust_remote_code,
        quantize=e.quantize,
        device_map=e.device_map,
    )


def _served(admission: Admission, retries: int = 6) -> Backend:
    """One OpenAI-compatible server, announced before its first request. In a pool (retries=0) a
    failed request goes to another server at once instead of being retried here."""
    from mibe.backends.openai import OpenAIBackend

    e = admission.endpoint
    logger.warning(admission.line())  # shown even to a Python caller who configured no logging
    return OpenAIBackend(
        e.model,
        e.base_url or "",
        api_key_env=admission.key_env,
        max_concurrency=e.machine.max_concurrency,
        retries=retries,
        credentialed=admission.credentialed,
        allow_remote_credentialed=admission.reason,
        trust_remote_code=e.machine.trust_remote_code,
        request_timeout=e.machine.request_timeout,
        seed=e.machine.seed,
        max_model_len=e.max_model_len,
        tokenizer=e.tokenizer,
    )


def make_backend(config: RunConfig, credentialed: Sequence[str] = ()) -> Backend:
    """The evaluated model of `config` through the policy and the factory (the Python API's path)."""
    endpoint = evaluated(config)
    return build(admit(endpoint, credentialed, authorisations(config.allow_remote_credentialed)))
