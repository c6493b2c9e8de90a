"""Answer-order sensitivity of a letter task scored under several orderings of its options
(`--choice-permutations K`, docs/statistics.md): how often a document's chosen option survives every
reordering (consistency), and how often each position is chosen against how often it holds the gold
(position bias). Pure functions of samples rows.

A row scored under rotation k keeps `option_order`: the original index of the option shown at each
position (position i shows option (i + k) mod n). Its `prediction` is a letter; the letters name
positions in the task's choice order (A is position 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from string import ascii_uppercase
from typing import Any

LETTERS = tuple(ascii_uppercase)  # option letters name positions: A is the first shown


def chosen_option(row: Mapping[str, Any], letters: Sequence[str]) -> int | None:
    """The original index of the option a row's answer picked; None for no answer or no such option."""
    order = row.get("option_order") or []
    pred = row.get("prediction")
    if pred not in letters or letters.index(pred) >= len(order):
        return None
    return int(order[letters.index(pred)])


def in_own_order(row: Mapping[str, Any], key: str, letters: Sequence[str] = LETTERS) -> Any:
    """A row's `gold` or `prediction` as the letter its option has in the options' own order (what a
    run without --choice-permutations would call it); the value itself for other rows and answers."""
    option = chosen_option({**row, "prediction": row.get(key)}, letters) if "option_order" in row else None
    return row.get(key) if option is None else letters[option]


def consistency(
    by_permutation: Sequence[Sequence[Mapping[str, Any]]], letters: Sequence[str]
) -> float | None:
    """The share of documents whose answer picked the same option under every ordering (an answer that
    names no option never agrees). Each inner list holds one ordering's rows in one document order."""
    if not by_permutation or not by_permutation[0]:
        return None
    same = 0
    for rows in zip(*by_permutation, strict=True):
        picked = {chosen_option(r, letters) for r in rows}
        same += len(picked) == 1 and None not in picked
    return same / len(by_permutation[0])


def position_bias(rows: Sequence[Mapping[str, Any]], letters: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per position (1 = the first option shown): the share of answers that chose it (of the answers
    that chose any position) and the share of documents whose gold it held, over every ordering."""
    width = max((len(r.get("option_order") or []) for r in rows), default=0)
    chosen, gold = [0] * width, [0] * width
    answered = 0
    for r in rows:
        n = len(r.get("option_order") or [])
        pred, truth = r.get("prediction"), r.get("gold")
        if pred in letters and letters.index(pred) < n:
            chosen[letters.index(pred)] += 1
            answered += 1
        if truth in letters and letters.index(truth) < n:
            gold[letters.index(truth)] += 1
    return {
        str(i + 1): {
            "chosen": chosen[i] / answered if answered else 0.0,
            "gold": gold[i] / len(rows) if rows else 0.0,
        }
        for i in range(width)
    }
