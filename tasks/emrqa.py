"""emrQA release (`data.json`) -> mibe documents, one per question.

emrQA's generator writes `{"data": [{"title": <i2b2 subset>, "paragraphs": [{"note_id", "context",
"qas": [{"question": [paraphrases], "id": [[template, logical form]], "answers": [{"text",
"answer_start": [line, token], "evidence", "evidence_start", "answer_entity_type"}]}]}]}]}`, where
`context` is the note as a list of lines (a string is taken as is) and a "complex" answer's `text`,
`evidence` and `evidence_start` are lists. `read` takes such a file, or a folder of them: files
named after a split (`test.json`, `emrqa_test.json`, ...) serve that split, otherwise every file
is the evaluation set. SQuAD-shaped copies (`context` a string, `answer_start` a character
offset, `question` a string) read the same way.

One document per question: `text` = the note's lines joined with new lines, `question` = its
first paraphrase as written. The gold is the first answer's `text` (emrQA's answer span, often
lower-cased from the i2b2 annotation), or its `evidence` line when `text` is empty, located in the
note (case and spacing ignored) and returned as the note writes it; the first piece of a complex
answer stands for it. A question whose answer cannot be found in the note is unusable and counted.
Other answers of the same question are not scored.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from mibe.types import Doc

SPLITS = ("test", "train", "dev", "val", "valid", "validation")
# A release without split-named files is split by note (`by_note`): change the seed or the share and
# every emrQA number changes (its data fingerprint follows the rows, so old columns stay apart).
NOTE_SPLIT_SEED = "mibe-emrqa-notes-1"
TEST_SHARE = 0.2


def _load(file: Path) -> object:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _is_emrqa(raw: object) -> bool:
    return (
        isinstance(raw, dict)
        and isinstance(raw.get("data"), list)
        and all(isinstance(t, dict) and "paragraphs" in t for t in raw["data"])
    )


def _questions(raw: dict, file: Path, root: Path) -> list[dict]:
    rows: list[dict] = []
    where = str(file.relative_to(root)) if file != root else file.name
    for t, subset in enumerate(raw["data"]):
        title = str(subset.get("title") or t)
        paragraphs = subset.get("paragraphs")
        if not isinstance(paragraphs, list) or not all(isinstance(p, dict) for p in paragraphs):
            rows.append(
                {"__error__": "paragraphs: expected a list of notes", "__where__": f"{where}: {title}"}
            )
            continue
        notes = [str(p.get("note_id") or "") for p in paragraphs]
        named = all(notes) and len(set(notes)) == len(notes)  # else number the paragraphs
        for p, paragraph in enumerate(paragraphs):
            note = notes[p] if named else str(p)
            here = f"{where}: {title}, note {notes[p] or p}"
            qas = paragraph.get("qas")
            if not isinstance(qas, list):
                rows.append({"__error__": "qas: expected a list of questions", "__where__": here})
                continue
            for q, qa in enumerate(qas):
                rows.append(
                    {
                        "id": f"{title}/{note}/{q}",
                        "context": paragraph.get("context"),
                        "qa": qa,
                        "__where__": f"{here}, question {q + 1}",
                    }
                )
    return rows


def _split_name(stem: str) -> str | None:
    parts = re.split(r"[^a-z]+", stem.lower())
    return next((s for s in SPLITS if s in parts), None)


def read(path: Path, split: str) -> list[dict] | None:
    if path.is_file():
        raw = _load(path) if path.suffix == ".json" else None
        return by_note(_questions(raw, path, path), split) if _is_emrqa(raw) else None
    files = {f: _load(f) for f in sorted(path.glob("*.json"))}
    files = {f: raw for f, raw in files.items() if _is_emrqa(raw)}
    if not files:
        return None
    named = {f: _split_name(f.stem) for f in files}
    if any(named.values()):
        aliases = {"dev": ("dev", "val", "valid", "validation"), "val": ("dev", "val", "valid", "validation")}
        wanted = aliases.get(split, (split,))
        files = {f: raw for f, raw in files.items() if named[f] in wanted}
        return [row for f, raw in files.items() for row in _questions(raw, f, path)]
    return by_note([row for f, raw in files.items() for row in _questions(raw, f, path)], split)


def _note_key(row: dict) -> str:
    try:
        return _context(row.get("context"))
    except ValueError:
        return ""


def _note_rank(note: str) -> str:
    return hashlib.sha256(f"{NOTE_SPLIT_SEED}:{note}".encode()).hexdigest()


def by_note(rows: list[dict], split: str) -> list[dict]:
    """emrQA's release has no train/test split: its questions are split by note, so no note is asked
    about in both parts. The notes (by text: a note two i2b2 subsets share is one note) are ordered
    by SHA-256 of NOTE_SPLIT_SEED and the text; the first TEST_SHARE of them (at least one) are the
    test part, the rest the train part. Rows that name no note (unusable) stay in the test part, where
    they are counted. Any other split is empty."""
    notes = sorted({_note_key(r) for r in rows if "__error__" not in r}, key=_note_rank)
    test = set(notes[: max(1, round(TEST_SHARE * len(notes)))])
    if split == "test":
        return [r for r in rows if "__error__" in r or _note_key(r) in test]
    if split == "train":
        return [r for r in rows if "__error__" not in r and _note_key(r) not in test]
    return []


def _context(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(line.rstrip("\n") for line in value)
    raise ValueError("context: expected the note as a list of lines or a string")


def _first_piece(value: object) -> str:
    """A field's text; the first non-empty piece when it is a list (complex answers, paraphrases)."""
    if isinstance(value, list):
        return next((str(v).strip() for v in value if isinstance(v, str | int) and str(v).strip()), "")
    return "" if value is None else str(value).strip()


def locate(span: str, note: str) -> str | None:
    """`span` as the note writes it, matched ignoring case and spacing; None when absent."""
    words = span.split()
    if not words:
        return None
    found = re.search(r"\s+".join(re.escape(w) for w in words), note, re.IGNORECASE)
    return found.group(0) if found else None


def to_doc(row: dict) -> Doc | None:
    if "__error__" in row:
        raise ValueError(row["__error__"])
    qa = row.get("qa")
    if not isinstance(qa, dict):
        raise ValueError("qas: expected a question object")
    note = _context(row.get("context"))
    if not note.strip():
        raise ValueError("context: empty note")
    question = _first_piece(qa.get("question"))
    if not question:
        raise ValueError("question: missing or empty")
    answers = qa.get("answers")
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], dict):
        raise ValueError("answers: none for this question")
    pieces = [(f, _first_piece(answers[0].get(f))) for f in ("text", "evidence")]
    pieces = [(f, piece) for f, piece in pieces if piece]
    if not pieces:
        raise ValueError("answers[0]: empty text and evidence")
    for _field, piece in pieces:
        span = locate(piece, note)
        if span is not None:
            # The note is the question's cluster (`cluster: note`): its text, so a note that two
            # i2b2 subsets (titles) share is one cluster; samples keep only its hash.
            fields = {"text": note, "question": question}
            return Doc(id=str(row["id"]), fields=fields, gold=span, cluster=note)
    field, piece = pieces[0]
    raise ValueError(f"answers[0].{field}: {piece[:60]!r} is not in the note")
