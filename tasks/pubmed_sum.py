"""PubMed long-document summarization (Cohan et al. 2018) release -> mibe document.

The release (`pubmed-dataset/`) holds `train.txt`, `val.txt` and `test.txt`: JSON lines with
`article_id`, `article_text` (the body's sentences), `abstract_text` (sentences wrapped in `<S>` and
`</S>`), `section_names` and `sections`. `read` takes that folder or one of its `.txt` files; other
files (JSONL/parquet exports such as the hub's ccdv/pubmed-summarization, with `article` and
`abstract` strings) are read as usual and reach `to_doc` too.

`text` is the article (`src` in Me-LLaMA's rows), its sentences joined with spaces; the gold is the
abstract (`tgt`), its `<S>`/`</S>` tags removed and its sentences joined with spaces. Articles or
abstracts that are empty (the release has some) are unusable and counted. Long articles are
shortened at their end by the runner (`truncate: text`), never the instruction.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mibe.types import Doc

SPLIT_FILES = {
    "test": "test.txt",
    "train": "train.txt",
    "val": "val.txt",
    "dev": "val.txt",
    "validation": "val.txt",
}
_TAG = re.compile(r"</?S>")


def _json_lines(file: Path) -> list[dict]:
    rows = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                row = {"__error__": f"not valid JSON ({exc.msg})"}
            if not isinstance(row, dict):
                row = {"__error__": "not a JSON object"}
            rows.append({**row, "__where__": f"{file.name} line {number}"})
    return rows


def read(path: Path, split: str) -> list[dict] | None:
    if path.is_file():
        return _json_lines(path) if path.suffix == ".txt" else None
    files = [path / name for name in sorted(set(SPLIT_FILES.values())) if (path / name).is_file()]
    if not files:
        return None  # not the release's folder: read it as usual (e.g. test.jsonl)
    wanted = path / SPLIT_FILES.get(split, f"{split}.txt")
    return _json_lines(wanted) if wanted.is_file() else []


def _sentences(value: object, field: str) -> str:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{field}: expected a list of sentences")
    kept = [" ".join(_TAG.sub(" ", s).split()) for s in value]
    return " ".join(s for s in kept if s)


def _field(row: dict, names: tuple[str, ...]) -> tuple[str, object]:
    for name in names:
        if name in row:
            return name, row[name]
    raise ValueError(f"{names[0]}: missing (also looked for {', '.join(names[1:])})")


def to_doc(row: dict) -> Doc | None:
    if "__error__" in row:
        raise ValueError(row["__error__"])
    name, article = _field(row, ("article_text", "article", "src"))
    text = _sentences(article, name)
    if not text:
        raise ValueError(f"{name}: empty article")
    name, abstract = _field(row, ("abstract_text", "abstract", "tgt"))
    gold = _sentences(abstract, name)
    if not gold:
        raise ValueError(f"{name}: empty abstract (nothing to score a summary against)")
    doc_id = row.get("article_id", row.get("id"))
    if doc_id is None or str(doc_id).strip() == "":
        raise ValueError("article_id: missing (and no id)")
    return Doc(
        id=str(doc_id).strip(), fields={"text": text}, gold=gold, invented=bool(row.get("invented", False))
    )
