"""Calibration of log-likelihood scoring: does the model's confidence in its answer match how often
that answer is right? Expected calibration error, the multi-class Brier score, reliability-diagram
data, and bootstrap intervals, from the per-document log-likelihoods the samples files keep.

The probabilities are a softmax over the choices' summed log-probabilities: the distribution over
the task's answer set that the argmax prediction is taken from. It is not the model's probability
of writing that answer (the model may put mass on strings that are no choice), so "calibrated" here
means calibrated as a classifier over the listed choices.

ECE and Brier are both means over documents of per-document statistics (per bin, for ECE), so they
are functions of column sums, and one bootstrap resample is one matrix product (`mibe.stats`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mibe.scoring import stats

N_BINS = 10


def probabilities(logprobs: Sequence[float]) -> np.ndarray:
    """Softmax of one document's per-choice log-likelihoods (shifted by the max, so no overflow)."""
    z = np.asarray(logprobs, dtype=float)
    if z.ndim != 1 or len(z) < 2 or np.isnan(z).any() or not np.isfinite(z.max()):
        raise ValueError(f"calibration: need >= 2 log-likelihoods with a finite largest, got {list(z)}")
    e = np.exp(z - z.max())  # a choice at -inf gets probability 0
    return e / e.sum()


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Bin b holds confidences in (b/n_bins, (b+1)/n_bins]; the first bin also holds 0.

    Right-closed bins are the convention of Guo et al. (2017)'s reference code. The edges are
    b / n_bins, the nearest doubles to the decimals, so a confidence of exactly 0.3 falls in
    (0.2, 0.3], not in the next bin.
    """
    edges = np.arange(n_bins + 1) / n_bins
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def doc_statistics(
    logprobs: Sequence[Sequence[float]], gold: Sequence[int], n_bins: int = N_BINS
) -> tuple[np.ndarray, int]:
    """Per-document statistics (n, 3 * n_bins + 1): bin indicator, confidence and correctness per bin,
    then the document's Brier term; and n. Documents may have different numbers of choices."""
    if len(logprobs) != len(gold):
        raise ValueError(f"calibration: {len(logprobs)} documents with log-likelihoods, {len(gold)} golds")
    n = len(gold)
    x = np.zeros((n, 3 * n_bins + 1))
    for i, (z, g) in enumerate(zip(logprobs, gold, strict=True)):
        p = probabilities(z)
        if not 0 <= g < len(p):
            raise ValueError(f"calibration: document {i}: gold index {g} outside its {len(p)} choices")
        top = int(np.argmax(p))  # the first of equal maxima, as the run's argmax picks
        b = int(bin_index(np.array([p[top]]), n_bins)[0])
        x[i, [b, n_bins + b, 2 * n_bins + b]] = 1.0, p[top], float(top == g)
        onehot = np.zeros(len(p))
        onehot[g] = 1.0
        x[i, -1] = float(((p - onehot) ** 2).sum())
    return x, n


def ece_of(sums: np.ndarray, n: int, n_bins: int = N_BINS) -> np.ndarray:
    """ECE from column sums: sum over bins of |sum of confidence - sum of correct| / n, which is
    sum_b (n_b / n) |mean confidence_b - accuracy_b|."""
    gap = sums[..., n_bins : 2 * n_bins] - sums[..., 2 * n_bins : 3 * n_bins]
    return np.abs(gap).sum(-1) / n


def brier_of(sums: np.ndarray, n: int) -> np.ndarray:
    """Multi-class Brier from column sums: mean over documents of sum_k (p_k - onehot_k)^2, in [0, 2]."""
    return sums[..., -1] / n


def reliability(sums: np.ndarray, n_bins: int = N_BINS) -> list[dict[str, Any]]:
    """Per bin: its edges, how many documents, their mean confidence and accuracy (None when empty)."""
    out = []
    for b in range(n_bins):
        count = round(float(sums[b]))
        conf = float(sums[n_bins + b] / count) if count else None
        acc = float(sums[2 * n_bins + b] / count) if count else None
        out.append(
            {"lo": b / n_bins, "hi": (b + 1) / n_bins, "count": count, "confidence": conf, "accuracy": acc}
        )
    return out


