"""Quantised loading for the HF backend (`--quantize 4bit|8bit`, bitsandbytes) and spreading a model
over several GPUs (`--device-map auto`, accelerate). Quantisation is a fact of the model, like its
dtype: it is in the resume identity, the model's description and the row label, never in a board's
column key (a 4-bit run shares its column with the bf16 baseline).

`--quantize` is for the HF backend only: vLLM loads a pre-quantised checkpoint (AWQ, GPTQ, ...) from
its own `quantization_config` when `--model` is one, and a server decides for itself.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from mibe.types import MibeError

CHOICES = ("4bit", "8bit")
INSTALL = "pip install bitsandbytes (Linux x86_64 or aarch64 with a CUDA GPU)"


def check(quantize: str | None, backend: str, device_map: str | None = None) -> None:
    """One line, before anything is built, when `--quantize` or `--device-map` is for another backend."""
    if device_map is not None and backend != "hf":
        raise MibeError(
            f"--device-map {device_map}: HF backend only; vLLM splits a model with --tensor-parallel-size"
        )
    if quantize is None:
        return
    if quantize not in CHOICES:
        raise MibeError(f"--quantize {quantize}: expected 4bit or 8bit")
    if backend != "hf":
        raise MibeError(
            f"--quantize {quantize}: HF backend only (bitsandbytes); with --backend vllm pass a "
            "pre-quantised checkpoint (AWQ, GPTQ) as --model, vLLM reads its quantization_config; "
            "a served model is quantised by its server"
        )


def check_runnable(quantize: str | None, device: str, flag: str = "--quantize") -> None:
    """One line, when the weights are about to load (a --dry-run never gets here: its memory
    estimate needs no bitsandbytes), when bitsandbytes cannot quantise on this machine."""
    if quantize is None:
        return
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MibeError(f"{flag} {quantize}: needs bitsandbytes, which is not installed: {INSTALL}")
    if not device.startswith("cuda"):
        raise MibeError(
            f"{flag} {quantize}: bitsandbytes quantises on a CUDA GPU and --device is {device}; "
            "run on a GPU (--device cuda), or leave --quantize out on this machine"
        )


def load_kwargs(quantize: str | None, device_map: str | None, device: str, dtype: Any) -> dict[str, Any]:
    """from_pretrained's extra arguments: the bitsandbytes config (compute in the run's dtype) and
    where the weights go (quantised weights are placed while loading; they cannot be moved after)."""
    found: dict[str, Any] = {}
    if quantize is not None:
        import torch
        from transformers import BitsAndBytesConfig

        compute = dtype if isinstance(dtype, torch.dtype) else torch.bfloat16
        found["quantization_config"] = (
            BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=compute,
                bnb_4bit_use_double_quant=True,
            )
            if quantize == "4bit"
            else BitsAndBytesConfig(load_in_8bit=True)
        )
    if device_map is not None or quantize is not None:
        found["device_map"] = device_map or {"": device}
    return found


def placed(kwargs: dict[str, Any]) -> bool:
    """Whether from_pretrained places the weights itself (then the model is never moved after)."""
    return "device_map" in kwargs
