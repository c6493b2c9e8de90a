"""AI2 ARC (hub allenai/ai2_arc) -> mibe document: `id`, `question`, `choices` {"text": [...],
"label": [...]} and `answerKey`. A few rows label their options 1-4 instead of A-D: options are
lettered by position, and the gold follows its option."""

from __future__ import annotations

from mibe.prompts import option_list, present
from mibe.types import Doc

LETTERS = "ABCDE"


def to_doc(row: dict) -> Doc | None:
    choices = row.get("choices")
    texts = choices.get("text") if isinstance(choices, dict) else None
    labels = choices.get("label") if isinstance(choices, dict) else None
    if not isinstance(texts, list) or not isinstance(labels, list) or len(texts) != len(labels):
        raise ValueError("choices: expected {text: [...], label: [...]} of equal length")
    if not 2 <= len(texts) <= 5 or not all(present(t) for t in texts):
        raise ValueError(f"choices: expected 2 to 5 option texts, got {len(texts)}")
    key = str(row.get("answerKey", "")).strip()
    if key not in [str(label).strip() for label in labels]:
        raise ValueError(f"answerKey: {key!r} is not one of the option labels {labels}")
    position = [str(label).strip() for label in labels].index(key)
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question: missing or empty")
    if row.get("id") in (None, ""):
        raise ValueError("id: missing")
    return Doc(
        id=str(row["id"]),
        fields={
            "question": question.strip(),
            "options": option_list(list(zip(LETTERS, texts, strict=False))),
        },
        gold=LETTERS[position],
        invented=bool(row.get("invented", False)),
    )
