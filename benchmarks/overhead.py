"""Harness overhead: mibe's evaluation after the model is loaded vs a bare loop over the same tokens.

Both run in this process on the same loaded model. The bare loop does only the model work mibe must
do: one forward per document context (choices read from the cache, multi-token ones fed through
it) for log-likelihood; `model.generate` on the same batches for generation. Tokenising for the
bare loop happens before its clock starts; mibe's own tokenising, prompt fitting, parsing,
scoring, bootstrap and file writing are all inside its time.

    python benchmarks/overhead.py [--data-dir ../shared/data/mibe-public] [--limit 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def batches(backend, requests, batch_size: int, extra: int) -> list[list]:
    """mibe's batches (batches.batch_rows): longest first; a token budget on an accelerator."""
    from mibe.runner import batches

    ordered = sorted(requests, key=lambda r: -len(backend.tokenize(r.prompt)))
    costs = [len(backend.tokenize(r.prompt)) + extra for r in ordered]
    out, start = [], 0
    while start < len(ordered):
        budget = None if backend.device == "cpu" else batch_size * costs[0]
        rows = batches.batch_rows(costs, start, batch_size, budget)
        out.append(ordered[start : start + rows])
        start += rows
    return out


def bare_loglikelihood(backend, per_task, batch_size: int) -> float:
    """The forwards mibe's strategy needs, on tensors built before the clock starts: per batch, one
    right-padded context forward (logits at the contexts' ends only), then the multi-token choices
    through its cache."""
    import torch

    model = backend.model
    jobs = []
    groups = [g for requests in per_task for g in batches(backend, requests, batch_size, 0)]
    for group in groups:
        prepared = backend.tokenize_with_choices(group)
        lengths = [len(ctx) for ctx, _ in prepared]
        width = max(lengths)
        ids = torch.tensor([ctx + ctx[-1:] * (width - len(ctx)) for ctx, _ in prepared])
        batch = {"input_ids": ids, "logits_to_keep": torch.tensor(sorted({n - 1 for n in lengths}))}
        multi = [(b, c) for b, (_, conts) in enumerate(prepared) for c in conts if len(c) > 1]
        step = None
        if multi:
            owners = torch.tensor([b for b, _ in multi])
            steps = max(len(c) for _, c in multi) - 1
            step_ids = torch.tensor([c[:-1] + [0] * (steps - len(c) + 1) for _, c in multi])
            real = torch.tensor([[1] * lengths[b] + [0] * (width - lengths[b]) for b, _ in multi])
            step_mask = torch.cat([real, torch.ones(len(multi), steps, dtype=real.dtype)], 1)
            positions = torch.tensor([lengths[b] for b, _ in multi])[:, None] + torch.arange(steps)[None]
            step = (owners, {"input_ids": step_ids, "attention_mask": step_mask, "position_ids": positions})
        jobs.append((batch, step))
    cache_kwarg = backend._cache_kwarg()
    start = time.perf_counter()
    with torch.inference_mode():
        for batch, step in jobs:
            out = model(**batch, use_cache=step is not None)
            if step is not None:
                cache = getattr(out, "cache", None) or out.past_key_values
                cache.reorder_cache(step[0])
                model(**step[1], use_cache=False, **{cache_kwarg: cache})
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # CUDA runs ahead of Python: wait for the last kernel
    return time.perf_counter() - start


def bare_generate(backend, per_task, batch_size: int) -> float:
    import torch

    tok = backend.tokenizer
    extra = per_task[0][0].max_new_tokens
    groups = [g for requests in per_task for g in batches(backend, requests, batch_size, extra)]
    prepared = [backend._left_padded([backend.tokenize(r.prompt) for r in group]) for group in groups]
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in prepared:
            backend.model.generate(
                **batch,
                max_new_tokens=extra,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # CUDA runs ahead of Python: wait for the last kernel
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mibe-public"))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="mibe and the bare loop alternate")
    args = parser.parse_args()
    from mibe import data, tasks
    from mibe.backends.hf import HFBackend
    from mibe.runner import api, pipeline, task_plan
    from mibe.types import RunConfig
    from tests.support import tinymodel

    work = Path(tempfile.mkdtemp(prefix="mibe-overhead-"))
    model = tinymodel.build(work / "model", REPO, context=2048, hidden=128, head_dim=64)
    backend = HFBackend(str(model), dtype="float32")
    backend.model  # noqa: B018 - load before any clock starts
    torch = __import__("torch")
    print(
        f"machine: {os.cpu_count()} CPU cores; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    names = ("pubmedqa", "medqa")
    for scoring in ("loglikelihood", "generate"):
        config = RunConfig(
            model=str(model), tasks=names, data_dir=args.data_dir, limit=args.limit, scoring=scoring,
            max_new_tokens=args.max_new_tokens, protocol="paper", batch_size=args.batch_size,
        )  # fmt: skip
        per_task = []
        for name in names:
            task = tasks.load_task(tasks.builtin_paths()[name])
            p = task_plan.plan(
                task, data.load_docs(task, data.locate(task, args.data_dir, {})), config, backend
            )
            per_task.append(pipeline.build_requests(p, config, backend, p.docset.docs, p.docs)[0])
        bare_loop = bare_loglikelihood if scoring == "loglikelihood" else bare_generate
        ours, bare = [], []
        for round_ in range(args.rounds):
            # mibe starts cold every round: no prompt left in its tokenizer cache from the last.
            backend._ids.clear()
            backend._choice_ids.clear()
            out = RunConfig(**{**config.__dict__, "output_dir": str(work / f"{scoring}-{round_}")})
            start = time.perf_counter()
            api.run(out, backend=backend)
            ours.append(time.perf_counter() - start)
            bare.append(bare_loop(backend, per_task, args.batch_size))
        n = sum(len(r) for r in per_task)
        mid_ours, mid_bare = statistics.median(ours), statistics.median(bare)
        print(f"{scoring}: {n} documents, {args.rounds} rounds (mibe and the bare loop alternating)")
        print("  mibe      " + " ".join(f"{t:6.2f}" for t in ours) + f"  median {mid_ours:.2f} s")
        print("  bare loop " + " ".join(f"{t:6.2f}" for t in bare) + f"  median {mid_bare:.2f} s")
        ratios = [a / b for a, b in zip(ours, bare, strict=True)]
        print("  ratio     " + " ".join(f"{r:6.2f}" for r in ratios))
        print(f"  overhead (mibe / bare loop): {statistics.median(ratios):.2f}x, the median round")


if __name__ == "__main__":
    main()
