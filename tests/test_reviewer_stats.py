"""The reviewer-facing statistics (shot draws, calibration, Holm, tie groups) against references
computed here with numpy, scipy, sklearn and statsmodels on constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, f1_score
from statsmodels.stats.multitest import multipletests

from mibe.scoring import calibration, draw_stats, kinds, multiplicity, stats

# ---------------------------------------------------------------- Holm


@pytest.mark.parametrize(
    "p",
    [
        [0.01, 0.04, 0.03, 0.005],  # unsorted
        [0.02, 0.02, 0.02],  # all tied
        [0.5, 0.01, 0.5, 0.01],  # two tie pairs, interleaved
        [0.3],  # a family of one: unchanged
        [0.6, 0.7, 0.9, 1.0],  # products above 1: capped
        [0.0, 0.0, 0.5],
        [1.0, 1.0],
        [0.049, 0.0125, 0.0126, 0.0124],  # the step-down order matters
    ],
)
def test_holm_equals_statsmodels(p: list[float]) -> None:
    assert np.array_equal(multiplicity.holm(p), multipletests(p, method="holm")[1])


@pytest.mark.parametrize("seed", range(6))
def test_holm_equals_statsmodels_on_random_families_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.round(rng.uniform(0, 0.2, size=rng.integers(2, 30)), 2)  # rounding makes ties
    assert len(set(p.tolist())) < len(p) or seed > 3
    assert np.array_equal(multiplicity.holm(p), multipletests(p, method="holm")[1])


def test_holm_of_an_empty_family_is_empty() -> None:
    assert multiplicity.holm([]).shape == (0,)


@pytest.mark.parametrize("p", [[0.1, float("nan")], [1.2], [-0.01, 0.5], [[0.1, 0.2]]])
def test_holm_refuses_what_is_no_p_value(p: list) -> None:
    with pytest.raises(ValueError, match="holm"):
        multiplicity.holm(p)


def test_holm_by_key_leaves_untested_keys_out_of_the_family() -> None:
    got = multiplicity.holm_by_key({"a": 0.01, "b": None, "c": 0.04})
    assert got == dict(zip(["a", "c"], multipletests([0.01, 0.04], method="holm")[1].tolist(), strict=True))


# ---------------------------------------------------------------- tie groups


@pytest.mark.parametrize(
    ("values", "lower", "best"),
    [
        ({"A": 0.5, "B": 0.7, "C": 0.7}, False, "B"),  # an exact tie: the first
        ({"A": 0.5, "B": 0.7, "C": 0.1}, True, "C"),  # missing rate: lower is better
        ({"A": float("nan"), "B": 0.2}, False, "B"),
    ],
)
def test_best_row(values: dict[str, float], lower: bool, best: str) -> None:
    assert multiplicity.best_row(values, lower_is_better=lower) == best


@pytest.mark.parametrize(
    ("p", "members"),
    [
        # Holm: C 0.001*3 = .003, D .02*2 = .04, B .4 -> only B is not behind A.
        ({"B": 0.40, "C": 0.001, "D": 0.02}, {"A", "B"}),
        # Raw p .03 and .04 are both < .05, but Holm gives .06 and .06: neither is shown behind A.
        ({"B": 0.03, "C": 0.04, "D": None}, {"A", "B", "C"}),
        ({"B": 0.001, "C": 0.002, "D": 0.003}, {"A"}),
    ],
)
def test_tie_group_is_the_best_and_rows_not_behind_it_after_holm(
    p: dict[str, float | None], members: set[str]
) -> None:
    values = {"A": 0.80, "B": 0.79, "C": 0.70, "D": 0.60, "E": 0.30}
    group = multiplicity.tie_group(values, "A", p)
    tested = [k for k, v in p.items() if v is not None]
    reference = multipletests([p[k] for k in tested], method="holm")[1]
    assert group.adjusted == dict(zip(tested, reference.tolist(), strict=True))
    assert {"A"} | {k for k, q in zip(tested, reference, strict=True) if q >= 0.05} == members
    assert group.members == members
    assert group.untested == {k for k in values if k != "A" and p.get(k) is None}


@pytest.mark.parametrize(("best", "p"), [("Z", {"B": 0.1}), ("A", {"A": 0.1}), ("A", {"Q": 0.1})])
def test_tie_group_refuses_rows_outside_the_column(best: str, p: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="tie_group"):
        multiplicity.tie_group({"A": 0.8, "B": 0.7}, best, p)


# ---------------------------------------------------------------- calibration


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


# ---------------------------------------------------------------- shot draws


def _accuracy(n: int) -> stats.Stat:
    return lambda s: s[..., 0] / n


def _draws(seed: int, n: int, accuracies: list[float]) -> np.ndarray:
    """Right/wrong per (draw, document): shared document difficulty plus a per-draw shift."""
    rng = np.random.default_rng(seed)
    easy = rng.uniform(size=n)
    return np.array([(easy < a).astype(float).reshape(n, 1) for a in accuracies])


def test_mean_and_sd_over_draws_equal_numpy() -> None:
    x = _draws(0, 120, [0.55, 0.62, 0.58, 0.7])
    got = draw_stats.summarise_draws(x, {"accuracy": _accuracy(120)}, n_boot=200, seed=5)["accuracy"]
    per_draw = x[:, :, 0].mean(axis=1)
    assert got.values == tuple(per_draw.tolist())
    assert got.mean == pytest.approx(np.mean(per_draw), abs=1e-15)
    assert got.sd == pytest.approx(np.std(per_draw, ddof=1), abs=1e-15)
    assert (got.n_docs, got.n_draws) == (120, 4)


def test_a_metric_of_column_sums_is_per_draw_sklearn_f1() -> None:
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 2, size=90)
    preds = [np.where(rng.uniform(size=90) < q, gold, 1 - gold) for q in (0.6, 0.7, 0.8)]
    x = [np.column_stack([g * p, p, g]).astype(float) for g, p in ((gold, p) for p in preds)]
    f1 = {"f1": lambda s: 2 * s[..., 0] / (s[..., 1] + s[..., 2])}  # tp, predicted, gold counts
    got = draw_stats.summarise_draws(x, f1, n_boot=100, seed=1)["f1"]
    assert got.values == pytest.approx([f1_score(gold, p) for p in preds], abs=1e-12)


def test_one_draw_is_the_ordinary_document_bootstrap_of_a_run() -> None:
    rng = np.random.default_rng(9)
    golds = [str(v) for v in rng.choice(["a", "b", "c"], size=60)]
    preds = [g if rng.uniform() < 0.6 else "b" for g in golds]
    x = np.array([[float(g == p)] for g, p in zip(golds, preds, strict=True)])
    got = draw_stats.summarise_draws([x], {"accuracy": _accuracy(60)}, n_boot=400, seed=21)["accuracy"]
    run = kinds.score_task("choice", ["accuracy"], golds, preds, ["a", "b", "c"], "strict", 21, 400)
    assert list(got.ci95) == pytest.approx(run["metrics"]["accuracy"]["ci95"], abs=1e-15)
    assert got.sd is None and got.values == (run["metrics"]["accuracy"]["value"],)


def test_two_level_bootstrap_equals_a_plain_loop() -> None:
    x = _draws(2, 40, [0.4, 0.6, 0.5])
    got = draw_stats.summarise_draws(x, {"accuracy": _accuracy(40)}, n_boot=150, seed=8)["accuracy"]
    docs = np.random.default_rng(8).integers(0, 40, size=(150, 40))  # one chunk: the run's resamples
    picks = np.random.default_rng((8, 1)).integers(0, 3, size=(150, 3))
    means = [np.mean([x[d][r].mean() for d in pick]) for r, pick in zip(docs, picks, strict=True)]
    assert list(got.ci95) == pytest.approx(np.percentile(means, [2.5, 97.5]).tolist(), abs=1e-12)


def test_the_interval_covers_the_mean_and_widens_when_draws_disagree() -> None:
    n = 200
    agree = draw_stats.summarise_draws(_draws(3, n, [0.60, 0.61, 0.59, 0.60, 0.60]), {"a": _accuracy(n)})["a"]
    differ = draw_stats.summarise_draws(_draws(3, n, [0.40, 0.75, 0.50, 0.80, 0.55]), {"a": _accuracy(n)})[
        "a"
    ]
    for s in (agree, differ):
        assert s.ci95 is not None and s.ci95[0] <= s.mean <= s.ci95[1]
    assert differ.sd > 5 * agree.sd  # type: ignore[operator]
    assert differ.ci95[1] - differ.ci95[0] > 1.5 * (agree.ci95[1] - agree.ci95[0])  # type: ignore[index]


@pytest.mark.parametrize(
    "x", [[np.zeros((3, 1)), np.zeros((4, 1))], np.zeros((0, 3, 1)), np.zeros((2, 0, 1)), np.zeros((3, 1))]
)
def test_draws_refuse_mismatched_shapes(x: object) -> None:
    with pytest.raises(ValueError, match="draws"):
        draw_stats.summarise_draws(x, {"a": _accuracy(3)})  # type: ignore[arg-type]


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
