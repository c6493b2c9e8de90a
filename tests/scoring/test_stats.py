"""mibe.scoring.stats against scipy and statsmodels: McNemar exact, the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, bootstrap, ttest_rel
from sklearn.metrics import f1_score

from mibe.scoring import kinds, stats


def pairs(a_only: int, b_only: int, both: int = 7, neither: int = 4) -> tuple[list[bool], list[bool]]:
    a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return a, b


@pytest.mark.parametrize(
    ("a_only", "b_only"),
    [
        (0, 0),
        (0, 1),
        (1, 0),
        (0, 5),
        (5, 0),
        (3, 7),
        (7, 3),
        (6, 6),
        (20, 5),
        (12, 13),
        (100, 130),
        (1000, 1100),
    ],
)
def test_mcnemar_exact_equals_scipy_and_statsmodels(a_only: int, b_only: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = pairs(a_only, b_only)
    got = stats.mcnemar_exact(a, b)
    assert (got.a_only, got.b_only) == (a_only, b_only)
    n = a_only + b_only
    expected = binomtest(a_only, n, 0.5).pvalue if n else 1.0
    assert got.p == pytest.approx(expected, rel=1e-9, abs=1e-15)
    table = [[7, a_only], [b_only, 4]]  # rows: A right/wrong; columns: B right/wrong
    assert got.p == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(
    ("k", "n"), [(0, 0), (0, 1), (1, 1), (2, 4), (0, 10), (3, 10), (9, 10), (40, 100), (1, 60)]
)
def test_binomial_two_sided_equals_scipy(k: int, n: int) -> None:
    expected = binomtest(k, n, 0.5).pvalue if n else 1.0
    assert stats.binom_two_sided(k, n) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_rejects_unpaired_lists() -> None:
    with pytest.raises(ValueError, match="3 and 2"):
        stats.mcnemar_exact([True, False, True], [True, False])


def test_identical_systems_differ_by_nothing() -> None:
    scores = [1.0, 0.0, 1.0, 1.0, 0.0] * 10
    got = stats.paired_means(scores, scores, n_boot=500, seed=3)
    assert got.diff == 0.0 and got.ci95 == (0.0, 0.0) and got.p == 1.0 and got.n == 50


def test_a_system_right_everywhere_the_other_wrong_gets_the_smallest_p() -> None:
    got = stats.paired_means([1.0] * 40, [0.0] * 40, n_boot=999, seed=1)
    assert got.diff == 1.0 and got.ci95 == (1.0, 1.0)
    assert got.p == pytest.approx(1 / 1000)  # never 0 from a finite number of resamples


def test_paired_bootstrap_interval_and_p_agree_with_scipy() -> None:
    rng = np.random.default_rng(0)
    n = 400
    a = (rng.random(n) < 0.62).astype(float)
    b = np.where(rng.random(n) < 0.8, a, 1 - a)  # paired: B mostly agrees with A
    b[:12] = 0.0  # and is a little worse
    got = stats.paired_means(a, b, n_boot=8000, seed=11)
    assert got.diff == pytest.approx(a.mean() - b.mean())
    ref = bootstrap(
        (a, b),
        lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=8000,
        method="percentile",
        random_state=5,
    ).confidence_interval
    assert got.ci95[0] == pytest.approx(ref.low, abs=0.01)
    assert got.ci95[1] == pytest.approx(ref.high, abs=0.01)
    # At n=400 the bootstrap null distribution is the paired t-test's, near enough.
    assert got.p == pytest.approx(ttest_rel(a, b).pvalue, abs=0.02)
    assert 0.001 < got.p < 0.5  # a case that is neither trivially significant nor trivially not


def test_macro_f1_resamples_equal_sklearn_on_the_same_documents() -> None:
    rng = np.random.default_rng(2)
    labels = ["yes", "no", "maybe"]
    n, n_boot, seed = 60, 80, 9
    golds = list(rng.choice(labels, n))
    pred_a = [g if rng.random() < 0.7 else str(rng.choice([*labels, "missing"])) for g in golds]
    pred_b = [g if rng.random() < 0.5 else str(rng.choice([*labels, "missing"])) for g in golds]
    choice = kinds.get("choice")
    x_a, stat = choice.stats(golds, pred_a, labels, "strict", wanted=choice.metrics)[:2]
    x_b, _ = choice.stats(golds, pred_b, labels, "strict", wanted=choice.metrics)[:2]
    got = stats.paired_bootstrap(x_a, x_b, stat["macro_f1"], n_boot, seed)

    def macro(g: list, p: list) -> float:
        return f1_score(g, p, average="macro", labels=sorted(set(g)), zero_division=0)

    assert got.diff == pytest.approx(macro(golds, pred_a) - macro(golds, pred_b), abs=1e-12)
    expected = []
    for idx in np.concatenate(list(stats.resample_indices(n, n_boot, seed))):
        g = [golds[i] for i in idx]
        expected.append(macro(g, [pred_a[i] for i in idx]) - macro(g, [pred_b[i] for i in idx]))
    assert got.samples == pytest.approx(np.array(expected), abs=1e-12)


def test_bootstrap_p_counts_the_shifted_distribution() -> None:
    samples = np.array([0.1, 0.2, 0.3, 0.4, -0.1])
    # Centred on 0 under the null: |s - 0.2| >= 0.2 for 0.4 and -0.1 (and 0.0 counts for nothing).
    assert stats.bootstrap_p(samples, 0.2) == pytest.approx((1 + 2) / 6)
    assert stats.bootstrap_p(samples, 0.0) == 1.0
    assert stats.bootstrap_p(np.array([]), 0.3) == 1.0


def test_mean_of_tasks_averages_draw_by_draw() -> None:
    one = stats.paired_means([1.0] * 30, [0.0] * 30, n_boot=300, seed=1)
    two = stats.paired_means([0.0, 1.0] * 15, [0.0, 1.0] * 15, n_boot=300, seed=2)
    joint = stats.mean_of([one, two])
    assert (
        joint.diff == pytest.approx(0.5) and joint.a == pytest.approx(0.75) and joint.b == pytest.approx(0.25)
    )
    assert joint.samples == pytest.approx((one.samples + two.samples) / 2)
    with pytest.raises(ValueError):
        stats.mean_of([one, stats.paired_means([1.0], [0.0], n_boot=10, seed=1)])


def test_resampling_is_seeded_and_chunked_the_same_way() -> None:
    x = np.arange(12, dtype=float).reshape(6, 2)
    first, again = stats.resample_sums(x, 50, seed=4), stats.resample_sums(x, 50, seed=4)
    assert (first == again).all() and first.shape == (50, 2)
    assert not (first == stats.resample_sums(x, 50, seed=5)).all()
    drawn = np.concatenate(list(stats.resample_indices(6, 50, 4)))
    assert first == pytest.approx(np.stack([x[i].sum(axis=0) for i in drawn]))
