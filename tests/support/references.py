"""Reference statistics written out here, independently of mibe, for tests in more than one module."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest


def reference_calibration(rows: list[dict], choices: list[str]) -> tuple[float, float]:
    """ECE (10 right-closed equal bins) and multi-class Brier, written out here by hand."""
    bins: dict[int, list[tuple[float, float]]] = {}
    brier = 0.0
    for row in rows:
        z = np.array(row["logprobs"])
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        top = int(np.argmax(p))
        b = max(0, math.ceil(round(p[top] * 10, 12)) - 1)
        bins.setdefault(b, []).append((p[top], float(choices[top] == row["gold"])))
        brier += sum((p[k] - (choices[k] == row["gold"])) ** 2 for k in range(len(choices)))
    ece = sum(abs(sum(c for c, _ in v) - sum(a for _, a in v)) for v in bins.values()) / len(rows)
    return ece, brier / len(rows)


def mcnemar_p(a: list[bool], b: list[bool]) -> float:
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    return 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
