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
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def bare_loglikelihood(backend, requests, batch_size: int) -> float:
    """The forwards mibe's strategy needs, on tensors built before the clock starts: per batch, one
    left-padded context forward (last logits only), then the multi-token choices through its cache."""
    import torch

    model = backend.model
    ordered = sorted(requests, key=lambda r: -len(backend.tokenize(r.prompt)))
    jobs = []
    for start in range(0, len(ordered), batch_size):
        prepared = backend.tokenize_with_choices(ordered[start : start + batch_size])
        batch = backend._left_padded([ctx for ctx, _ in prepared])
        mask = batch["attention_mask"]
        batch["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        multi = [(b, c) for b, (_, conts) in enumerate(prepared) for c in conts if len(c) > 1]
        step = None
        if multi:
            owners = torch.tensor([b for b, _ in multi])
            width = max(len(c) for _, c in multi) - 1
            ids = torch.tensor([c[:-1] + [0] * (width - len(c) + 1) for _, c in multi])
            step_mask = torch.cat([mask[owners], torch.ones(len(multi), width, dtype=mask.dtype)], 1)
            positions = mask.sum(-1)[owners][:, None] + torch.arange(width)[None]
            step = (owners, {"input_ids": ids, "attention_mask": step_mask, "position_ids": positions})
        jobs.append((batch, step))
    cache_kwarg = backend._cache_kwarg()
    start = time.perf_counter()
    with torch.inference_mode():
        for batch, step in jobs:
            out = model(**batch, logits_to_keep=1, use_cache=step is not None)
            if step is not None:
                cache = getattr(out, "cache", None) or out.past_key_values
                cache.reorder_cache(step[0])
                model(**step[1], use_cache=False, **{cache_kwarg: cache})
    return time.perf_counter() - start


def bare_generate(backend, requests, batch_size: int) -> float:
    import torch

    tok = backend.tokenizer
    ordered = sorted(requests, key=lambda r: -len(backend.tokenize(r.prompt)))
    batches = [
        tok([r.prompt for r in ordered[i : i + batch_size]], return_tensors="pt", padding=True)
        for i in range(0, len(ordered), batch_size)
    ]
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            backend.model.generate(
                **batch,
                max_new_tokens=requests[0].max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mibe-public"))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    from mibe import api, data, runner, tasks
    from mibe.backends.hf import HFBackend
    from mibe.types import RunConfig
    from tests import tinymodel

    work = Path(tempfile.mkdtemp(prefix="mibe-overhead-"))
    model = tinymodel.build(work / "model", REPO, context=2048, hidden=128, head_dim=64)
    backend = HFBackend(str(model), dtype="float32")
    backend.model  # noqa: B018 - load before any clock starts
    print(f"machine: {os.cpu_count()} CPU cores; torch threads {__import__('torch').get_num_threads()}")
    for scoring, names in (("loglikelihood", ("pubmedqa", "medqa")), ("generate", ("pubmedqa", "medqa"))):
        config = RunConfig(
            model=str(model), tasks=names, data_dir=args.data_dir, limit=args.limit, scoring=scoring,
            max_new_tokens=args.max_new_tokens, protocol="paper", batch_size=args.batch_size,
            output_dir=str(work / scoring),
        )  # fmt: skip
        start = time.perf_counter()
        api.run(config, backend=backend, say=lambda line: None)
        ours = time.perf_counter() - start
        requests = []
        for name in names:
            task = tasks.load_task(tasks.builtin_paths()[name])
            location = data.locate(task, args.data_dir, {})
            p = runner.plan(task, data.load_docs(task, location), config, backend)
            requests += runner.build_requests(p, config, backend, p.docset.docs, p.docs)[0]
        if scoring == "loglikelihood":
            bare = bare_loglikelihood(backend, requests, args.batch_size)
        else:
            bare = bare_generate(backend, requests, args.batch_size)
        ratio = ours / bare
        print(f"{scoring}: {len(requests)} documents; mibe {ours:.2f} s, bare loop {bare:.2f} s")
        print(f"  overhead (mibe / bare loop): {ratio:.2f}x")


if __name__ == "__main__":
    main()
