"""mibe.scoring.paper: the paper's emrQA and i2b2 rules, with every expected value worked out by hand."""

from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval import metrics as seqeval
from seqeval.metrics.sequence_labeling import get_entities

from mibe.scoring import paper


def _span(cls: str, text: str) -> str:
    return f'<span class="{cls}">{text}</span>'


P, T, X, D = "problem", "treatment", "test", "drug"

# Normalised, every answer becomes its characters (lower-case, punctuation and spaces gone).
# F1: common = distinct characters shared; precision = common / len(pred); recall = common / len(gold).
EMRQA_CASES = [  # gold, prediction, exact_match, f1
    # a,s,p,i,r,i,n: 7 characters, 6 distinct -> p = r = 6/7
    ("aspirin", "aspirin", 1.0, 6 / 7),
    # metoprolol(10)+25(2)+mg(2)+daily(5) = 19; distinct m,e,t,o,p,r,l,2,5,g,d,a,i,y = 14 -> 14/19
    ("metoprolol 25 mg daily", "Metoprolol 25 mg daily.", 1.0, 14 / 19),
    # punctuation and case vanish; then as "aspirin"
    ("Aspirin!", "aspirin", 1.0, 6 / 7),
    # {a,b,d} vs {a,b,c}: 2 shared, 3 characters each -> p = r = 2/3
    ("abc", "abd", 0.0, 2 / 3),
    # pred a,b (2); gold a,a,b (3); 2 shared -> p = 1, r = 2/3, F1 = 2 * (2/3) / (5/3) = 4/5
    ("aab", "ab", 0.0, 4 / 5),
    # pred a (1); gold a,a (2); 1 shared -> p = 1, r = 1/2, F1 = 2/3
    ("aa", "a", 0.0, 2 / 3),
    # t,h,e,a,c,t vs t,h,e,c,a,t: 5 distinct shared of 6 each -> 5/6; "theact" != "thecat"
    ("The cat", "the act", 0.0, 5 / 6),
    # no article removal: a vs t,h,e share nothing
    ("a", "the", 0.0, 0.0),
    # same two distinct characters in another order: F1 1, exact match 0
    ("ab", "ba", 0.0, 1.0),
    # spaces (and tabs, newlines) vanish, so "a b" and "ab" are the same answer
    ("a b", "ab", 1.0, 1.0),
    ("a\tb\nc", "abc", 1.0, 1.0),
    # the hyphen is punctuation: x,r,a,y on both sides, 4 distinct of 4
    ("x-ray", "x ray", 1.0, 1.0),
    # only ASCII punctuation is dropped: pred c,a,f,é,— (5), gold c,a,f,é (4), 4 shared
    # -> p = 4/5, r = 1, F1 = 2 * (4/5) / (9/5) = 8/9
    ("café", "café—", 0.0, 8 / 9),
    # both empty after normalising -> 1
    ("...", "", 1.0, 1.0),
    # one side empty -> 0
    ("abc", "", 0.0, 0.0),
    ("", "abc", 0.0, 0.0),
    # no answer (None) reads as the empty output; the word "missing" is text (test_paper_exact.py)
    ("abc", None, 0.0, 0.0),
    # alternatives: the best of each score ("zzz" gives 0, 0; "aspirin" gives 1, 6/7)
    (("zzz", "aspirin"), "aspirin", 1.0, 6 / 7),
    # best over alternatives: "abab" gives (0, 2/3) (p = 1, r = 2/4), "ab" gives (1, 1)
    (("abab", "ab"), "ab", 1.0, 1.0),
]


@pytest.mark.parametrize(("gold", "pred", "em", "f1"), EMRQA_CASES)
def test_emrqa_paper_scores(gold, pred, em: float, f1: float) -> None:
    assert paper.emrqa_paper_scores(gold, pred) == pytest.approx((em, f1), abs=1e-12)


def test_emrqa_exact_answers_score_below_one() -> None:
    assert paper.emrqa_paper_scores("aspirin", "aspirin") == (1.0, pytest.approx(0.857, abs=5e-4))
    got = paper.emrqa_paper_scores("metoprolol 25 mg daily", "Metoprolol 25 mg daily.")
    assert got == (1.0, pytest.approx(0.737, abs=5e-4))


