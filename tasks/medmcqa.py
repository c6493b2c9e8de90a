"""MedMCQA original release -> mibe document.

Two layouts are read:
* the official release (github.com/medmcqa/medmcqa `dev.json`): `opa`..`opd` and `cop`, where `cop`
  is 1-indexed (1..4 = A..D); a letter (a-d) is accepted too. Any other `cop` is an error: in
  particular the Hugging Face copy `openlifescienceai/medmcqa` stores `cop` 0-indexed (0..3), which
  cannot be told apart from the official 1..4 row by row, so such exports must be converted first
  (cop + 1) or rewritten with `answer_idx`.
* MedAgentsBench's copy: `options` {A..D} and `answer_idx`.
The id is `realidx` (MedAgentsBench) or `id` (official UUID).
"""

from __future__ import annotations

from mibe.data import row_id
from mibe.prompts import option_list, present, question_text
from mibe.types import Doc

LETTERS = "ABCD"


def _cop_letter(cop: object) -> str:
    if isinstance(cop, str) and cop.strip().upper() in tuple(LETTERS):
        return cop.strip().upper()
    if isinstance(cop, str) and cop.strip().isdigit():
        cop = int(cop.strip())
    if isinstance(cop, int) and not isinstance(cop, bool) and 1 <= cop <= 4:
        return LETTERS[cop - 1]
    raise ValueError(
        f"cop: expected 1-4 as in the official release (got {cop!r}); "
        "the Hugging Face copy is 0-indexed: add 1 to its cop first"
    )


def to_doc(row: dict) -> Doc | None:
    if "options" in row:
        options = row["options"]
        if not isinstance(options, dict) or sorted(options) != list(LETTERS):
            raise ValueError("options: expected a mapping with the letters A, B, C, D")
        pairs = [(k, options[k]) for k in LETTERS]
        gold = row.get("answer_idx")
        if not isinstance(gold, str) or gold.strip().upper() not in tuple(LETTERS):
            raise ValueError(f"answer_idx: expected a letter A-D, got {gold!r}")
        gold = gold.strip().upper()
    elif all(f"op{c}" in row for c in "abcd"):
        pairs = [(letter, row[f"op{c}"]) for letter, c in zip(LETTERS, "abcd", strict=True)]
        if "cop" not in row:
            raise ValueError("cop: missing")
        gold = _cop_letter(row["cop"])
    else:
        raise ValueError("options: missing (expected options + answer_idx, or opa..opd + cop)")
    if not any(k == gold and present(v) for k, v in pairs):
        raise ValueError(f"option {gold}: the answer's option is empty")
    return Doc(
        id=row_id(row, "realidx", "id"),
        fields={
            "text": question_text(row.get("question")),
            "options": option_list(pairs),  # the template prints `A. text` lines
        },
        gold=gold,
        invented=bool(row.get("invented", False)),
    )
