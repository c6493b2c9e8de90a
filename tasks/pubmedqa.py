"""PubMedQA original release -> mibe document.

Reads `ori_pqal.json`-style rows (`QUESTION`, `CONTEXTS`, `final_decision`, with `pmid` or the
loader's `__key__`). `LONG_ANSWER` is the abstract's conclusion and gives the answer away: it never
reaches the prompt.
"""

from __future__ import annotations

import ast

from mibe.types import Doc


def _contexts(value: object) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):  # a list saved as its repr (CSV / hub exports)
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError) as exc:
                raise ValueError(f"CONTEXTS: not a list of strings ({exc})") from exc
        else:
            return [text]
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValueError("CONTEXTS: expected a list of strings")
    return value


def to_doc(row: dict) -> Doc | None:
    question = row.get("QUESTION")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("QUESTION: missing or empty")
    if "CONTEXTS" not in row:
        raise ValueError("CONTEXTS: missing")
    gold = row.get("final_decision")
    if not isinstance(gold, str) or not gold.strip():
        raise ValueError(
            "final_decision: missing (PQA-L rows carry it; unlabeled PQA-U rows cannot be scored)"
        )
    doc_id = row.get("pmid") or row.get("__key__")
    if doc_id is None or str(doc_id) == "":
        raise ValueError("pmid: missing (and no JSON key)")
    return Doc(
        id=str(doc_id),
        fields={"context": "\n".join(_contexts(row["CONTEXTS"])), "text": question},
        gold=gold.strip(),
        invented=bool(row.get("invented", False)),
    )