TAG_CASES = [  # html, tokens, tags
    # text outside tags: whitespace split, punctuation stays on its word
    ("no tags here .", ["no", "tags", "here", "."], ["O"] * 4),
    ("pain, fever.", ["pain,", "fever."], ["O", "O"]),
    ("", [], []),
    (None, [], []),
    # a tag's text goes through spaCy: "pain," -> "pain", ","; first token B-, the rest I-
    (_span(P, "chest pain,"), ["chest", "pain", ","], [f"B-{P}", f"I-{P}", f"I-{P}"]),
    # spaCy splits the unit off "2.5mg" and keeps "2.5"; the "." after the tag is outside text
    (_span(T, "aspirin 2.5mg") + ".", ["aspirin", "2.5", "mg", "."], [f"B-{T}", f"I-{T}", f"I-{T}", "O"]),
    # spaCy's infix rule splits a hyphen between letters
    (_span(D, "x-ray"), ["x", "-", "ray"], [f"B-{D}", f"I-{D}", f"I-{D}"]),
    # spaCy's exceptions keep "Dr." whole
    (_span(P, "Dr. Smith"), ["Dr.", "Smith"], [f"B-{P}", f"I-{P}"]),
    # whitespace inside a tag becomes spaCy's whitespace tokens, tagged like words
    (_span(P, " chest  pain"), [" ", "chest", " ", "pain"], [f"B-{P}"] + [f"I-{P}"] * 3),
    # a class outside the four, or none, tags O
    ('<span class="other">a b</span> c', ["a", "b", "c"], ["O", "O", "O"]),
    ("<span>a b</span>", ["a", "b"], ["O", "O"]),
    # the first class counts; nested tags give their text to the top-level tag
    ('<span class="test extra">CT <b>scan</b></span>', ["CT", "scan"], [f"B-{X}", f"I-{X}"]),
    ('<span class="extra test">CT</span>', ["CT"], ["O"]),
    # text nodes are split one by one: a tag, or a stray end tag, splits a word
    ('a<span class="problem">b</span>c', ["a", "b", "c"], ["O", f"B-{P}", "O"]),
    ("a</span>b", ["a", "b"], ["O", "O"]),
    # a comment is a text node to BeautifulSoup, so its text counts as words
    ("c<!--hi-->d", ["c", "hi", "d"], ["O", "O", "O"]),
    # an unclosed tag runs to the end
    ('x <span class="problem">open to end', ["x", "open", "to", "end"], ["O", f"B-{P}", f"I-{P}", f"I-{P}"]),
    # entities are decoded
    (_span(P, "a &amp; b"), ["a", "&", "b"], [f"B-{P}", f"I-{P}", f"I-{P}"]),
    # two tags on two lines: the newline between is an empty text node
    (_span(P, "pain") + "\n" + _span(X, "CT"), ["pain", "CT"], [f"B-{P}", f"B-{X}"]),
    # markup html.parser rejects ("<![x]>") is read as plain words
    (
        "<![x]> chest " + _span(P, "pain"),
        ["<![x]>", "chest", "<span", 'class="problem">pain</span>'],
        ["O"] * 4,
    ),
]


@pytest.mark.parametrize(("html", "tokens", "tags"), TAG_CASES)
def test_paper_tag_tokens(html: str, tokens: list[str], tags: list[str]) -> None:
    assert paper.paper_tag_tokens(html) == (tokens, tags)


def test_spacy_tokenizer_is_built_once() -> None:
    assert paper._tokenizer() is paper._tokenizer()


