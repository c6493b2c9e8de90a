"""Many tests at once: Holm's step-down adjusted p-values, and leaderboard tie groups built on them.

A comparison of two runs tests every task x metric, and a leaderboard column tests every row against
its best row. Reading each p-value alone at 0.05 would call about one difference in twenty
"significant" by chance; Holm's adjustment controls the chance of even one false call in the family
(the family-wise error rate) at 0.05, under any dependence between the tests, and is never less
powerful than Bonferroni.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

ALPHA = 0.05
K = TypeVar("K", bound=Hashable)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the input's order.

    Sorted ascending, the i-th smallest of m (from 0) is multiplied by m - i, the running maximum is
    taken so the adjustment keeps the order, and values above 1 are capped at 1. The arithmetic is
    the same as statsmodels' `multipletests(p, method="holm")[1]`, so the numbers agree to the bit;
    tied p-values get the same adjusted value whatever order the sort leaves them in.
    """
    values = np.asarray(p, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"holm: expected a flat list of p-values, got shape {values.shape}")
    if np.any(np.isnan(values)) or np.any((values < 0) | (values > 1)):
        raise ValueError(f"holm: p-values must lie in [0, 1], got {values.tolist()}")
    order = np.argsort(values)
    m = len(values)
    adjusted = np.maximum.accumulate(values[order] * np.arange(m, 0, -1))
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def holm_by_key(p: Mapping[K, float | None]) -> dict[K, float]:
    """Holm over the keys that have a p-value (None: not tested, so not in the family)."""
    keys = [k for k, v in p.items() if v is not None]
    return dict(zip(keys, holm([float(p[k]) for k in keys]).tolist(), strict=True))  # type: ignore[arg-type]


def best_row(values: Mapping[K, float], lower_is_better: bool = False) -> K:
    """The row with the best value; on an exact tie, the first in the mapping's order."""
    finite = [(k, v) for k, v in values.items() if v is not None and not math.isnan(v)]
    if not finite:
        raise ValueError("best_row: no row has a value")
    sign = -1.0 if lower_is_better else 1.0
    return max(finite, key=lambda kv: sign * kv[1])[0]  # max keeps the first of equal keys


@dataclass(frozen=True)
class TieGroup(Generic[K]):
    """The rows a column can't tell apart from its best row."""

    best: K
    members: frozenset[K]  # the best row and every row whose Holm-adjusted p is >= alpha
    adjusted: dict[K, float]  # each tested row's Holm-adjusted p against the best row
    untested: frozenset[K]  # rows with no p-value (no samples, too few documents): in no group


def tie_group(
    values: Mapping[K, float], best: K, p_vs_best: Mapping[K, float | None], alpha: float = ALPHA
) -> TieGroup[K]:
    """The best row plus every row not significantly behind it after Holm over the column's family.

    `p_vs_best` holds each other row's raw two-sided p-value against `best` (the test `mibe compare`
    reports: McNemar's exact test for right/wrong metrics, else the paired bootstrap). The family is
    those comparisons; a row whose p is None was not tested and is reported as `untested`, neither
    tied nor behind, since nothing was measured either way.
    """
    if best not in values:
        raise ValueError(f"tie_group: the best row {best!r} has no value in the column")
    stray = [k for k in p_vs_best if k not in values or k == best]
    if stray:
        raise ValueError(f"tie_group: p-values for rows that are not other rows of the column: {stray}")
    adjusted = holm_by_key(p_vs_best)
    members = {best} | {k for k, q in adjusted.items() if q >= alpha}
    untested = {k for k in values if k != best and k not in adjusted}
    return TieGroup(best, frozenset(members), adjusted, frozenset(untested))
