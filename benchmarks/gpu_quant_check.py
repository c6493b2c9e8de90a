"""GPU check of the card's GPU work: `--quantize 4bit` and `8bit` loading, `--device-map auto`, and one
QLoRA step (`mibe train`'s recipe key `quantize: 4bit`), on a random ~1B LLaMA built from a LlamaConfig
(no download: the lent machine reaches nothing). Prints one summary line per check and a JSON summary.

    bash benchmarks/gpu_quant_check.sh                                  # on the lent GPU machine
    python benchmarks/gpu_quant_check.py --size tiny --device cpu       # the CPU rehearsal

On a CPU (the rehearsal) the bitsandbytes checks are reported as "skipped: needs CUDA", `device_map`
runs on the CPU, and the QLoRA step runs as a plain LoRA step: the same code path up to quantising.
Not checked here, and marked unverified: AWQ/GPTQ checkpoints through vLLM, tensor and pipeline
parallel, vLLM on a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SIZES = {"1b": (2048, 5632, 22, 32, 4), "tiny": (64, 128, 2, 2, 2)}  # hidden, inter, layers, heads, kv
UNVERIFIED = ["AWQ/GPTQ checkpoints through vLLM", "tensor/pipeline parallel", "vLLM on a GPU"]


def build_model(folder: Path, size: str) -> Path:
    """A random LLaMA of `size` saved in bf16 with the tests' tokenizer (trained here, no download)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tests.support import tinymodel

    tinymodel.build(folder / "tok", REPO, context=2048)
    tokenizer = AutoTokenizer.from_pretrained(folder / "tok")
    hidden, inter, layers, heads, kv = SIZES[size]
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    path = folder / f"random-llama-{size}"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def score(model: Path, device: str, **options: Any) -> dict[str, Any]:
    """Load through mibe's HF backend, generate and score log-likelihoods: outputs and footprint."""
    import torch

    from mibe.backends.hf import HFBackend
    from mibe.types import Request

    started = time.perf_counter()
    backend = HFBackend(str(model), dtype="bfloat16", device=device, **options)
    requests = [Request(f"d{i}", f"Question {i}: is the therapy safe?", 8, ()) for i in range(4)]
    outputs = backend.generate(requests)
    choices = [Request(f"c{i}", f"Question {i}: answer", 1, (), (" yes", " no")) for i in range(4)]
    logprobs = backend.loglikelihood(choices)
    loaded = backend.model
    finite = all(math.isfinite(v) and v <= 0 for row in logprobs for v in row)
    return {
        "ok": finite and len(outputs) == len(requests),
        "seconds": round(time.perf_counter() - started, 2),
        "footprint_gib": round(loaded.get_memory_footprint() / 1024**3, 3),
        "device_map": sorted({str(d) for d in (getattr(loaded, "hf_device_map", None) or {}).values()}),
        "describe": {
            k: v for k, v in backend.describe().items() if k in ("quantization", "device_map", "dtype")
        },
        "peak_gib": round(torch.cuda.max_memory_allocated() / 1024**3, 3)
        if device.startswith("cuda")
        else None,
    }


def qlora_step(model: Path, bits: str | None) -> dict[str, Any]:
    """One optimiser step of `mibe train`'s model loading (LoRA over a `bits` base, None: unquantised)."""
    import torch

    from mibe.training import recipe, trainer

    loaded, _ = recipe.load("sft", None, {"model": str(model), "output_dir": "o", "data": "d.jsonl"}, [])
    loaded = {**loaded, "quantize": bits, "gradient_checkpointing": True}
    net = trainer.load_model(loaded, "bf16" if bits else "fp32", deepspeed=False)
    device = next(p.device for p in net.parameters())
    trainable = [p for p in net.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimiser = torch.optim.AdamW(trainable, lr=1e-3)
    ids = torch.randint(3, 100, (2, 32), device=device)
    net.train()
    loss = net(input_ids=ids, labels=ids).loss
    loss.backward()
    optimiser.step()
    moved = sum(int(not torch.equal(a, b.detach())) for a, b in zip(before, trainable, strict=True))
    return {"ok": math.isfinite(loss.item()) and moved > 0, "loss": round(loss.item(), 4),
            "trainable_tensors": len(trainable), "tensors_updated": moved}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1b")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    import torch

    cuda = args.device.startswith("cuda") and torch.cuda.is_available()
    card = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"device: {card}; torch {torch.__version__}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="mibe-gpu-quant-"))
    model = build_model(work, args.size)
    checks: dict[str, Any] = {}
    plans = [
        ("bf16", lambda: score(model, args.device)),
        ("4bit", (lambda: score(model, args.device, quantize="4bit")) if cuda else None),
        ("8bit", (lambda: score(model, args.device, quantize="8bit")) if cuda else None),
        ("device_map", lambda: score(model, args.device, device_map="auto")),
        ("qlora_step", lambda: qlora_step(model, "4bit" if cuda else None)),
    ]
    for name, check in plans:
        if check is None:
            checks[name] = {"ok": None, "skipped": "needs CUDA"}
        else:
            try:
                checks[name] = check()
            except Exception as exc:  # a check that fails is reported, the others still run
                checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(f"{name}: {json.dumps(checks[name])}", flush=True)
    summary = {"device": card, "size": args.size, "checks": checks, "unverified": UNVERIFIED}
    print("SUMMARY " + json.dumps(summary))
    return 0 if all(c.get("ok") is not False for c in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
