"""Turn a model's generated text into a prediction: the paper's parser and mibe's strict one.

`paper` reproduces Me-LLaMA's scoring scripts flaw for flaw, so that `--parser paper` gives the
published numbers. `strict` (the default) fixes those flaws: word boundaries, explicit answer
patterns first, and no answer (None) when the output names two different answers. Both, rule by rule:
docs/scoring-rules.md.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mibe.types import Prediction

# Characters that may wrap or precede an answer: markdown emphasis, quotes, brackets, colons, dashes.
_DECOR = r"[\s*_\"'`“”‘’(\[:\-–—>#]*"
# "The answer is (C)", "Answer: C", "**Final answer:** yes", "the answer would be option B",
# "OUTPUT: neutral", "Label: DDI-effect". Matched against the text just before a label, so what may
# sit between the keyword and the label is only a verb phrase, an "option"/"choice" word and _DECOR.
_ANSWER_LEAD = re.compile(
    r"\b(?:answer|output|label|prediction)s?\b"
    r"(?:\s+(?:is|was|are|would\s+be|will\s+be|should\s+be|must\s+be))?"
    + _DECOR
    + r"(?:(?:option|choice|letter)\b"
    + _DECOR
    + r")?\Z",
    re.IGNORECASE,
)
# The label opens the output (after decoration, or an "Option"/"Choice" word): "yes. No further
# ...", "Maybe, ...", "(C) Amniotic fluid", "**B**".
_START_LEAD = re.compile(_DECOR + r"(?:(?:option|choice|letter)\b" + _DECOR + r")?", re.IGNORECASE)
_LEAD_WINDOW = 80  # characters before a match searched for _ANSWER_LEAD (keeps parsing linear)

# A letter is a standalone token: not inside a word ("Amniotic"), not joined by an apostrophe or
# hyphen ("A's", "B-cell", "X-ray").
_LETTER_TOKEN = re.compile(r"(?<![\w'’\-])([A-Za-z])(?![\w'’\-])")
# What may follow a letter opening the output for it to count as the answer: "C", "C.", "C)",
# "C:", "**C**", "C - text", "C\n...". "A 45-year-old" does not qualify.
_LETTER_END = re.compile(r"[*_\"'`”’\]]*(?:\s*\Z|[.):,;]|[ \t]*\n|\s+[-–—:]\s)")
# "A" followed by a lower-case word or a digit is the article ("A 45-year-old man", "A patient"),
# unless the word makes it a statement about option A ("A is correct").
_ARTICLE_A = re.compile(r"\s+(?!(?:is|was|would|will|seems|appears|fits|best|correct|and|or)\b)[a-z0-9]")
_AFTER_OPTION_WORD = re.compile(r"\b(?:option|choice|letter)\s*[(\[]?\Z", re.IGNORECASE)
_QUOTES = "\"'`“”‘’"
_WORD = re.compile(r"\w")


def parse_label(out: str, choices: tuple[str, ...], paper: bool, match: str = "first") -> Prediction:
    """One label of a closed set (kind `choice`)."""
    if not paper:
        label = _strict_label(out, choices)
    elif match == "exactly_one":
        # DDI2013 in the paper (its task file says `paper_match: exactly_one`): case-sensitive, and
        # only if exactly one label string occurs ("DDI-interaction" contains "DDI-int": DDI-int).
        present = [c for c in choices if c in out]
        label = present[0] if len(present) == 1 else None
    else:
        # PubMedQA / MTSample / BioNLI / MedNLI in the paper: lower-cased, first choice in list
        # order found as a substring. "I cannot tell" reads as "no" (inside "cannot");
        # "Neurosurgery" reads as "Surgery" (listed first).
        low = out.lower()
        label = next((c for c in choices if c.lower() in low), None)
    return Prediction(label, failed=label is None)


def parse_letter(out: str, choices: tuple[str, ...], paper: bool, match: str = "first") -> Prediction:
    """One option letter (kind `letter`)."""
    if paper:
        # MedQA / MedMCQA in the paper: first choice, in list order, occurring as a
        # case-sensitive substring. Any capital "A" ("A 45-year-old", "Answer:") reads as A,
        # and "(c)" reads as nothing.
        label = next((c for c in choices if c in out), None)
    elif all(len(c) == 1 and c.isalpha() for c in choices):
        label = _strict_letter(out, choices)
    else:
        label = _strict_label(out, choices)
    return Prediction(label, failed=label is None)


def parse_labels(out: str, choices: tuple[str, ...], paper: bool, match: str = "first") -> Prediction:
    """Every label named (kind `multi_label`)."""
    if paper:
        # HoC in the paper: case-sensitive substring test per hallmark, so "Inducing
        # angiogenesis" (capitalised) is never found, and "resisting cell deaths" is.
        names = tuple(c for c in choices if c in out)
    else:
        found = {label for _, _, label in _label_matches(out, choices)}
        names = tuple(c for c in choices if c in found)
    return Prediction(names, failed=not names)


def parse_span(out: str, choices: tuple[str, ...], paper: bool, match: str = "first") -> Prediction:
    """A text segment (kind `span`): the paper keeps the whole output, strict its first line."""
    value = out if paper else _strict_span(out)
    return Prediction(value, failed=not value)


def parse_text(out: str, choices: tuple[str, ...], paper: bool, match: str = "first") -> Prediction:
    """Free text and tagged text (kinds `text`, `entities`): both parsers read the output as it is."""
    return Prediction(out, failed=not out.strip())


@lru_cache(maxsize=128)
def _label_patterns(
    choices: tuple[str, ...],
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """One case-insensitive, word-bounded pattern per label, compiled once per choice list."""
    return tuple((c, re.compile(_label_regex(c), re.IGNORECASE)) for c in choices if c.strip())


def _label_regex(label: str) -> str:
    # Labels hold '/', '-', '.', and spaces ("Allergy / Immunology", "IME-QME-Work Comp etc."), so
    # \b would misbehave at their edges: use lookarounds for "no word character next to it".
    # Spacing is loose: words need some whitespace between them, punctuation may have any
    # ("Allergy/Immunology", "Pediatrics-Neonatal"). A final '.' is optional ("... and Phy").
    pieces = re.findall(r"\w+|[^\w\s]", label)
    body = ""
    for i, piece in enumerate(pieces):
        if i:
            word_pair = _WORD.match(piece) and _WORD.match(pieces[i - 1])
            body += r"\s+" if word_pair else r"\s*"
        body += r"\.?" if piece == "." and i == len(pieces) - 1 and i else re.escape(piece)
    return r"(?<!\w)" + body + r"(?!\w)"


def _label_matches(out: str, choices: tuple[str, ...]) -> list[tuple[int, int, str]]:
    """(start, end, label) of every label occurrence not lying inside a longer label's match."""
    found = sorted(
        ((m.start(), m.end(), label) for label, pat in _label_patterns(choices) for m in pat.finditer(out)),
        key=lambda f: (f[0], -f[1]),
    )
    # "Surgery" inside "Cosmetic / Plastic Surgery" is not a second answer: drop any match that a
    # match starting no later covers (sorted by start, longest first, so one sweep suffices).
    kept: list[tuple[int, int, str]] = []
    max_end, max_start = -1, -1
    for start, end, label in found:
        if end < max_end or (end == max_end and max_start < start):
            continue
        kept.append((start, end, label))
        if end > max_end:
            max_end, max_start = end, start
    return kept


