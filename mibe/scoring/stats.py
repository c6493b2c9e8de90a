"""Paired significance between two systems scored on the same documents: pure statistics.

A metric here is a function of the column sums of a per-document statistics matrix (as in
`mibe.scoring.metrics`), so accuracy, macro-F1 and entity F1 resample the same way: one matrix product per
chunk of resamples, the same document indices applied to both systems (that is what makes it paired).

Documents made together (three MedNLI hypotheses of one premise, the drug pairs of one DDI document)
are not independent draws: given `clusters`, every resample draws clusters with replacement and keeps
all their documents (the cluster bootstrap), and the paired right/wrong test is Durkalski's clustered
McNemar test instead of the exact one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from math import comb, erfc, sqrt
from typing import Any

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
    n_clusters: int | None = None  # the clusters resampled; None: documents resampled one by one

    @property
    def units(self) -> int:
        """What was resampled: clusters when there were, else documents."""
        return self.n if self.n_clusters is None else self.n_clusters


@dataclass(frozen=True)
class McNemar:
    a_only: int  # documents A got right and B wrong
    b_only: int  # documents B got right and A wrong
    p: float
    test: str = "McNemar exact"
    n_clusters: int | None = None  # the clustered test: how many clusters it summed over


Clusters = Sequence[Hashable | None]  # one per document; None: a cluster of its own
CLUSTERED_MCNEMAR = "clustered McNemar (Durkalski 2003)"


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


def mcnemar_clustered(a_correct: Sequence[bool], b_correct: Sequence[bool], clusters: Clusters) -> McNemar:
    """Durkalski et al. (2003, Statistics in Medicine 22:1417) McNemar test for clustered matched pairs.

    With d_k = (A-only minus B-only documents) in cluster k, X = (sum d_k)^2 / sum d_k^2 is chi-square
    with 1 degree of freedom under no difference; the denominator is the variance of the sum estimated
    from the clusters themselves, so correlated documents of one cluster count once. With one document
    per cluster it is McNemar's (uncorrected) chi-square (b - c)^2 / (b + c). Asymptotic: trust it with
    many clusters that hold discordant documents, not with a handful."""
    if not len(a_correct) == len(b_correct) == len(clusters):
        sizes = f"{len(a_correct)}, {len(b_correct)} and {len(clusters)}"
        raise ValueError(f"mcnemar_clustered: {sizes} documents")
    codes = cluster_codes(clusters)
    d = np.array(a_correct, dtype=float) - np.array(b_correct, dtype=float)  # +1 A only, -1 B only
    per_cluster = np.bincount(codes, weights=d) if len(d) else np.zeros(0)
    a_only, b_only = int((d > 0).sum()), int((d < 0).sum())
    denominator = float((per_cluster**2).sum())
    if denominator == 0:
        p = 1.0
    else:
        statistic = float(per_cluster.sum()) ** 2 / denominator
        p = min(1.0, erfc(sqrt(statistic / 2)))  # the chi-square(1) survival function
    return McNemar(a_only, b_only, p, CLUSTERED_MCNEMAR, int(codes.max()) + 1 if len(codes) else 0)


def cluster_codes(clusters: Clusters) -> np.ndarray:
    """Cluster numbers 0..m-1 in order of first appearance; a None is a cluster of its own."""
    seen: dict[Hashable, int] = {}
    out = np.empty(len(clusters), dtype=np.int64)
    for i, c in enumerate(clusters):
        out[i] = seen.setdefault((0, c) if c is not None else (1, i), len(seen))
    return out


def n_clusters(clusters: Clusters | None, n: int) -> int:
    return n if clusters is None else len(set(cluster_codes(clusters).tolist()))


def clustered(clusters: Clusters | None) -> bool:
    """Whether some cluster holds more than one document (else resampling clusters is resampling
    documents, and every number is today's to the bit)."""
    if clusters is None:
        return False
    codes = cluster_codes(clusters)
    return len(codes) > 0 and int(codes.max()) + 1 < len(codes)


def clusters_of(rows: Sequence[Any]) -> list[Any] | None:
    """The `cluster` each samples row carries, in the rows' order; None when no row has one (a run
    scored before clusters, or a task without them: its documents are resampled one by one)."""
    found = [r.get("cluster") if isinstance(r, dict) else None for r in rows]
    return found if any(c is not None for c in found) else None


def resample_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Rows of document indices drawn with replacement, in chunks that bound memory."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS // max(n, 1))
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def _times(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each of n units was drawn in each resample row."""
    rows = len(idx)
    flat = (idx + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(float)


def resample_sums(x: np.ndarray, n_boot: int, seed: int, clusters: Clusters | None = None) -> np.ndarray:
    """Column sums of `x` (n, d) over the resamples of `resample_indices`: (n_boot, d).

    With `clusters` (one per row of x) the clusters are drawn with replacement and keep all their
    documents; a resample then holds some number N* of documents, and its sums are scaled by n / N*,
    so a metric that divides by n (accuracy, a mean score) is the mean over the resample's documents
    and one of ratios (F1) is unchanged. With one document per cluster this is the document bootstrap,
    bit for bit (the same code path)."""
    if not clustered(clusters):
        n = x.shape[0]
        out = [np.empty((0, x.shape[1]))]
        for idx in resample_indices(n, n_boot, seed):
            out.append(_times(idx, n) @ x)
        return np.concatenate(out)
    codes = cluster_codes(clusters)  # type: ignore[arg-type]
    m = int(codes.max()) + 1
    totals = np.zeros((m, x.shape[1]))
    np.add.at(totals, codes, x)
    sizes = np.bincount(codes, minlength=m).astype(float)
    out = [np.empty((0, x.shape[1]))]
    for idx in resample_indices(m, n_boot, seed):
        times = _times(idx, m)
        out.append((times @ totals) * (x.shape[0] / (times @ sizes))[:, None])
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
    clusters: Clusters | None = None,
) -> Paired:
    """Resample documents (or their clusters) once, apply the same resample to both systems'
    statistics matrices. `stat_b` is B's metric when B's matrix is laid out differently (another
    number of shot draws)."""
    if x_a.shape[0] != x_b.shape[0]:
        raise ValueError(f"paired_bootstrap: {x_a.shape[0]} and {x_b.shape[0]} documents")
    n = x_a.shape[0]
    stat_b = stat_b or stat
    a, b = float(stat(x_a.sum(axis=0))), float(stat_b(x_b.sum(axis=0)))
    sums = resample_sums(np.hstack([x_a, x_b]), n_boot, seed, clusters)
    width = x_a.shape[1]
    samples = stat(sums[:, :width]) - stat_b(sums[:, width:])
    m = n_clusters(clusters, n) if clustered(clusters) else None
    return Paired(a, b, a - b, _interval(samples), bootstrap_p(samples, a - b), n, samples, m)


def paired_means(
    a: Sequence[float],
    b: Sequence[float],
    n_boot: int = 1000,
    seed: int = 1234,
    clusters: Clusters | None = None,
) -> Paired:
    """The paired bootstrap of a difference in means of per-document scores."""
    x_a, x_b = np.asarray(a, float).reshape(-1, 1), np.asarray(b, float).reshape(-1, 1)
    n = max(len(x_a), 1)
    return paired_bootstrap(x_a, x_b, lambda s: s[..., 0] / n, n_boot, seed, clusters=clusters)


def mean_of(parts: Sequence[Paired]) -> Paired:
    """The difference of averages over several tasks: their bootstrap differences averaged draw by
    draw. Tasks hold different documents, so resampling them independently is the right joint draw."""
    if not parts or len({len(p.samples) for p in parts}) != 1:
        raise ValueError("mean_of: needs tasks bootstrapped with the same number of resamples")
    samples = np.mean([p.samples for p in parts], axis=0)
    a, b = float(np.mean([p.a for p in parts])), float(np.mean([p.b for p in parts]))
    n = min(p.n for p in parts)
    return Paired(a, b, a - b, _interval(samples), bootstrap_p(samples, a - b), n, samples)
