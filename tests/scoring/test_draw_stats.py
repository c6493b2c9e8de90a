"""mibe.scoring.draw_stats: statistics over few-shot draws (mean and sd over draws, the two-level
bootstrap) against numpy, sklearn and a plain loop on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from mibe.scoring import draw_stats, kinds, stats


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
