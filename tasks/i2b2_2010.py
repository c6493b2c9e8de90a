"""2010 i2b2/VA concepts (n2c2 release) -> sentence-level mibe documents.

The release unpacks into `concept_assertion_relation_training_data/{beth,partners}/{txt,concept}/`
(`record-13.txt` + `record-13.con`; `partners/unannotated/` has notes without concepts and is not
read), `test_data/*.txt` and `reference_standard_for_test_data/concepts/*.con`. `read` takes that
folder (or any folder of `.txt` notes and `.con` files, paired by file name, searched recursively):
notes under `test_data/` are the `test` split and those under the training folder `train`; a folder
with neither name is one evaluation set.

A note has one sentence per line and whitespace-separated tokens. A `.con` line is
`c="<text>" <line>:<token> <line>:<token>||t="problem|treatment|test"` (lines from 1, tokens from
0, the end inclusive; the concept text is lower-cased in the release). Each non-blank line is one
document: `text` is the line, the gold is the line with each concept wrapped in
`<span class="<type>">...</span>` (with <, > and & written as entities so the gold parses back to
the line). Lines without concepts are kept (gold = the plain line): the paper scored sentences with
and without entities, and they are where a model's false positives show. Every concept is checked
against the text: a token range outside the line, words that differ from `c="..."` (case and
spacing aside), a concept across lines, overlapping concepts of different types or an unknown type
make that line unusable (counted, with the first `.con` line named); a note without a `.con` file,
or a `.con` line that does not parse, counts as one unusable row.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from mibe.types import Doc

TYPES = ("problem", "treatment", "test")
SPLIT_FOLDERS = {"test_data": "test", "concept_assertion_relation_training_data": "train"}
_CON = re.compile(r'c="(.*)" (\d+):(\d+) (\d+):(\d+)\|\|t="([^"]*)"\s*')


def _split(relative: Path) -> str:
    return next((SPLIT_FOLDERS[p] for p in relative.parts if p in SPLIT_FOLDERS), "")


def _concepts(con: Path, where: str, n_lines: int, rows: dict[int, dict], errors: list[dict]) -> None:
    """Attach each concept of `con` to its line's row; unusable lines get an `__error__`."""
    for number, raw in enumerate(con.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not raw.strip():
            continue
        here = f"{where} line {number}"
        match = _CON.fullmatch(raw.strip())
        if match is None:
            errors.append({"__error__": f"cannot parse {raw.strip()[:80]!r}", "__where__": here})
            continue
        text, l1, t1, l2, t2, kind = match.groups()
        first, last = int(l1), int(l2)
        if not 1 <= first <= last <= n_lines:
            errors.append({"__error__": f"line {first}-{last} is outside the note", "__where__": here})
            continue
        concept = {"c": text, "start": int(t1), "end": int(t2), "type": kind, "where": here}
        for line in range(first, last + 1):
            row = rows.get(line)
            if row is None:  # a blank line: nothing there to tag
                if first == last:
                    errors.append({"__error__": f"line {first} of the note is blank", "__where__": here})
                continue
            if first != last:
                row.setdefault("__error__", f"{here}: concept spans lines {first}-{last}")
            row["concepts"].append(concept)


def read(path: Path, split: str) -> list[dict] | None:
    if not path.is_dir():
        return None
    cons: dict[str, list[Path]] = {}
    for con in sorted(path.rglob("*.con")):
        cons.setdefault(con.stem, []).append(con)
    if not cons:
        return None
    notes = sorted(p for p in path.rglob("*.txt") if "unannotated" not in p.relative_to(path).parts)
    divided = any(_split(p.relative_to(path)) for p in notes)
    out: list[dict] = []
    for note in notes:
        relative = note.relative_to(path)
        if divided and _split(relative) != split:
            continue
        found = cons.get(note.stem, [])
        if len(found) != 1:
            why = "no .con file" if not found else f"{len(found)} .con files named {note.stem}.con"
            out.append({"__error__": f"{why} for this note", "__where__": str(relative)})
            continue
        lines = note.read_text(encoding="utf-8", errors="replace").split("\n")
        rows = {
            n: {
                "id": f"{note.stem}:{n}",
                "text": line.strip(),
                "concepts": [],
                "__where__": f"{relative} line {n}",
            }
            for n, line in enumerate(lines, 1)
            if line.strip()
        }
        errors: list[dict] = []
        _concepts(found[0], str(found[0].relative_to(path)), len(lines), rows, errors)
        out += errors + list(rows.values())
    return out


def tag(text: str, concepts: list[dict]) -> str:
    """`text` with each concept wrapped in a span tag; ValueError when a concept does not fit."""
    tokens = list(re.finditer(r"\S+", text))
    spans: dict[tuple[int, int], str] = {}
    for c in sorted(concepts, key=lambda c: (c["start"], c["end"])):
        start, end, where = c["start"], c["end"], c["where"]
        if c["type"] not in TYPES:
            raise ValueError(f"{where}: type {c['type']!r} is not problem, treatment or test")
        if not 0 <= start <= end < len(tokens):
            raise ValueError(f"{where}: tokens {start}-{end} are outside the line's {len(tokens)} tokens")
        words = " ".join(t.group(0) for t in tokens[start : end + 1])
        if words.lower() != " ".join(c["c"].split()).lower():
            raise ValueError(f'{where}: c="{c["c"]}" {start}-{end} does not match the text ("{words}")')
        previous = spans.get((start, end))
        if previous is not None and previous != c["type"]:
            raise ValueError(f"{where}: tokens {start}-{end} are both {previous} and {c['type']}")
        if previous is None and any(s <= end and start <= e for s, e in spans):
            raise ValueError(f"{where}: tokens {start}-{end} overlap another concept")
        spans[(start, end)] = c["type"]
    out, at = [], 0
    for (start, end), kind in sorted(spans.items()):
        begin, finish = tokens[start].start(), tokens[end].end()
        out += [html.escape(text[at:begin], quote=False), f'<span class="{kind}">']
        out += [html.escape(text[begin:finish], quote=False), "</span>"]
        at = finish
    return "".join([*out, html.escape(text[at:], quote=False)])


def to_doc(row: dict) -> Doc | None:
    if "__error__" in row:
        raise ValueError(row["__error__"])
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: empty line")
    concepts = row.get("concepts") or []
    shape = {"c": str, "start": int, "end": int, "type": str, "where": str}
    if not isinstance(concepts, list) or not all(
        isinstance(c, dict) and all(isinstance(c.get(k), t) for k, t in shape.items()) for c in concepts
    ):
        raise ValueError("concepts: expected the concepts `read` attaches to a line")
    # The note file is the sentence's cluster (`cluster: note`): ids are `<note stem>:<line>`.
    note = str(row["id"]).rsplit(":", 1)[0]
    return Doc(id=str(row["id"]), fields={"text": text}, gold=tag(text, concepts), cluster=note)
