"""BioNLI release (JSON / JSONL / CSV rows) -> mibe document.

BioNLI's files are shared from Google Drive (the test set on request), so no public copy fixes
their column names. The hook reads the names the dataset's paper and its known exports use:
premise = `premise` (or `supp_set`: the abstract's supporting sentences), hypothesis = `hypothesis`
(or `conclusion`), label = `label` (or `label_cat`, `gold_label`). `text` is built as MedNLI's:
'[PRE] ' + premise + ' [HYP] ' + hypothesis.

Labels (`LABEL_MAP`, checked by tests/tasks/test_formats.py): BioNLI pairs each abstract with its own
conclusion (a positive example: entailment) and with perturbed conclusions (negative examples:
contradiction). Integers follow that polarity: 1 = entailment, 0 = contradiction; so do
true/false and pos/neg. To verify a file uses this convention, run `mibe data check --data
bionli=PATH`: BioNLI's test set holds several perturbations per original conclusion, so
contradiction must be the larger class; if entailment is, the file encodes 0 = entailment.
"""

from __future__ import annotations

import hashlib

from mibe.types import Doc

LABEL_MAP = {
    "entailment": "entailment",
    "entail": "entailment",
    "entailed": "entailment",
    "consistent": "entailment",
    "positive": "entailment",
    "pos": "entailment",
    "true": "entailment",
    "1": "entailment",
    "contradiction": "contradiction",
    "contradict": "contradiction",
    "inconsistent": "contradiction",
    "negative": "contradiction",
    "neg": "contradiction",
    "false": "contradiction",
    "0": "contradiction",
}
PREMISE = ("premise", "supp_set")
HYPOTHESIS = ("hypothesis", "conclusion")
LABEL = ("label", "label_cat", "gold_label")
ID = ("id", "pairID", "uid")


def _first(row: dict, names: tuple[str, ...], what: str) -> tuple[str, object]:
    for name in names:
        if name in row and row[name] is not None and str(row[name]).strip() != "":
            return name, row[name]
    raise ValueError(f"{names[0]}: missing or empty ({what}; also looked for {', '.join(names[1:])})")


def label_of(value: object) -> str:
    """The task's label for one release label; ValueError for anything else."""
    if isinstance(value, bool):
        key = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        key = str(int(value))  # CSV/parquet exports turn 0/1 into 0.0/1.0
    else:
        key = str(value).strip().lower()
        key = key[0] if key in ("0.0", "1.0") else key
    if key not in LABEL_MAP:
        raise ValueError(f"label: {value!r} is not entailment/contradiction, 1/0, true/false or pos/neg")
    return LABEL_MAP[key]


def to_doc(row: dict) -> Doc | None:
    _, premise = _first(row, PREMISE, "the premise")
    _, hypothesis = _first(row, HYPOTHESIS, "the hypothesis")
    if isinstance(premise, list):  # supporting sentences kept as a list
        premise = " ".join(str(s).strip() for s in premise)
    _, label = _first(row, LABEL, "entailment or contradiction")
    doc_id = next((str(row[k]).strip() for k in ID if row.get(k) is not None and str(row[k]).strip()), None)
    if doc_id is None:  # no id column (one pmid has many pairs): the pair's own text names it
        pair = f"{premise}\x00{hypothesis}".encode()
        doc_id = "bionli-" + hashlib.sha256(pair).hexdigest()[:12]
    return Doc(
        id=doc_id,
        fields={"text": f"[PRE] {premise} [HYP] {hypothesis}"},
        gold=label_of(label),
        invented=bool(row.get("invented", False)),
        cluster=str(premise),  # `cluster: premise`: one abstract's conclusion and its perturbations
    )
