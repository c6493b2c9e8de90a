"""DDI 2013 (BLURB's @DRUG$ TSV: `id`/`index`, `sentence`, `label`) -> mibe document.

The release's pair ids (`DDI-DrugBank.d700.s0.p0`: document 700, its sentence 0, pair 0) name the
document each pair comes from; it is the pair's cluster (`cluster: document`): the pairs of one
sentence share its words, and the sentences of one document its drugs and their label."""

from __future__ import annotations

import re

from mibe.data import row_id
from mibe.types import Doc

_PAIR_ID = re.compile(r"(.+\.d\d+)\.s\d+\.p\d+")


def document_of(pair_id: str) -> str | None:
    """The release document a pair id names (`DDI-MedLine.d12.s3.p1` -> `DDI-MedLine.d12`)."""
    found = _PAIR_ID.fullmatch(pair_id.strip())
    return found.group(1) if found else None


def to_doc(row: dict) -> Doc | None:
    sentence = row.get("sentence")
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError("sentence: missing or empty")
    if sentence.count("@DRUG$") < 2:
        raise ValueError("sentence: expected the two target drugs masked as @DRUG$")
    label = row.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ValueError("label: missing or empty")
    doc_id = row_id(row, "id", "index")
    return Doc(
        id=doc_id,
        fields={"text": sentence},
        gold=label.strip(),
        invented=bool(row.get("invented", False)),
        cluster=document_of(doc_id),
    )
