"""The Me-LLaMA paper's emrQA and i2b2 scoring, reproduced rule for rule (the `paper` parser).

Both rules have quirks that mibe's `strict` parser fixes (docs/scoring-rules.md); here they are
kept on purpose, so that `--parser paper` gives the published numbers. Every function is pure and
never raises on any string: a model's output is arbitrary text.
"""

from __future__ import annotations

import string
import sys
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from mibe.scoring.chunks import entities

ENTITY_CLASSES = frozenset({"problem", "treatment", "test", "drug"})
_PUNCT = frozenset(string.punctuation)


def _text(value: Any) -> str:
    # No answer (None) is what the paper saw as an empty output. Any string is text, "missing" too:
    # their scorer compares a model's word "missing" with the gold like any other word.
    return "" if value is None else str(value)


def emrqa_tokens(text: Any) -> list[str]:
    """The paper's normalised emrQA answer: lower-case, punctuation out, one token per character."""
    # The paper drops punctuation by joining the kept characters with spaces and then collapses
    # whitespace, so every token is a single character and the original spaces vanish.
    kept = " ".join(ch for ch in _text(text).lower() if ch not in _PUNCT)
    return kept.split()


def _char_set_f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = len(set(pred) & set(gold))  # distinct characters shared...
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)  # ...over every character, repeats kept
    return 2 * precision * recall / (precision + recall)


def emrqa_paper_scores(gold: Any, pred: Any) -> tuple[float, float]:
    """(exact_match, f1) of one emrQA answer by the paper's rule; the best over a tuple of golds."""
    pred_tokens = emrqa_tokens(pred)
    best = (0.0, 0.0)
    for alternative in gold if isinstance(gold, tuple) else (gold,):
        gold_tokens = emrqa_tokens(alternative)
        em, f1 = float(pred_tokens == gold_tokens), _char_set_f1(pred_tokens, gold_tokens)
        best = (max(best[0], em), max(best[1], f1))
    return best


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    """spaCy's English tokenizer. The paper loaded en_core_web_lg; its tokenizer is spaCy's English
    default, which the blank pipeline has too, so no model download is needed."""
    # spaCy's thinc imports torch when it is installed (3 s here) for models the bare tokenizer never
    # uses; hide torch during that import unless something already loaded it.
    hidden = "torch" not in sys.modules
    if hidden:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` then fails fast
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # spaCy's own import-time deprecation chatter
            import spacy
    finally:
        if hidden and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy.blank("en").tokenizer


def spacy_tokens(text: str) -> list[str]:
    """spaCy's English tokens of `text`, whitespace tokens (" ", "\\n") included as spaCy yields them."""
    # The tokenizer itself, not nlp(text): same tokens, without nlp's 1,000,000-character limit.
    return [token.text for token in _tokenizer()(text)]


def _top_level_nodes(html: str) -> list[tuple[str | None, str]] | None:
    """(class or None for text, text) of each top-level node; None when the parser rejects the markup."""
    from bs4 import BeautifulSoup, NavigableString

    try:
        with warnings.catch_warnings():  # bs4 warns when an output looks like a URL or a file name
            warnings.simplefilter("ignore")
            soup = BeautifulSoup(html, "html.parser")
    except Exception:  # bs4 raises ParserRejectedMarkup on some broken declarations
        return None
    nodes: list[tuple[str | None, str]] = []
    for node in soup.contents:
        if isinstance(node, NavigableString):  # text, and comments/doctypes, which are strings too
            nodes.append((None, str(node)))
        else:
            classes = node.get("class")  # a list: html.parser reads class as a multi-valued attribute
            names = classes if isinstance(classes, list) else str(classes or "").split()
            nodes.append((names[0] if names else "", node.get_text()))
    return nodes


def paper_tag_tokens(html: Any) -> tuple[list[str], list[str]]:
    """Tokens of a tagged i2b2 sentence and their BIO tags, read as the paper read them."""
    html = _text(html)
    nodes = _top_level_nodes(html)
    if nodes is None:  # the paper's script would stop here; mibe reads such an output as plain words
        return html.split(), ["O"] * len(html.split())
    tokens: list[str] = []
    tags: list[str] = []
    for cls, text in nodes:
        if cls is None:
            words = text.split()
            tags += ["O"] * len(words)
        else:
            words = spacy_tokens(text)
            entity = cls in ENTITY_CLASSES
            tags += [(f"{'I' if k else 'B'}-{cls}" if entity else "O") for k in range(len(words))]
        tokens += words
    return tokens, tags


def _inside(tag: str) -> str:
    return "I-" + tag[2:] if tag.startswith("B-") else tag


def paper_align(
    pred_tokens: Sequence[str], pred_tags: Sequence[str], gold_tokens: Sequence[str], gold_tags: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(predicted tags, gold tags) of the token pairs the paper's alignment walk forms."""
    pred, gold = (
        list(zip(pred_tokens, pred_tags, strict=True)),
        list(zip(gold_tokens, gold_tags, strict=True)),
    )
    paired_pred: list[str] = []
    paired_gold: list[str] = []
    i = j = 0
    while i < len(pred) and j < len(gold):  # stops at the end of the shorter sequence
        (pt, ptag), (gt, gtag) = pred[i], gold[j]
        if pt == gt:
            i, j = i + 1, j + 1
        elif gt.startswith(pt):  # the gold token's rest waits for the next prediction token
            gold[j] = (gt[len(pt) :], _inside(gtag))
            i += 1
        elif pt.startswith(gt):
            pred[i] = (pt[len(gt) :], _inside(ptag))
            j += 1
        else:  # a mismatch drops both tokens: one extra token shifts every later pair
            i, j = i + 1, j + 1
            continue
        paired_pred.append(ptag)
        paired_gold.append(gtag)
    return paired_pred, paired_gold


def i2b2_paper_counts(gold_html: Any, pred_html: Any) -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of one i2b2 document by the paper's rule."""
    pred_tags, gold_tags = paper_align(*paper_tag_tokens(pred_html), *paper_tag_tokens(gold_html))
    found, true = entities(pred_tags), entities(gold_tags)
    return len(true & found), len(found), len(true)