def calibration(
    logprobs: Sequence[Sequence[float]],
    gold: Sequence[int],
    n_boot: int = 1000,
    seed: int = 1234,
    n_bins: int = N_BINS,
    clusters: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """{"n", "bins", "ece": {"value", "ci95"}, "brier": {"value", "ci95"}, "reliability": [...]}.

    The intervals are percentile 95% intervals over `n_boot` document resamples drawn as
    `mibe.scoring.stats.resample_sums` draws them with `seed`; None with no documents.
    """
    x, n = doc_statistics(logprobs, gold, n_bins)
    out: dict[str, Any] = {"n": n, "bins": n_bins}
    if n == 0:
        empty = {"value": None, "ci95": None}
        return {**out, "ece": dict(empty), "brier": dict(empty), "reliability": reliability(x.sum(0), n_bins)}
    total, boot = x.sum(axis=0), stats.resample_sums(x, n_boot, seed, clusters)
    for name, stat in (("ece", lambda s: ece_of(s, n, n_bins)), ("brier", lambda s: brier_of(s, n))):
        ci = np.percentile(stat(boot), [2.5, 97.5]).tolist() if len(boot) else None
        out[name] = {"value": float(stat(total)), "ci95": ci}
    out["reliability"] = reliability(total, n_bins)
    return out


def _gold_index(rows: Sequence[Mapping[str, Any]], choices: Sequence[str]) -> list[int]:
    index = {c: i for i, c in enumerate(choices)}
    unknown = sorted({str(r["gold"]) for r in rows if r["gold"] not in index})
    if unknown:
        raise ValueError(
            f"calibration: gold labels {unknown} are not among the task's choices {list(choices)}"
        )
    return [index[r["gold"]] for r in rows]


def from_samples(
    rows: Sequence[Mapping[str, Any]], choices: Sequence[str], n_boot: int = 1000, seed: int = 1234
) -> dict[str, Any] | None:
    """`calibration` of a log-likelihood task's samples rows (each with `logprobs` in the task's
    choice order and a `gold` label); None when a row has no `logprobs` (generation scoring)."""
    if not rows or any("logprobs" not in r for r in rows):
        return None
    golds = _gold_index(rows, choices)
    return calibration([r["logprobs"] for r in rows], golds, n_boot, seed, clusters=stats.clusters_of(rows))


def over_draws(
    draws: Sequence[Sequence[Mapping[str, Any]]], choices: Sequence[str], n_boot: int = 1000, seed: int = 1234
) -> dict[str, Any] | None:
    """`calibration` of a task scored over several shot draws, each draw's rows in the same document
    order: ECE and Brier as every metric of such a run (each draw's value, their mean and sd, the
    two-level interval over documents and draws) and the reliability diagram of every draw's
    predictions pooled. None without log-likelihoods."""
    from mibe.scoring import draw_stats

    if not draws or any(not rows or any("logprobs" not in r for r in rows) for rows in draws):
        return None
    xs = [doc_statistics([r["logprobs"] for r in rows], _gold_index(rows, choices))[0] for rows in draws]
    n = len(draws[0])
    wanted = {"ece": lambda s: ece_of(s, n), "brier": lambda s: brier_of(s, n)}
    out: dict[str, Any] = {"n": n, "bins": N_BINS, "n_draws": len(draws), "reliability_pooled": True}
    clusters = stats.clusters_of(draws[0])
    for name, got in draw_stats.summarise_draws(xs, wanted, n_boot, seed, clusters).items():
        ci = list(got.ci95) if got.ci95 else None
        out[name] = {"value": got.mean, "ci95": ci, "sd": got.sd, "values": list(got.values)}
    out["reliability"] = reliability(np.sum([x.sum(axis=0) for x in xs], axis=0))
    return out
