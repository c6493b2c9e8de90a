"""BoolQ (hub google/boolq) -> mibe documents: `question`, `passage` and `answer` (true or false, read
as yes or no). The hub rows carry no id: a row's id is its `id` when it has one, else its place in
the split."""

from __future__ import annotations

from mibe.data import POSITION
from mibe.types import Doc


def to_doc(row: dict) -> Doc | None:
    answer = row.get("answer")
    if not isinstance(answer, bool):
        raise ValueError(f"answer: expected true or false, got {answer!r}")
    question, passage = row.get("question"), row.get("passage")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question: missing or empty")
    if not isinstance(passage, str) or not passage.strip():
        raise ValueError("passage: missing or empty")
    return Doc(
        id=str(row["id"] if "id" in row else row[POSITION]),  # mibe hands the row's place
        fields={"question": question.strip().rstrip("?"), "passage": passage.strip()},
        gold="yes" if answer else "no",
        invented=bool(row.get("invented", False)),
    )