ALIGN_CASES = [  # pred tokens, pred tags, gold tokens, gold tags, paired pred tags, paired gold tags
    # equal tokens pair one to one
    (
        ["a", "b", "c"],
        ["B-x", "I-x", "O"],
        ["a", "b", "c"],
        ["O", "B-x", "O"],
        ["B-x", "I-x", "O"],
        ["O", "B-x", "O"],
    ),
    # pred "-pain" starts with gold "-": pair (O, I-p); pred keeps "pain" (O stays O); "pain" = "pain"
    (
        ["chest", "-pain"],
        ["B-p", "O"],
        ["chest", "-", "pain"],
        ["B-p", "I-p", "I-p"],
        ["B-p", "O", "O"],
        ["B-p", "I-p", "I-p"],
    ),
    # gold "x-ray" starts with pred "x": pair (B-d, B-d), gold keeps "-ray" as I-d; "-ray" starts
    # with "-": pair (I-d, I-d), gold keeps "ray" as I-d; "ray" = "ray": pair (I-d, I-d)
    (
        ["x", "-", "ray"],
        ["B-d", "I-d", "I-d"],
        ["x-ray"],
        ["B-d"],
        ["B-d", "I-d", "I-d"],
        ["B-d", "I-d", "I-d"],
    ),
    # the mirror: pred "x-ray" keeps "-ray", then "ray", both as I-d
    (["x-ray"], ["B-d"], ["x", "-", "ray"], ["B-d", "O", "O"], ["B-d", "I-d", "I-d"], ["B-d", "O", "O"]),
    # "Sure" vs "a": dropped both; "a" vs "b": dropped both; the gold has ended: nothing paired
    (["Sure", "a", "b"], ["O", "B-x", "I-x"], ["a", "b"], ["B-x", "I-x"], [], []),
    # a changed word drops itself and its gold counterpart; "c" pairs again
    (["a", "X", "c"], ["O", "O", "B-x"], ["a", "Y", "c"], ["O", "O", "B-x"], ["O", "B-x"], ["O", "B-x"]),
    # a deleted word shifts the rest: "c" vs "b" and "d" vs "c" are dropped, then pred ends
    (["a", "c", "d"], ["O", "O", "O"], ["a", "b", "c", "d"], ["O"] * 4, ["O"], ["O"]),
    # the walk stops at the shorter sequence's end: gold "b" is never paired
    (["a"], ["B-x"], ["a", "b"], ["B-x", "B-y"], ["B-x"], ["B-x"]),
    ([], [], ["a", "b"], ["B-x", "I-x"], [], []),
    # "therapy" starts with "the": pair (O, B-t); the gold rest "rapy" waits, but pred has ended
    (["the"], ["O"], ["therapy"], ["B-t"], ["O"], ["B-t"]),
]


@pytest.mark.parametrize(("ptok", "ptag", "gtok", "gtag", "want_pred", "want_gold"), ALIGN_CASES)
def test_paper_align(ptok, ptag, gtok, gtag, want_pred, want_gold) -> None:
    assert paper.paper_align(ptok, ptag, gtok, gtag) == (want_pred, want_gold)


CHEST = _span(P, "chest pain") + " now"
COUNT_CASES = [  # gold html, prediction html, (true positives, predicted, gold)
    pytest.param(CHEST, CHEST, (1, 1, 1), id="perfect"),
    # pred tokens Output:, chest, pain, now; gold chest, pain, now. "Output:" vs "chest", "chest" vs
    # "pain", "pain" vs "now": no token equal, none a prefix of the other -> all dropped, and then
    # the gold has ended. Nothing is paired: the document counts no entity at all.
    pytest.param(CHEST, "Output: " + CHEST, (0, 0, 0), id="output-prefix"),
    # fever/fever and and/and pair, then the prediction ends: the aspirin entity is never counted
    pytest.param(
        _span(P, "fever") + " and " + _span(T, "aspirin"), _span(P, "fever") + " and", (1, 1, 1), id="cut-off"
    ),
    # gold chest,-,pain (B I I); pred chest (B) then the outside word "-pain" (O). chest pairs;
    # "-pain" starts with "-": pair (O, I), pred keeps "pain"; pain pairs (O, I).
    # paired pred B,O,O -> problem(0..0); paired gold B,I,I -> problem(0..2): no match
    pytest.param(_span(P, "chest-pain"), _span(P, "chest") + "-pain", (0, 1, 1), id="chest-pain"),
    pytest.param(_span(P, "chest pain"), _span(X, "chest pain"), (0, 1, 1), id="wrong-class"),
    # all three tokens pair; the prediction tags nothing
    pytest.param(_span(P, "pain") + " and fever", "pain and fever", (0, 0, 1), id="plain-text-pred"),
    # an empty output ends the walk at once: the gold entity is not counted either
    pytest.param(CHEST, "", (0, 0, 0), id="empty-pred"),
    pytest.param(CHEST, None, (0, 0, 0), id="no-answer-pred"),
    # two entities, both found
    pytest.param(
        _span(P, "pain") + " , " + _span(X, "CT"),
        _span(P, "pain") + " , " + _span(X, "CT"),
        (2, 2, 2),
        id="two",
    ),
]


