"""The paper parser reproduces Me-LLaMA's scoring flaws; the strict parser fixes them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mibe import tasks
from mibe.scoring.kinds import parse
from mibe.types import Prediction

PUBMEDQA = ("yes", "no", "maybe")
MEDQA = ("A", "B", "C", "D", "E")
MEDMCQA = ("A", "B", "C", "D")
MEDNLI = ("entailment", "contradiction", "neutral")
BIONLI = ("entailment", "contradiction")
DDI = ("DDI-effect", "DDI-mechanism", "DDI-advise", "DDI-false", "DDI-int")
MATCH = {"ddi2013": "exactly_one"}  # the paper's label rule, as tasks/ddi2013.yaml states it
# The long label lists from their one owner, the task files (test_bundled_tasks holds them to the
# lists the published prompts give).
HOC = tasks.load_task(tasks.builtin_paths()["hoc"]).choices
MTSAMPLE = tasks.load_task(tasks.builtin_paths()["mtsample"]).choices
assert len(MTSAMPLE) == 40

CHOICE_TASKS = {
    "pubmedqa": ("choice", PUBMEDQA),
    "medqa": ("letter", MEDQA),
    "medmcqa": ("letter", MEDMCQA),
    "mednli": ("choice", MEDNLI),
    "bionli": ("choice", BIONLI),
    "ddi2013": ("choice", DDI),
    "mtsample": ("choice", MTSAMPLE),
}

# (task, output, what `paper` reads, what `strict` reads): one row per paper flaw at least.
FLAWS = [
    # Case-insensitive substring, first in list order.
    ("pubmedqa", "I cannot tell", "no", None),  # "no" inside "cannot"
    ("pubmedqa", "I don't know.", "no", None),  # "no" inside "know"
    ("pubmedqa", "Unknown from the abstract.", "no", None),  # "no" inside "unknown"
    (
        "pubmedqa",
        "Maybe. There is no clear evidence.",
        "no",
        "maybe",
    ),  # list order beats position
    (
        "mtsample",
        "Neurosurgery",
        "Surgery",
        "Neurosurgery",
    ),  # "surgery" inside "neurosurgery"
    ("mtsample", "Cosmetic / Plastic Surgery", "Surgery", "Cosmetic / Plastic Surgery"),
    (
        "mtsample",
        "Allergy/Immunology",
        None,
        "Allergy / Immunology",
    ),  # exact spacing only
    ("mtsample", "Consult - History and Phy", None, "Consult - History and Phy."),
    ("mednli", "Neutral. There is no contradiction.", "contradiction", "neutral"),
    (
        "bionli",
        "It is contradiction rather than entailment",
        "entailment",
        None,
    ),  # two answers
    # Case-sensitive letters: any capital A is an answer, lower case is nothing.
    ("medqa", "A 45-year-old man needs surgery, so the answer is C.", "A", "C"),
    ("medqa", "Answer: (C) Amniotic fluid embolism", "A", "C"),  # the "A" of "Answer"
    ("medqa", "The correct answer is **B**. Because A is wrong.", "A", "B"),
    ("medqa", "(c)", None, "C"),
    ("medqa", "the answer is (d).", None, "D"),
    ("medmcqa", "Both B and D are true", "B", None),  # two different letters
    ("medmcqa", "Amniotic fluid", "A", None),  # a letter inside a word
    # DDI: case-sensitive, exactly one label string as a substring.
    ("ddi2013", "ddi-effect", None, "DDI-effect"),
    ("ddi2013", "The answer is DDI-advise, not DDI-false.", None, "DDI-advise"),
    (
        "ddi2013",
        "DDI-interaction",
        "DDI-int",
        None,
    ),  # "DDI-int" inside a longer word
]

# Rows both parsers read the same way, and rows only the strict parser's patterns decide.
STRICT = [
    ("pubmedqa", "yes. No further information is needed.", "yes"),
    ("pubmedqa", "Maybe, the evidence is mixed.", "maybe"),
    ("pubmedqa", "The answer is: no", "no"),
    ("pubmedqa", "**Yes**", "yes"),
    ("pubmedqa", "Based on the abstract, yes.", "yes"),
    ("pubmedqa", "I'm not sure whether yes or no", None),
    ("medqa", "C.", "C"),
    ("medqa", "C) Aspirin", "C"),
    ("medqa", "(C) Aspirin", "C"),
    ("medqa", "C", "C"),
    ("medqa", "**B**", "B"),
    ("medqa", "B: Neoplasia", "B"),
    ("medqa", "E", "E"),
    ("medqa", "Answer: C", "C"),
    ("medqa", "The answer is option D, heparin.", "D"),
    ("medqa", "I would choose B because the rest do not apply.", "B"),
    ("medqa", "Option A is correct.", "A"),
    ("medqa", "A is correct.", "A"),
    ("medqa", "A patient like this needs rest.", None),  # the article
    ("medqa", "a", None),
    ("medqa", "The answer is a benign tumor.", None),
    ("medqa", "A or B", None),
    ("medqa", "X-ray shows a B-cell lymphoma", None),
    ("medmcqa", "E", None),  # not one of MedMCQA's letters
    ("medmcqa", "Answer: B. Option A would be wrong, and so would C.", "B"),
    ("medmcqa", "The answer is A. Final answer: B", None),  # two explicit answers
    ("mednli", "entailment", "entailment"),
    ("mednli", "OUTPUT: Neutral", "neutral"),
    ("mednli", "The relationship is contradiction.", "contradiction"),
    ("ddi2013", "DDI-mechanism", "DDI-mechanism"),
    ("ddi2013", "DDI-effect or DDI-mechanism", "DDI-effect"),  # opens with a label
    ("ddi2013", "It is either DDI-effect or DDI-mechanism", None),
    ("mtsample", "Surgery", "Surgery"),
    ("mtsample", "General Medicine", "General Medicine"),
    ("mtsample", "orthopedic surgery", "Orthopedic"),  # opens with a label
    ("mtsample", "It concerns Neurology, or maybe Radiology.", None),
    ("mtsample", "The specialty is Pediatrics-Neonatal.", "Pediatrics - Neonatal"),
    ("mtsample", "IME-QME-Work Comp etc.", "IME-QME-Work Comp etc."),
    ("mtsample", "SOAP / Chart / Progress Notes", "SOAP / Chart / Progress Notes"),
]

UNPARSEABLE = ["", "   \n ", "I am unsure.", "n/a", "???"]


@pytest.mark.parametrize(("task", "output", "paper", "strict"), FLAWS)
def test_paper_flaws_are_reproduced_and_fixed(task: str, output: str, paper: str, strict: str) -> None:
    answer_type, choices = CHOICE_TASKS[task]
    assert parse(output, answer_type, choices, "paper", MATCH.get(task, "first")) == Prediction(
        paper, paper is None
    )
    assert parse(output, answer_type, choices, "strict") == Prediction(strict, strict is None)


@pytest.mark.parametrize(("task", "output", "expected"), STRICT)
def test_strict_patterns(task: str, output: str, expected: str) -> None:
    answer_type, choices = CHOICE_TASKS[task]
    assert parse(output, answer_type, choices, "strict") == Prediction(expected, expected is None)


@pytest.mark.parametrize("task", sorted(CHOICE_TASKS))
@pytest.mark.parametrize("parser", ["paper", "strict"])
@pytest.mark.parametrize("output", UNPARSEABLE)
def test_unparseable_choice_output_is_no_answer(task: str, parser: str, output: str) -> None:
    answer_type, choices = CHOICE_TASKS[task]
    assert parse(output, answer_type, choices, parser, MATCH.get(task, "first")) == Prediction(None, True)


@pytest.mark.parametrize(
    ("output", "paper", "strict"),
    [
        (
            "Sustaining proliferative signaling; inducing angiogenesis",
            ("inducing angiogenesis",),  # case-sensitive: the capitalised name is lost
            ("sustaining proliferative signaling", "inducing angiogenesis"),
        ),
        ("resisting cell deaths", ("resisting cell death",), ()),  # no word boundary
        (
            "tumor promoting inflammation,\nEvading Growth Suppressors",
            ("tumor promoting inflammation",),
            (
                "evading growth suppressors",
                "tumor promoting inflammation",
            ),  # choices order
        ),
        ("avoiding  immune\ndestruction", (), ("avoiding immune destruction",)),
        ("none of the above", (), ()),
        ("", (), ()),
    ],
)
def test_hoc(output: str, paper: tuple[str, ...], strict: tuple[str, ...]) -> None:
    assert parse(output, "multi_label", HOC, "paper") == Prediction(paper, not paper)
    assert parse(output, "multi_label", HOC, "strict") == Prediction(strict, not strict)


@pytest.mark.parametrize(
    ("answer_type", "output", "paper", "strict"),
    [
        (
            "span",
            '  "aspirin 81 mg daily"\nIt is in line 3.',
            '"aspirin 81 mg daily"\nIt is in line 3.',
            "aspirin 81 mg daily",
        ),
        ("span", "\n\n  metoprolol  \n", "metoprolol", "metoprolol"),
        ("span", "“chest pain”", "“chest pain”", "chest pain"),
        ("span", "the patients'", "the patients'", "the patients'"),
        ("span", ' "" ', '""', ""),
        ("span", "   ", "", ""),
        (
            "text",
            "  No acute findings.\nStable.  ",
            "No acute findings.\nStable.",
            "No acute findings.\nStable.",
        ),
        (  # the paper's html2bio read i2b2 outputs unstripped; strict strips
            "entities",
            ' <span class="problem">pain</span> ',
            ' <span class="problem">pain</span> ',
            '<span class="problem">pain</span>',
        ),
        ("entities", " \n", " \n", ""),
        ("text", "", "", ""),
    ],
)
def test_free_text(answer_type: str, output: str, paper: str, strict: str) -> None:
    assert parse(output, answer_type, (), "paper") == Prediction(paper, not paper.strip())
    assert parse(output, answer_type, (), "strict") == Prediction(strict, not strict)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="answer type"):
        parse("A", "number", MEDQA, "strict")
    with pytest.raises(ValueError, match="parser"):
        parse("A", "letter", MEDQA, "lenient")


# Text built from label fragments, answer phrases and noise reaches the interesting branches far
# more often than arbitrary unicode alone.
_PIECES = sorted(
    {w for _, choices in CHOICE_TASKS.values() for c in choices for w in (c, c.lower(), c.upper(), c[:3])}
    | set(HOC)
    | {
        "answer is",
        "Answer:",
        "(",
        ")",
        "**",
        ".",
        ",",
        ";",
        "\n",
        " ",
        "a",
        "option",
        "not",
        "'",
        "-",
        "/",
    }
)
TEXTS = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=3)), max_size=12).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(
    text=TEXTS,
    task=st.sampled_from(sorted(CHOICE_TASKS)),
    parser=st.sampled_from(["paper", "strict"]),
)
def test_choice_value_is_a_choice_or_no_answer(text: str, task: str, parser: str) -> None:
    answer_type, choices = CHOICE_TASKS[task]
    pred = parse(text, answer_type, choices, parser)
    assert pred.value in (*choices, None)
    assert pred.failed == (pred.value is None)


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, parser=st.sampled_from(["paper", "strict"]))
def test_multi_label_value_is_a_subset_in_choices_order(text: str, parser: str) -> None:
    pred = parse(text, "multi_label", HOC, parser)
    assert isinstance(pred.value, tuple)
    assert list(pred.value) == [c for c in HOC if c in pred.value]
    assert pred.failed == (not pred.value)


@settings(max_examples=200, deadline=None)
@given(
    text=TEXTS,
    answer_type=st.sampled_from(["span", "entities", "text"]),
    parser=st.sampled_from(["paper", "strict"]),
)
def test_free_text_value_is_a_string(text: str, answer_type: str, parser: str) -> None:
    pred = parse(text, answer_type, (), parser)
    assert isinstance(pred.value, str)
    raw = parser == "paper" and answer_type == "entities"  # the paper's i2b2 scorer read it unstripped
    assert pred.value == (text if raw else pred.value.strip())
    assert pred.failed == (not pred.value.strip())
