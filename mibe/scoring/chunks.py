"""BIO tags -> entity chunks, as seqeval reads them: shared by the strict and the paper i2b2 scorers."""

from __future__ import annotations

from collections.abc import Sequence


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Chunks as seqeval's default get_entities reads BIO tags, stray I- included."""
    chunks, prev_tag, prev_type, begin = set(), "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag, type_ = chunk[0], chunk[1:].split("-", maxsplit=1)[-1] or "_"
        switch = prev_type != type_
        if (prev_tag in "BI" and tag in "BO") or (prev_tag != "O" and switch):
            chunks.add((prev_type, begin, i - 1))
        if tag == "B" or (prev_tag == "O" and tag == "I") or (tag != "O" and switch):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks
