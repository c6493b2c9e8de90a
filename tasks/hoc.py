"""Hallmarks of Cancer -> mibe document (one abstract, multi-label).

Reads the release's sentence-level labels grouped by abstract: `pmid`, `sentences` and/or `text`,
and `sentence_labels` (one "0_x,1_x,...,9_x" string per sentence; the gold is the OR over them).
Label indices follow BLURB/KeBioLM's alphabetical order (`ALPHABETICAL` below). A row may instead
carry `labels` as ';'-separated hallmark names (the layout Me-LLaMA's preprocessing reads).
"""

from __future__ import annotations

from mibe.data import row_id
from mibe.types import Doc

ALPHABETICAL = (
    "activating invasion and metastasis",
    "avoiding immune destruction",
    "cellular energetics",
    "enabling replicative immortality",
    "evading growth suppressors",
    "genomic instability and mutation",
    "inducing angiogenesis",
    "resisting cell death",
    "sustaining proliferative signaling",
    "tumor promoting inflammation",
)
PUBLISHED_ORDER = (
    "sustaining proliferative signaling",
    "evading growth suppressors",
    "resisting cell death",
    "enabling replicative immortality",
    "inducing angiogenesis",
    "activating invasion and metastasis",
    "genomic instability and mutation",
    "tumor promoting inflammation",
    "cellular energetics",
    "avoiding immune destruction",
)


def _bits(label: str) -> set[int]:
    """'0_0,1_1,...,9_0' -> the set of indices marked 1."""
    found: dict[int, int] = {}
    for part in label.strip().split(","):
        index, sep, value = part.strip().partition("_")
        if not sep or not index.isdigit() or value not in ("0", "1") or int(index) > 9:
            raise ValueError(f"sentence_labels: expected '0_x,1_x,...,9_x', got {label!r}")
        found[int(index)] = int(value)
    if sorted(found) != list(range(10)):
        raise ValueError(f"sentence_labels: expected the 10 indices 0-9, got {label!r}")
    return {i for i, v in found.items() if v}


def _gold(row: dict) -> tuple[str, ...]:
    if "sentence_labels" in row:
        labels = row["sentence_labels"]
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise ValueError("sentence_labels: expected a list of strings")
        on: set[int] = set()
        for label in labels:
            on |= _bits(label)
        names = {ALPHABETICAL[i] for i in on}
    elif isinstance(row.get("labels"), str):
        names = {n.strip() for n in row["labels"].strip().split(";") if n.strip()}
        unknown = sorted(names - set(PUBLISHED_ORDER))
        if unknown:
            raise ValueError(f"labels: unknown hallmark {unknown[0]!r}")
    else:
        raise ValueError("sentence_labels: missing (and no ';'-separated labels)")
    return tuple(n for n in PUBLISHED_ORDER if n in names)


def to_doc(row: dict) -> Doc | None:
    text = row.get("text")
    if text is None:
        sentences = row.get("sentences")
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise ValueError("sentences: missing (and no text)")
        text = " ".join(sentences)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: empty")
    return Doc(
        id=row_id(row, "pmid", "id"),
        fields={"text": text},
        gold=_gold(row),
        invented=bool(row.get("invented", False)),
    )
