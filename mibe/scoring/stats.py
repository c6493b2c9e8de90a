"""Paired significance between two systems scored on the same documents: pure statistics.

A metric here is a function of the column sums of a per-document statistics matrix (as in
`mibe.scoring.metrics`), so accuracy, macro-F1 and entity F1 resample the same way: one matrix product per
chunk of resamples, the same document indices applied to both systems (that is what makes it paired).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from math import comb

import numpy as np

Stat = Callable[[np.ndarray], np.ndarray]  # column sums (..., d) -> metric (...)
_CELLS = 4_000_000  # resample x document cells drawn at once: bounds memory
# Past this, a percentile interval moves in the fourth decimal at most, while each resample's
# statistics stay in memory: 1e8 resamples took 18 GB.
MAX_BOOTSTRAP = 100_000

MIN_BOOTSTRAP_N = 20
"""Fewer shared documents than this and a bootstrap p-value means little: with 3 documents where one
system wins every time, every resample agrees and the p-value is 1/(B+1) however little was seen.
Binary per-document metrics have McNemar's exact test instead, which stays valid at any n."""


@dataclass(frozen=True)
class Paired:
    """A - B on shared documents: the observed difference, its percentile 95% interval, a p-value."""

    a: float
    b: float
    diff: float
    ci95: tuple[float, float]
    p: float
    n: int
    samples: np.ndarray  # the bootstrap differences, to combine tasks into an average


@dataclass(frozen=True)
class McNemar:
    a_only: int  # documents A got right and B wrong
    b_only: int  # documents B got right and A wrong
    p: float


def binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of k successes in n at 1/2 (scipy's binomtest, p=0.5)."""
    if n == 0:
        return 1.0
    low = min(k, n - k)
    if 2 * low == n:
        return 1.0
    # Symmetric at 1/2, so "as extreme" is both tails: exact integer sums, one division at the end.
    tail = sum(comb(n, i) for i in range(low + 1))
    return min(1.0, 2 * tail / 2**n)


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """McNemar's exact test: the discordant documents, split as a fair coin would under no difference."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"mcnemar_exact: {len(a_correct)} and {len(b_correct)} documents")
    a_only = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if y and not x)
    return McNemar(a_only, b_only, binom_two_sided(a_only, a_only + b_only))


def resample_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Rows of document indices drawn with replacement, in chunks that bound memory."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS // max(n, 1))
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def resample_sums(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Column sums of `x` (n, d) over the resamples of `resample_indices`: (n_boot, d)."""
    n = x.shape[0]
    out = [np.empty((0, x.shape[1]))]
    for idx in resample_indices(n, n_boot, seed):
        rows = len(idx)
        flat = (idx + n * np.arange(rows)[:, None]).ravel()
        times = np.bincount(flat, minlength=rows * n).reshape(rows, n)  # draws per document
        out.append(times.astype(float) @ x)
    return np.concatenate(out)


def bootstrap_p(samples: np.ndarray, observed: float) -> float:
    """Two-sided p of 'no difference': the bootstrap distribution shifted to centre on 0 (the null),
    how often it lands at least as far from 0 as the observed difference; +1 on both counts so a
    finite number of resamples never claims p = 0."""
    if len(samples) == 0:
        return 1.0
    beyond = np.abs(samples - observed) >= abs(observed) - 1e-12
    return float((1 + beyond.sum()) / (1 + len(samples)))


def _interval(samples: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(
    x_a: np.ndarray,
    x_b: np.ndarray,
    stat: Stat,
    n_boot: int = 1000,
    seed: int = 1234,
    stat_b: Stat | None = None,
) -> Paired:
    """Resample documents once, apply the same resample to both systems' statistics matrices.
    `stat_b` is B's metric when B's matrix is laid out differently (another number of shot draws)."""
    if x_a.shape[0] != x_b.shape[0]:
        raise ValueError(f"paired_bootstrap: {x_a.shape[0]} and {x_b.shape[0]} documents")
    n = x_a.shape[0]
    stat_b = stat_b or stat
    a, b = float(stat(x_a.sum(axis=0))), float(stat_b(x_b.sum(axis=0)))
    sums = resample_sums(np.hstack([x_a, x_b]), n_boot, seed)
    width = x_a.shape[1]
    samples = stat(sums[:, :width]) - stat_b(sums[:, width:])
    return Paired(a, b, a - b, _interval(samples), bootstrap_p(samples, a - b), n, samples)


def paired_means(a: Sequence[float], b: Sequence[float], n_boot: int = 1000, seed: int = 1234) -> Paired:
    """The paired bootstrap of a difference in means of per-document scores."""
    x_a, x_b = np.asarray(a, float).reshape(-1, 1), np.asarray(b, float).reshape(-1, 1)
    n = max(len(x_a), 1)
    return paired_bootstrap(x_a, x_b, lambda s: s[..., 0] / n, n_boot, seed)


def mean_of(parts: Sequence[Paired]) -> Paired:
    """The difference of averages over several tasks: their bootstrap differences averaged draw by
    draw. Tasks hold different documents, so resampling them independently is the right joint draw."""
    if not parts or len({len(p.samples) for p in parts}) != 1:
        raise ValueError("mean_of: needs tasks bootstrapped with the same number of resamples")
    samples = np.mean([p.samples for p in parts], axis=0)
    a, b = float(np.mean([p.a for p in parts])), float(np.mean([p.b for p in parts]))
    n = min(p.n for p in parts)
    return Paired(a, b, a - b, _interval(samples), bootstrap_p(samples, a - b), n, samples)