@pytest.mark.parametrize(("gold", "pred", "counts"), COUNT_CASES)
def test_i2b2_paper_counts(gold: str, pred: str, counts: tuple[int, int, int]) -> None:
    assert paper.i2b2_paper_counts(gold, pred) == counts


def _random_doc(rng: random.Random) -> str:
    vocab = ["chest", "pain", "chest-pain", "aspirin", "CT", "scan", "fever", "was", "given", ",", "Output:"]
    out = []
    for _ in range(rng.randint(0, 9)):
        words = " ".join(rng.choices(vocab, k=rng.randint(1, 3)))
        out.append(_span(rng.choice([P, T, X, D, "other"]), words) if rng.random() < 0.4 else words)
    return rng.choice([" ", "", "\n"]).join(out)


@pytest.mark.parametrize("seed", range(4))
def test_counts_equal_seqeval_over_the_paired_tags(seed: int) -> None:
    rng = random.Random(seed)
    golds, preds = [_random_doc(rng) for _ in range(30)], [_random_doc(rng) for _ in range(30)]
    preds[::3] = golds[::3]  # some documents right, so true positives occur
    pairs = [
        paper.paper_align(*paper.paper_tag_tokens(p), *paper.paper_tag_tokens(g))
        for g, p in zip(golds, preds, strict=True)
    ]
    y_pred, y_true = [p for p, _ in pairs], [g for _, g in pairs]
    counts = [paper.i2b2_paper_counts(g, p) for g, p in zip(golds, preds, strict=True)]
    tp, found, true = (sum(c[k] for c in counts) for k in range(3))
    assert found == len(get_entities(y_pred)) and true == len(get_entities(y_true))
    with warnings.catch_warnings():  # seqeval warns when a side has no entity; the value is under test
        warnings.simplefilter("ignore")
        want = seqeval.f1_score(y_true, y_pred)
    f1 = 2 * tp / (found + true) if found + true else 0.0
    assert f1 == pytest.approx(want, abs=1e-12)
    assert tp > 0


_SOUP = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(
            [
                '<span class="problem">',
                '<span class="test extra">',
                "<span class=drug>",
                "<span class=''>",
                "<b>",
                "</span>",
                "</b>",
                "<br>",
                "<",
                ">",
                "<!--",
                "-->",
                "<![x]>",
                "<![CDATA[",
                "<!DOCTYPE html>",
                "&amp;",
                "&",
                "&#0;",
                "<?php",
                " ",
                "\n",
            ]
        ),
    ),
    max_size=20,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(gold=_SOUP, pred=_SOUP)
def test_any_text_or_tag_soup_scores_without_raising(gold: str, pred: str) -> None:
    tp, found, true = paper.i2b2_paper_counts(gold, pred)
    assert 0 <= tp <= min(found, true)
    paired_pred, paired_gold = paper.paper_align(*paper.paper_tag_tokens(pred), *paper.paper_tag_tokens(gold))
    assert len(paired_pred) == len(paired_gold)
    em, f1 = paper.emrqa_paper_scores(gold, pred)
    assert em in (0.0, 1.0) and 0.0 <= f1 <= 1.0
    if em:  # an exact answer scores its share of distinct characters
        chars = paper.emrqa_tokens(pred)
        assert f1 == pytest.approx(len(set(chars)) / len(chars) if chars else 1.0, abs=1e-12)
