"""Few-shot variance: the same documents scored under several draws of the shots (one run per
`--seed`), summarised per metric as each draw's value, their mean and standard deviation, and a 95%
interval for the mean that accounts for both the documents and the draws.

The interval comes from a two-level bootstrap. Each resample draws the documents with replacement,
the same indices for every draw (the documents are shared, so their difficulty is one source of
variation, not one per draw), and draws the shot draws with replacement; the metric is computed on
each resampled draw's resampled documents and averaged over the resampled draws. The 2.5th and
97.5th percentiles of those averages are the interval. Why this and not a formula:

- the metric is any function of column sums (macro-F1, entity F1), not only a mean, so there is no
  closed-form variance to combine, and the same resampling as `mibe.stats` applies unchanged;
- with one draw the draw level is a constant and the interval is exactly the ordinary document
  bootstrap (same seed, same resamples, same numbers as a single run's `ci95`);
- documents and draws are crossed (every draw scores every document). No bootstrap of a crossed
  design is exactly unbiased; resampling both factors counts the document x draw interaction more
  than once, so the interval errs on the wide side (McCullagh 2000, "Resampling and exchangeable
  arrays"; Owen 2007, "The pigeonhole bootstrap"). With few draws (under about 5) the draw level
  is itself poorly estimated: the standard deviation and the number of draws should be read too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mibe.scoring import stats

Stat = stats.Stat  # column sums (..., d) -> metric (...)


@dataclass(frozen=True)
class DrawSummary:
    """One metric over shot draws."""

    values: tuple[float, ...]  # each draw's metric on all the documents, in the draws' order
    mean: float
    sd: float | None  # sample standard deviation over draws (ddof=1); None with one draw
    ci95: tuple[float, float] | None  # two-level bootstrap percentile interval; None when n_boot is 0
    n_docs: int
    n_draws: int


def _stack(x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except ValueError:  # ragged: draws with different documents or statistics
        shapes = [np.shape(m) for m in x]
        raise ValueError(
            f"draws: every draw needs the same (documents, statistics) shape, got {shapes}"
        ) from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"draws: expected (draws >= 1, documents >= 1, statistics), got shape {arr.shape}")
    return arr


def draw_resamples(n_draws: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_draws) draw indices with replacement, from their own stream of `seed`, so the
    document resamples stay those of a single run with the same seed."""
    return np.random.default_rng((seed, 1)).integers(0, n_draws, size=(n_boot, n_draws))


def summarise_draws(
    x: np.ndarray | Sequence[np.ndarray],
    metrics: Mapping[str, Stat],
    n_boot: int = 1000,
    seed: int = 1234,
    clusters: stats.Clusters | None = None,
) -> dict[str, DrawSummary]:
    """Per metric, the draws' summary. `x[d]` is draw d's per-document statistics matrix (n, k),
    rows in the same document order for every draw; `metrics` maps names to functions of its
    column sums (as `mibe.metrics` builds them); `clusters`, one per document, are resampled whole."""
    arr = _stack(x)
    n_draws, n_docs, width = arr.shape
    totals = arr.sum(axis=1)  # (draws, k)
    # One document resample for all draws at once: the draws side by side as one wide matrix.
    wide = arr.transpose(1, 0, 2).reshape(n_docs, n_draws * width)
    sums = stats.resample_sums(wide, n_boot, seed, clusters).reshape(-1, n_draws, width)
    picks = draw_resamples(n_draws, len(sums), seed)
    out = {}
    for name, stat in metrics.items():
        values = np.asarray(stat(totals), dtype=float)
        ci = None
        if len(sums):
            per_draw = np.asarray(stat(sums), dtype=float)  # (n_boot, draws)
            means = np.take_along_axis(per_draw, picks, axis=1).mean(axis=1)
            low, high = np.percentile(means, [2.5, 97.5])
            ci = (float(low), float(high))
        sd = float(np.std(values, ddof=1)) if n_draws > 1 else None
        out[name] = DrawSummary(tuple(values.tolist()), float(values.mean()), sd, ci, n_docs, n_draws)
    return out


def summary_metrics(first: Mapping[str, Any], summary: Mapping[str, DrawSummary]) -> dict[str, Any]:
    """A drawn task's `metrics` entry: per metric the mean over draws as `value`, the two-level
    interval as `ci95`, `sd`, each draw's value and their number; a metric with no summary
    (unavailable in this environment, say BERTScore offline) as the first draw reported it."""
    out: dict[str, Any] = {}
    for name, value in first.items():
        s = summary.get(name)
        if s is None:
            out[name] = value
            continue
        out[name] = {
            "value": s.mean,
            "ci95": list(s.ci95) if s.ci95 else None,
            "sd": s.sd,
            "values": list(s.values),
            "n_draws": s.n_draws,
        }
    return out
