"""GPU check: the HF backend in bf16 on a randomly initialised ~1B LLaMA, against bare loops.

Built for a machine where nothing can be downloaded and only the repository travels: the model is
random (TinyLlama-1.1B's shape), the tokenizer is trained here, the documents are generated, and
mibe runs from source. It prints batched generation and log-likelihood throughput for mibe and for
a bare `model.generate` / forward loop over the same prompts and batches, and their ratio.

    python benchmarks/gpu_check.py                      # on the GPU machine (cuda, bf16, 1.1B)
    python benchmarks/gpu_check.py --size tiny --device cpu --dtype float32   # a CPU rehearsal
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SIZES = {  # hidden, intermediate, layers, heads, kv heads
    "1b": (2048, 5632, 22, 32, 4),
    "tiny": (128, 256, 2, 2, 2),
}


def documents(folder: Path, n: int, words: int, seed: int = 0) -> Path:
    """PubMedQA- and MedQA-shaped rows in their original release fields (invented text)."""
    rng = random.Random(seed)
    vocab = [
        "patients",
        "study",
        "treatment",
        "outcome",
        "cohort",
        "trial",
        "risk",
        "dose",
        "therapy",
        "cells",
        "tumor",
        "blood",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "pubmedqa.jsonl").open("w") as out:
        for i in range(n):
            body = " ".join(rng.choice(vocab) for _ in range(rng.randint(words // 2, words)))
            row = {"pmid": str(i), "QUESTION": "Does the therapy help?", "CONTEXTS": [body],
                   "final_decision": rng.choice(["yes", "no", "maybe"]), "invented": True}  # fmt: skip
            out.write(json.dumps(row) + "\n")
    with (folder / "medqa.jsonl").open("w") as out:
        for i in range(n):
            stem = " ".join(rng.choice(vocab) for _ in range(rng.randint(words // 4, words // 2)))
            options = {k: " ".join(rng.choice(vocab) for _ in range(3)) for k in "ABCD"}
            row = {
                "realidx": i,
                "question": stem,
                "options": options,
                "answer_idx": rng.choice("ABCD"),
                "invented": True,
            }
            out.write(json.dumps(row) + "\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--docs", type=int, default=128)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    import torch
    from overhead import bare_generate, bare_loglikelihood
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mibe import data, tasks
    from mibe.backends.hf import HFBackend
    from mibe.runner import api, pipeline, task_plan
    from mibe.types import RunConfig
    from tests.support import tinymodel

    work = Path(tempfile.mkdtemp(prefix="mibe-gpu-check-"))
    tinymodel.build(work / "tok", REPO, context=4096)  # the tokenizer; its tiny weights are unused
    tokenizer = AutoTokenizer.from_pretrained(work / "tok")
    hidden, inter, layers, heads, kv = SIZES[args.size]
    config = LlamaConfig(
        vocab_size=32000, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e9
    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"device: {card}; torch {torch.__version__}; model {params:.2f}B parameters, {args.dtype}")
    backend = HFBackend.from_loaded(model, tokenizer, name=f"random-llama-{args.size}")
    folder = documents(work / "docs", args.docs, args.words)
    for scoring, names in (("generate", ("pubmedqa",)), ("loglikelihood", ("medqa", "pubmedqa"))):
        run = RunConfig(
            model=backend.model_name, tasks=names, data_dir=str(folder), scoring=scoring, protocol="paper",
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, output_dir=str(work / scoring),
            dtype=args.dtype, device=args.device, bootstrap=200,
        )  # fmt: skip
        per_task = []
        for name in names:
            task = tasks.load_task(tasks.builtin_paths()[name])
            p = task_plan.plan(task, data.load_docs(task, data.locate(task, str(folder), {})), run, backend)
            per_task.append(pipeline.build_requests(p, run, backend, p.docset.docs, p.docs)[0])
        bare_loop = bare_generate if scoring == "generate" else bare_loglikelihood
        bare_loop(backend, per_task, args.batch_size)  # warm-up: kernels, allocator, autotuning
        backend._ids.clear()  # mibe starts with nothing tokenised
        backend._choice_ids.clear()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        api.run(run, backend=backend)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        ours = time.perf_counter() - start
        bare = bare_loop(backend, per_task, args.batch_size)
        requests = [r for group in per_task for r in group]
        rate = len(requests) / ours
        print(f"{scoring}: {len(requests)} documents, batch {args.batch_size}")
        print(f"  mibe {ours:.2f} s ({rate:.1f} doc/s)")
        print(f"  bare loop {bare:.2f} s; mibe / bare {ours / bare:.2f}x")


if __name__ == "__main__":
    main()