def _explicit(out: str, start: int) -> bool:
    """The answer sits at `start` by an explicit pattern: an answer phrase, or the output's opening."""
    return bool(_START_LEAD.fullmatch(out, 0, start)) or bool(
        _ANSWER_LEAD.search(out, max(0, start - _LEAD_WINDOW), start)
    )


def _decide(explicit: set[str], anywhere: set[str]) -> str | None:
    # Explicit answers win; otherwise a label found anywhere counts only if it is the only one.
    # Two different answers (explicit, or with no explicit one) are no answer.
    for labels in (explicit, anywhere):
        if labels:
            return labels.pop() if len(labels) == 1 else None
    return None


def _strict_label(out: str, choices: tuple[str, ...]) -> str | None:
    matches = _label_matches(out, choices)
    explicit = {label for start, _, label in matches if _explicit(out, start)}
    return _decide(explicit, {label for _, _, label in matches})


def _strict_letter(out: str, choices: tuple[str, ...]) -> str | None:
    canonical = {c.upper(): c for c in choices}
    explicit: set[str] = set()
    anywhere: set[str] = set()
    for m in _LETTER_TOKEN.finditer(out):
        ch, start, end = m.group(1), m.start(1), m.end(1)
        label = canonical.get(ch.upper())
        if label is None:
            continue
        # Lower-case letters are usually words ("a"), so they count only when closed by a
        # parenthesis as an option marker: "(c)", "c)".
        marked = ch.isupper() or out.startswith(")", end)
        if _ANSWER_LEAD.search(out, max(0, start - _LEAD_WINDOW), start):
            if marked:
                explicit.add(label)
        elif _START_LEAD.fullmatch(out, 0, start):
            if marked and _LETTER_END.match(out, end):
                explicit.add(label)
            elif ch.isupper() and not _is_article(out, start, end, ch):
                anywhere.add(label)
        elif ch.isupper() and not _is_article(out, start, end, ch):
            anywhere.add(label)
    return _decide(explicit, anywhere)


def _is_article(out: str, start: int, end: int, ch: str) -> bool:
    if ch != "A" or _AFTER_OPTION_WORD.search(out, max(0, start - 20), start):
        return False
    return bool(_ARTICLE_A.match(out, end))


def _strict_span(out: str) -> str:
    # emrQA asks for a text segment only: keep the first non-empty line, unwrapped from quotes.
    line = next((ln.strip() for ln in out.splitlines() if ln.strip()), "")
    while len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
        line = line[1:-1].strip()
    return line
