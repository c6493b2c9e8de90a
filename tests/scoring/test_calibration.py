"""mibe.scoring.calibration: ECE, Brier and reliability bins against numpy and sklearn on constructed
cases, their seeded document-bootstrap intervals, and malformed log-likelihoods refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from mibe.scoring import calibration


def _lp(*p: float) -> list[float]:
    return [math.log(x) if x > 0 else -math.inf for x in p]


def test_ece_brier_and_reliability_of_a_hand_made_example() -> None:
    # doc  probabilities   gold  confidence  bin          right
    # 0    (.85, .15)      0     .85         (0.8, 0.9]   yes
    # 1    (.85, .15)      1     .85         (0.8, 0.9]   no
    # 2    (.35, .65)      1     .65         (0.6, 0.7]   yes
    # 3    (.25, .75)      1     .75         (0.7, 0.8]   yes
    # ECE = 2/4 |.85 - .5| + 1/4 |.65 - 1| + 1/4 |.75 - 1| = .175 + .0875 + .0625 = .325
    # Brier = (2*.15^2 + 2*.85^2 + 2*.35^2 + 2*.25^2) / 4 = (.045 + 1.445 + .245 + .125) / 4 = .465
    lps = [_lp(0.85, 0.15), _lp(0.85, 0.15), _lp(0.35, 0.65), _lp(0.25, 0.75)]
    got = calibration.calibration(lps, [0, 1, 1, 1], n_boot=200, seed=3)
    assert got["ece"]["value"] == pytest.approx(0.325, abs=1e-12)
    assert got["brier"]["value"] == pytest.approx(0.465, abs=1e-12)
    bins = {b["lo"]: b for b in got["reliability"] if b["count"]}
    assert sorted(bins) == [0.6, 0.7, 0.8]
    assert (bins[0.8]["count"], bins[0.8]["confidence"], bins[0.8]["accuracy"]) == (
        2,
        pytest.approx(0.85),
        0.5,
    )
    assert (bins[0.6]["accuracy"], bins[0.7]["accuracy"]) == (1.0, 1.0)
    assert sum(b["count"] for b in got["reliability"]) == 4 and len(got["reliability"]) == 10


@pytest.mark.parametrize(
    ("confidence", "index"),
    [(0.0, 0), (0.05, 0), (0.1, 0), (0.1000001, 1), (0.3, 2), (0.5, 4), (0.9, 8), (0.95, 9), (1.0, 9)],
)
def test_bins_are_closed_on_the_right_and_the_first_holds_zero(confidence: float, index: int) -> None:
    assert calibration.bin_index(np.array([confidence]))[0] == index


def _random_case(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(n, k))
    return logits, rng.integers(0, k, size=n)


def _softmax(z: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return softmax(z, axis=1)


def _ece_reference(p: np.ndarray, y: np.ndarray) -> float:
    # Guo et al.'s loop: bins (lo, hi], weight n_b / n.
    conf, right = p.max(1), (p.argmax(1) == y).astype(float)
    total = 0.0
    for lo, hi in zip(np.arange(10) / 10, np.arange(1, 11) / 10, strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - right[inside].mean())
    return total


@pytest.mark.parametrize(("seed", "k"), [(0, 2), (1, 3), (2, 5)])
def test_ece_and_brier_equal_direct_numpy_and_sklearn(seed: int, k: int) -> None:
    logits, y = _random_case(seed, 300, k)
    p = _softmax(logits)
    got = calibration.calibration(logits.tolist(), y.tolist(), n_boot=50, seed=seed)
    assert got["ece"]["value"] == pytest.approx(_ece_reference(p, y), abs=1e-12)
    brier = float(((p - np.eye(k)[y]) ** 2).sum(1).mean())
    assert got["brier"]["value"] == pytest.approx(brier, abs=1e-12)
    sk = brier_score_loss(y, p, labels=list(range(k)), scale_by_half=False)
    assert got["brier"]["value"] == pytest.approx(sk, abs=1e-12)
    if k == 2:  # sklearn's binary Brier is over the positive class only: half the two-class sum
        assert got["brier"]["value"] == pytest.approx(2 * brier_score_loss(y, p[:, 1]), abs=1e-12)


def test_calibration_intervals_are_the_seeded_document_bootstrap() -> None:
    logits, y = _random_case(7, 80, 4)
    p = _softmax(logits)
    got = calibration.calibration(logits.tolist(), y.tolist(), n_boot=300, seed=11)
    # One chunk of resamples at this size: the rows numpy's generator draws for the seed.
    rows = np.random.default_rng(11).integers(0, 80, size=(300, 80))
    eces = [_ece_reference(p[r], y[r]) for r in rows]
    briers = [((p[r] - np.eye(4)[y[r]]) ** 2).sum(1).mean() for r in rows]
    assert got["ece"]["ci95"] == pytest.approx(np.percentile(eces, [2.5, 97.5]).tolist(), abs=1e-12)
    assert got["brier"]["ci95"] == pytest.approx(np.percentile(briers, [2.5, 97.5]).tolist(), abs=1e-12)
    assert got["brier"]["ci95"][0] <= got["brier"]["value"] <= got["brier"]["ci95"][1]
    assert got == calibration.calibration(logits.tolist(), y.tolist(), n_boot=300, seed=11)


def test_probabilities_survive_huge_and_minus_infinite_log_likelihoods() -> None:
    assert calibration.probabilities([-1e4, -1e4 - math.log(3)]).tolist() == pytest.approx([0.75, 0.25])
    assert calibration.probabilities([0.0, -math.inf]).tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    ("lps", "gold", "match"),
    [
        ([[0.0, -1.0]], [2], "gold index 2"),
        ([[0.0]], [0], ">= 2"),
        ([[-math.inf, -math.inf]], [0], "finite"),
        ([[0.0, float("nan")]], [0], "finite"),
        ([[0.0, -1.0]], [0, 1], "2 golds"),
    ],
)
def test_calibration_refuses_malformed_log_likelihoods(lps: list, gold: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        calibration.calibration(lps, gold)


def test_calibration_from_samples_rows_maps_gold_labels_to_choice_order() -> None:
    rows = [
        {"id": "a", "logprobs": _lp(0.85, 0.15), "gold": "yes"},
        {"id": "b", "logprobs": _lp(0.85, 0.15), "gold": "no"},
        {"id": "c", "logprobs": _lp(0.35, 0.65), "gold": "no"},
        {"id": "d", "logprobs": _lp(0.25, 0.75), "gold": "no"},
    ]
    got = calibration.from_samples(rows, ["yes", "no"], n_boot=50, seed=1)
    assert got == calibration.calibration([r["logprobs"] for r in rows], [0, 1, 1, 1], n_boot=50, seed=1)
    assert got is not None and got["ece"]["value"] == pytest.approx(0.325)
    assert calibration.from_samples([{"id": "a", "raw_output": "yes", "gold": "yes"}], ["yes", "no"]) is None
    with pytest.raises(ValueError, match="maybe"):
        calibration.from_samples([{"logprobs": [0.0, -1.0], "gold": "maybe"}], ["yes", "no"])
