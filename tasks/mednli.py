"""MedNLI original release -> mibe document.

PhysioNet's `mli_{train,dev,test}_v1.jsonl` (SNLI layout): `sentence1` (premise, from a MIMIC-III
note), `sentence2` (hypothesis), `gold_label`, `pairID`, plus parse trees that never reach the
prompt. A folder holding the three files serves `test` and the few-shot `train` split by name.
The prompt's `text` is Me-LLaMA's: '[PRE] ' + sentence1 + ' [HYP] ' + sentence2 (prompts/mednli.jinja).
"""

from __future__ import annotations

from mibe.types import Doc

LABELS = ("entailment", "contradiction", "neutral")


def to_doc(row: dict) -> Doc | None:
    premise, hypothesis = row.get("sentence1"), row.get("sentence2")
    if not isinstance(premise, str) or not premise.strip():
        raise ValueError("sentence1: missing or empty (the premise)")
    if not isinstance(hypothesis, str) or not hypothesis.strip():
        raise ValueError("sentence2: missing or empty (the hypothesis)")
    label = row.get("gold_label")
    if not isinstance(label, str) or not label.strip():
        # The BioNLP 2019 shared-task file has no labels: they ship in a separate ground-truth CSV.
        raise ValueError("gold_label: missing (an unlabeled file cannot be scored)")
    if label.strip().lower() not in LABELS:
        raise ValueError(f"gold_label: {label!r} is not entailment, contradiction or neutral")
    pair_id = row.get("pairID")
    if pair_id is None or str(pair_id).strip() == "":
        raise ValueError("pairID: missing")
    return Doc(
        id=str(pair_id).strip(),
        fields={"text": f"[PRE] {premise} [HYP] {hypothesis}"},  # verbatim, as Me-LLaMA built it
        gold=label.strip().lower(),
        invented=bool(row.get("invented", False)),
    )
