"""Which documents two engines can be expected to agree on: the unambiguous ones.

Two engines (HF and vLLM, offline and served) compute the same float32 model with different kernels
and batch shapes, so their logits differ by ~1e-5. Where the best and second-best next token of a
greedy path (or the two best choices of a log-likelihood question) are closer than that, either
answer is correct, and a test that demands one engine's pick depends on luck. These helpers find, on
the reference side and one document at a time (no batch-composition effects), the documents whose
every greedy step and every choice is separated by at least MARGIN; parity tests compare those only
and print how many they left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

# Ten times the log-prob tolerance the engines are held to (tests/backends/test_vllm.py's LOGPROB_TOL): a
# path whose every step is decided by more than this cannot flip between two correct engines.
MARGIN = 1e-3


def rows(run: Path) -> dict[str, dict[str, dict]]:
    """task -> id -> samples row (split on "\\n" only: outputs may hold U+2028)."""
    return {
        p.stem: {r["id"]: r for r in (json.loads(line) for line in p.read_text().split("\n") if line)}
        for p in sorted((run / "samples").glob("*.jsonl"))
    }


def greedy_margins(
    model: Path, run: Path, max_new_tokens: int | Mapping[str, int], adapter: Path | None = None
) -> dict:
    """(task, id) -> the smallest top-1/top-2 log-prob gap along the greedy path of the document's
    prompt (as the run sent it), computed by transformers one document at a time; `max_new_tokens`
    is one cap, or each task's."""
    import torch

    from mibe.backends.hf import HFBackend

    backend = HFBackend(str(model), adapter=str(adapter) if adapter else None, dtype="float32")
    found = {}
    for task, docs in rows(run).items():
        cap = max_new_tokens if isinstance(max_new_tokens, int) else max_new_tokens[task]
        for ident, row in docs.items():
            ids = torch.tensor([backend.tokenize(row["prompt"])])
            with torch.inference_mode():
                out = backend.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=cap,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    output_scores=True,
                    return_dict_in_generate=True,
                    pad_token_id=backend.tokenizer.pad_token_id,
                )
            gaps = []
            for scores in out.scores:
                top = torch.log_softmax(scores[0].float(), dim=-1).topk(2).values
                gaps.append(float(top[0] - top[1]))
            found[(task, ident)] = min(gaps) if gaps else float("inf")
    return found


def choice_margins(run: Path) -> dict:
    """(task, id) -> the gap between the two best choices' summed log-probs (log-likelihood rows);
    generated rows are not in it."""
    found = {}
    for task, docs in rows(run).items():
        for ident, row in docs.items():
            if row.get("logprobs"):
                best = sorted(row["logprobs"], reverse=True)
                found[(task, ident)] = best[0] - best[1] if len(best) > 1 else float("inf")
    return found


def unambiguous(margins: dict) -> set:
    return {key for key, gap in margins.items() if gap >= MARGIN}


def agreement(a: Path, b: Path, keep: set | None = None) -> dict[str, tuple[int, int, int]]:
    """Per task: (documents compared, same prediction, same raw output), over `keep` when given."""
    ra, rb = rows(a), rows(b)
    assert ra.keys() == rb.keys()
    out = {}
    for task in ra:
        assert ra[task].keys() == rb[task].keys()
        ids = [i for i in ra[task] if keep is None or (task, i) in keep]
        pairs = [(ra[task][i], rb[task][i]) for i in ids]
        same = sum(x["prediction"] == y["prediction"] for x, y in pairs)
        out[task] = (len(pairs), same, sum(x["raw_output"] == y["raw_output"] for x, y in pairs))
    return out


def logprob_gaps(a: Path, b: Path) -> list[float]:
    """|a - b| for every choice's log-prob of every log-likelihood row of run `a` (the reference
    side) against the same row of run `b`; a task's rows all carry log-probs or none does."""
    ra, rb = rows(a), rows(b)
    gaps = []
    for task, docs in ra.items():
        assert len({"logprobs" in row for row in docs.values()}) <= 1, f"{task}: rows without log-probs"
        for doc, row in docs.items():
            if "logprobs" in row:
                pairs = zip(row["logprobs"], rb[task][doc]["logprobs"], strict=True)
                gaps += [abs(x - y) for x, y in pairs]
    return gaps


def report(name: str, margins: dict, keep: set) -> str:
    left = len(margins) - len(keep)
    compared = f"{len(keep)} of {len(margins)} documents compared"
    return f"{name}: {compared}, {left} left out as near-ties (< {MARGIN})"
