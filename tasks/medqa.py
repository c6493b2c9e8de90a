"""MedQA (USMLE) original release -> mibe document.

Reads jind11/MedQA JSONL rows (`question`, `options` {letter: text}, `answer_idx`), with
MedAgentsBench's `realidx` or an `id` as the document id.
"""

from __future__ import annotations

from mibe.data import row_id
from mibe.prompts import option_list, present, question_text
from mibe.types import Doc

LETTERS = "ABCDE"


def options_of(options: object) -> list[dict]:
    if isinstance(options, list):  # bigbio-style [{"key": "A", "value": "..."}]
        try:
            options = {item["key"]: item["value"] for item in options}
        except (TypeError, KeyError) as exc:
            raise ValueError("options: expected {letter: text} or a list of {key, value}") from exc
    if not isinstance(options, dict) or not options:
        raise ValueError("options: expected a non-empty {letter: text} mapping")
    # A Parquet struct column gives 4-option rows of a 5-option table an `E: None`: not an option.
    by_letter = {str(k).strip().upper(): v for k, v in options.items() if present(v)}
    keys = sorted(by_letter)
    if not keys or keys != list(LETTERS[: len(keys)]):
        raise ValueError(f"options: letters must run A, B, ... without gaps (got {', '.join(keys)})")
    return option_list([(k, by_letter[k]) for k in keys])  # the template prints `A. text` lines


def to_doc(row: dict) -> Doc | None:
    options = options_of(row.get("options"))
    gold = row.get("answer_idx")
    letters = [o["letter"] for o in options]
    if not isinstance(gold, str) or gold.strip().upper() not in letters:
        raise ValueError(f"answer_idx: expected one of the options' letters {letters}, got {gold!r}")
    return Doc(
        id=row_id(row, "realidx", "id"),
        fields={"text": question_text(row.get("question")), "options": options},
        gold=gold.strip().upper(),
        invented=bool(row.get("invented", False)),
    )
