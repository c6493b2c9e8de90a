"""MTSamples (Kaggle `mtsamples.csv`: `transcription`, `medical_specialty`, ...) -> mibe document.

Rows with an empty transcription (about 30 in the Kaggle file) are skipped. The specialty loses
the leading space the CSV gives it. The id is the CSV's row index (`row_index`, or pandas' unnamed
first column); failing that, the sample name. Rows of one transcription are one cluster.
"""

from __future__ import annotations

import math

from mibe.types import Doc

_ID_COLUMNS = ("row_index", "", "Unnamed: 0", "__index__", "id")


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):  # pandas' empty cell
        return True
    return isinstance(value, str) and not value.strip()


def to_doc(row: dict) -> Doc | None:
    transcription = row.get("transcription")
    if _blank(transcription):
        return None
    if not isinstance(transcription, str):
        raise ValueError("transcription: expected text")
    specialty = row.get("medical_specialty")
    if _blank(specialty) or not isinstance(specialty, str):
        raise ValueError("medical_specialty: missing or empty")
    doc_id = next((row[c] for c in _ID_COLUMNS if c in row and not _blank(row[c])), None)
    if doc_id is None:
        name = row.get("sample_name")
        if _blank(name):
            raise ValueError("row_index: missing (and no sample_name)")
        doc_id = f"{str(name).strip()}"
    if isinstance(doc_id, float) and doc_id.is_integer():
        doc_id = int(doc_id)
    return Doc(
        id=str(doc_id),
        fields={"text": transcription},
        gold=specialty.strip(),
        invented=bool(row.get("invented", False)),
        # `cluster: transcription`: mtsamples.com lists one sample under several specialties, so the
        # same transcription can be two rows with two golds (16 pairs in the public sample of 300).
        cluster=" ".join(transcription.split()),
    )
