"""How much memory a run needs, before anything loads: weights from the exact parameter count of the
model's config.json (built on PyTorch's meta device, so no weight is read or allocated), times the bytes
per parameter at the chosen precision, plus the KV cache at the run's batch and context.

Quantised loading (bitsandbytes) converts the linear layers only: transformers leaves the output head
(and any tied or fp32-kept module) unquantised, and embeddings and norms are not linear layers. The
estimate asks transformers itself which modules it skips, so it follows the library's own rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe.types import MibeError

# Bytes per parameter of the stored weights. Quantisation constants (an absmax per block of 64 weights
# at 4 bits, per row at 8 bits) come on top: about 3% of the 4-bit weights, and are not counted here.
BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "8bit": 1.0, "4bit": 0.5}
QUANTIZED = ("8bit", "4bit")
GIB = 1024**3


@dataclass(frozen=True)
class Weights:
    parameters: int  # every parameter of the model, exactly
    quantized: int  # of them, those in linear layers the quantiser converts (0 when not quantised)
    kept: tuple[str, ...]  # modules left unquantised (the output head, ...); () when not quantised
    precision: str  # float32 | float16 | bfloat16 | 8bit | 4bit
    compute: str  # the dtype of everything not quantised
    bytes: int


def load_config(model: str | Path, trust_remote_code: bool = False) -> Any:
    """A model folder's (or a bare config.json's) configuration; one line when it cannot be read."""
    import transformers

    path = Path(model).expanduser()
    try:
        if path.is_file():
            return transformers.AutoConfig.from_pretrained(
                str(path.parent), trust_remote_code=trust_remote_code
            )
        return transformers.AutoConfig.from_pretrained(str(model), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise MibeError(f"--model {model}: cannot read its config.json ({first})") from None


def meta_model(config: Any) -> Any:
    """The model's modules with their shapes on the meta device: no memory, no weights read."""
    import torch
    import transformers

    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


def weights(config: Any, precision: str, compute: str = "bfloat16") -> Weights:
    """The weights' bytes at `precision` (`compute` is the dtype of what quantisation leaves alone)."""
    if precision not in BYTES:
        raise MibeError(f"precision {precision}: expected one of {', '.join(BYTES)}")
    model = meta_model(config)
    total = sum(p.numel() for p in model.parameters())
    if precision not in QUANTIZED:
        return Weights(total, 0, (), precision, precision, int(total * BYTES[precision]))
    import torch
    from transformers.integrations.bitsandbytes import should_convert_module
    from transformers.quantizers.base import get_keys_to_not_convert

    kept = tuple(sorted(get_keys_to_not_convert(model)))
    quantized = sum(
        module.weight.numel()
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and should_convert_module(name, list(kept))
    )
    size = quantized * BYTES[precision] + (total - quantized) * BYTES[compute]
    return Weights(total, quantized, kept, precision, compute, int(size))


def kv_bytes_per_token(config: Any, dtype: str) -> int:
    """Keys and values of every layer for one token."""
    text = getattr(config, "text_config", None) or config
    layers = text.num_hidden_layers
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return int(2 * layers * kv_heads * head_dim * BYTES.get(dtype, 2.0))


def devices() -> list[tuple[str, int]]:
    """The devices a run could use, with their memory in bytes: each CUDA GPU, else this machine's RAM."""
    import torch

    found = [
        (f"cuda:{i} {torch.cuda.get_device_name(i)}", torch.cuda.get_device_properties(i).total_memory)
        for i in range(torch.cuda.device_count())
    ]
    if found:
        return found
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 0
    return [("cpu (RAM)", ram)]


def plan(config: Any, precision: str, compute: str, batch: int, context: int) -> list[str]:
    """Lines for `--dry-run`: weights, KV cache, and the devices found against them."""
    w = weights(config, precision, compute)
    kv = kv_bytes_per_token(config, compute) * batch * context
    lines = [f"memory: weights {w.bytes / GIB:.2f} GiB ({w.parameters:,} parameters at {precision})"]
    if w.kept:
        lines.append(
            f"memory: {w.parameters - w.quantized:,} parameters stay {compute}: "
            f"{', '.join(w.kept)}, embeddings and norms (bitsandbytes converts linear layers only)"
        )
    lines.append(f"memory: KV cache {kv / GIB:.2f} GiB (batch {batch} x {context} tokens at {compute})")
    need = w.bytes + kv
    found = devices()
    have = sum(size for _, size in found)
    shown = ", ".join(f"{name} {size / GIB:.0f} GiB" for name, size in found)
    verdict = "fits" if need <= have else "does not fit"
    lines.append(f"memory: about {need / GIB:.2f} GiB needed; {shown}: {verdict}")
    return lines
