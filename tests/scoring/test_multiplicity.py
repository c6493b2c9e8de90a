"""mibe.scoring.multiplicity: Holm's adjustment against statsmodels, the best row and its tie group."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from mibe.scoring import multiplicity


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
