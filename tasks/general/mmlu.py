"""MMLU (hub cais/mmlu) -> mibe documents: `question`, `subject`, `choices` (four texts) and `answer`
(the index of the right one, 0-3, or its letter). The hub rows carry no id: a row's id is its `id`
when it has one, else its place in the split (so shots and samples name the same row on every run)."""

from __future__ import annotations

from mibe.data import POSITION
from mibe.prompts import option_list, present
from mibe.types import Doc

LETTERS = "ABCD"


def to_doc(row: dict) -> Doc | None:
    choices = row.get("choices")
    if not isinstance(choices, list) or len(choices) != 4 or not all(present(c) for c in choices):
        raise ValueError("choices: expected a list of four option texts")
    answer = row.get("answer")
    gold = LETTERS[answer] if isinstance(answer, int) and 0 <= answer < 4 else str(answer).strip().upper()
    if gold not in LETTERS:
        raise ValueError(f"answer: expected an index 0-3 or a letter A-D, got {answer!r}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question: missing or empty")
    subject = str(row.get("subject") or "general knowledge").replace("_", " ")
    return Doc(
        id=str(row["id"] if "id" in row else row[POSITION]),  # mibe hands the row's place
        fields={
            "question": question.strip(),
            "subject": subject,
            "options": option_list(list(zip(LETTERS, choices, strict=True))),
        },
        gold=gold,
        invented=bool(row.get("invented", False)),
    )
