"""DDI 2013 (BLURB's @DRUG$ TSV: `id`/`index`, `sentence`, `label`) -> mibe document."""

from __future__ import annotations

from mibe.types import Doc


def to_doc(row: dict) -> Doc | None:
    sentence = row.get("sentence")
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError("sentence: missing or empty")
    if sentence.count("@DRUG$") < 2:
        raise ValueError("sentence: expected the two target drugs masked as @DRUG$")
    label = row.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ValueError("label: missing or empty")
    doc_id = row.get("id", row.get("index"))
    if doc_id is None or str(doc_id) == "":
        raise ValueError("id: missing (and no index)")
    return Doc(
        id=str(doc_id),
        fields={"text": sentence},
        gold=label.strip(),
        invented=bool(row.get("invented", False)),
    )
