"""The bundled MIBE task definitions: templates, task files, hooks and demo documents."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.support.paths import REPO

if str(REPO) not in sys.path:  # the hooks import mibe; make the checkout importable
    sys.path.insert(0, str(REPO))

from mibe.prompts import OPTIONS_LOOP, options_text, render
from mibe.types import Doc

SHARED = REPO.parent / "shared"
PUBLISHED_PROMPTS = REPO / "tests" / "fixtures" / "published_prompts"
PUBLIC = SHARED / "data" / "mibe-public"
TASKS_DIR = REPO / "tasks"
PROMPTS_DIR = REPO / "prompts"
DEMO_DIR = TASKS_DIR / "demo"

TASKS = (
    "pubmedqa",
    "medqa",
    "medmcqa",
    "emrqa",
    "i2b2_2010",
    "ddi2013",
    "hoc",
    "mtsample",
    "pubmed_sum",
    "mimic_cxr",
    "bionli",
    "mednli",
)
WITH_BLOCK = tuple(t for t in TASKS if t not in ("bionli", "i2b2_2010"))
HOOKED = ("pubmedqa", "medqa", "medmcqa", "ddi2013", "hoc", "mtsample")
CREDENTIALED = ("emrqa", "i2b2_2010", "mimic_cxr", "mednli")
# Documents made together, resampled together (docs/statistics.md section 7).
CLUSTERS = {
    "ddi2013": "document", "mednli": "sentence1", "emrqa": "note", "i2b2_2010": "note",
    "bionli": "premise", "mimic_cxr": "subject_id", "mtsample": "transcription",
}  # fmt: skip
CHOICE_METRICS = ["accuracy", "macro_f1", "weighted_f1", "missing_rate"]
METRICS = {
    **{t: CHOICE_METRICS for t in ("pubmedqa", "medqa", "medmcqa", "ddi2013", "mtsample")},
    "bionli": CHOICE_METRICS,
    "mednli": CHOICE_METRICS,
    "hoc": ["macro_f1"],
    "emrqa": ["exact_match", "f1"],
    "i2b2_2010": ["entity_f1", "entity_precision", "entity_recall"],
    "pubmed_sum": ["rouge_l", "bertscore_f1"],
    "mimic_cxr": ["rouge_l", "bertscore_f1"],
}
GENERATION = {
    **{t: {"max_new_tokens": 32, "stop": ["\n\n"]} for t in TASKS},
    "hoc": {"max_new_tokens": 64, "stop": ["\n\n"]},
    "emrqa": {"max_new_tokens": 64, "stop": ["\n\n"]},
    "i2b2_2010": {"max_new_tokens": 192, "stop": ["\n\n"]},
    "mimic_cxr": {"max_new_tokens": 128, "stop": ["\n\n"]},
    "pubmed_sum": {"max_new_tokens": 256, "stop": []},
}


def _needs(path: Path, what: str):
    """Mark a test as reading ../shared, skipped with a reason when that path is absent."""
    skip = pytest.mark.skipif(not path.exists(), reason=f"{path} absent ({what})")
    return lambda fn: pytest.mark.shared(skip(fn))


needs_public = _needs(PUBLIC, "no public data samples here")


def published_templates() -> dict[str, str]:
    """Me-LLaMA's published templates (`{name}` fields), transcribed apart from prompts/, by task."""
    return {p.stem: p.read_text(encoding="utf-8") for p in PUBLISHED_PROMPTS.glob("*.txt")}


def template(task: str) -> str:
    return (PROMPTS_DIR / f"{task}.jinja").read_text(encoding="utf-8")


def task_file(task: str) -> dict:
    return yaml.safe_load((TASKS_DIR / f"{task}.yaml").read_text(encoding="utf-8"))


def hook(task: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mibe_test_hook_{task}", TASKS_DIR / f"{task}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def variables(source: str) -> set[str]:
    return set(re.findall(r"\{\{ (\w+) \}\}", source))


def template_pattern(task: str) -> re.Pattern:
    """The task's template as a regex whose variables match any text."""
    parts = re.split(r"\{\{ \w+ \}\}", template(task).replace(OPTIONS_LOOP, "{{ options }}\n"))
    return re.compile("(.+?)".join(re.escape(p) for p in parts), re.S)


# --- (a) templates ------------------------------------------------------------------------------


def test_the_transcription_has_the_ten_templates():
    assert sorted(published_templates()) == sorted(WITH_BLOCK)


@pytest.mark.parametrize("task", WITH_BLOCK)
def test_template_renders_the_published_text(task):
    block = published_templates()[task]
    names = set(re.findall(r"\{(\w+)\}", block))
    # MedQA's and MedMCQA's options are a list the template loops over; the loop prints what
    # `{{ options }}` and a newline printed of the `A. text` lines (tests/test_permutations.py).
    source = template(task).replace(OPTIONS_LOOP, "{{ options }}\n")
    assert variables(source) == names
    assert render(source, {n: "{" + n + "}" for n in names}) == block


@pytest.mark.parametrize("task", ["bionli", "i2b2_2010"])
def test_house_templates_follow_mednli_layout(task):
    out = render(template(task), {"text": "XYZ"})
    assert out.startswith("\nTASK: ")
    assert out.endswith(
        "\n###\nINPUT: XYZ\nOUTPUT:\n" if task == "bionli" else "\n###\nInput Text: XYZ\nOutput Text:\n"
    )
    assert "{" not in out


def test_mimic_cxr_keeps_its_trailing_indent():
    assert template("mimic_cxr").endswith("\n    OUTPUT:\n    ")
    assert template("mednli").startswith("\nTASK:")


# --- task files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_task_file(task):
    spec = task_file(task)
    judged = {"judge"} if task in ("pubmed_sum", "mimic_cxr") else set()  # the two summaries' rubrics
    clustered = {"cluster"} if task in CLUSTERS else set()
    assert set(spec) == {
        "name", "description", "dataset", "credentialed", "access", "template", "target",
        "answer", "truncate", "generation", "metrics", "version", *judged, *clustered,
    }  # fmt: skip
    assert spec.get("cluster") == CLUSTERS.get(task)  # tasks/README.md says why, and why not
    assert spec["name"] == task and re.fullmatch(r"[a-z0-9_]+", task)
    assert set(spec["dataset"]) == {"source", "split", "fewshot_split"}
    assert spec["dataset"]["split"] == "test"
    assert spec["credentialed"] is (task in CREDENTIALED)
    assert "--data-dir DIR or --data " in spec["access"]
    assert spec["template"] == task and (PROMPTS_DIR / f"{task}.jinja").is_file()
    assert spec["truncate"] in variables(template(task))
    assert spec["metrics"] == METRICS[task]
    assert spec["generation"] == GENERATION[task]
    assert spec["version"] == 1
    text = (TASKS_DIR / f"{task}.yaml").read_text()
    assert len(text.split("\njudge:")[0].splitlines()) <= 25  # short, apart from a judge rubric's prose
    assert (TASKS_DIR / f"{task}.py").is_file()  # every task reads its original release through a hook
    if task in CREDENTIALED:
        assert any(s in spec["access"] for s in ("physionet.org/content/", "portal.dbmi.hms"))
    choices = spec["answer"].get("choices")
    assert all(isinstance(c, str) for c in choices or [])


@pytest.mark.parametrize(
    ("task", "choices"),
    [
        ("pubmedqa", ["yes", "no", "maybe"]),
        ("medqa", ["A", "B", "C", "D", "E"]),
        ("medmcqa", ["A", "B", "C", "D"]),
        ("mednli", ["entailment", "contradiction", "neutral"]),
        ("bionli", ["entailment", "contradiction"]),
        ("ddi2013", ["DDI-effect", "DDI-mechanism", "DDI-advise", "DDI-false", "DDI-int"]),
    ],
)
def test_published_choice_order(task, choices):
    assert task_file(task)["answer"]["choices"] == choices


def test_mtsample_choices_are_the_prompt_list():
    listed = re.search(r"domains are: (.*?)\. The output", template("mtsample")).group(1)
    choices = task_file("mtsample")["answer"]["choices"]
    assert choices == re.findall(r"'([^']+)'", listed)
    assert len(choices) == 40 and choices[0] == "Surgery"


def test_hoc_choices_are_the_prompt_list():
    listed = re.search(r"Topics: (.*?)\. The output", template("hoc")).group(1)
    assert task_file("hoc")["answer"]["choices"] == listed.split(", ")
    assert task_file("hoc")["answer"]["choices"] == list(hook("hoc").PUBLISHED_ORDER)


# --- (b) the public samples through the hooks ---------------------------------------------------


@needs_public
@pytest.mark.parametrize("task", HOOKED)
def test_public_rows_through_hook(task):
    to_doc = hook(task).to_doc
    source = template(task)
    rows = jsonl(PUBLIC / f"{task}.jsonl")
    assert rows
    ids = set()
    for row in rows:
        release = {k: v for k, v in row.items() if not k.startswith("mibe_")}
        doc = to_doc(release)
        assert isinstance(doc, Doc), row["mibe_id"]
        if task == "hoc":
            assert isinstance(doc.gold, tuple)
            assert set(doc.gold) == set(row["mibe_gold"]), row["mibe_id"]
        else:
            assert doc.gold == row["mibe_gold"], row["mibe_id"]
        assert doc.invented is False
        prompt = render(source, doc.fields)
        assert "mibe_" not in prompt
        if task == "pubmedqa":
            assert row["LONG_ANSWER"] not in prompt
            assert "\n".join(row["CONTEXTS"]) in prompt and row["QUESTION"] in prompt
        ids.add(doc.id)
    assert len(ids) == len(rows)


# --- (c) demo documents -------------------------------------------------------------------------


def test_demo_readme_says_invented():
    assert "invented" in (DEMO_DIR / "README.md").read_text().lower()


@pytest.mark.parametrize("task", TASKS)
def test_demo_rows(task):
    rows = jsonl(DEMO_DIR / f"{task}.jsonl")
    assert len(rows) == 3
    spec = task_file(task)
    choices = spec["answer"].get("choices") or []
    for row in rows:
        assert row["invented"] is True
        assert not any(k.startswith("mibe_") for k in row)
        if task in HOOKED:
            assert "query" not in row
            doc = hook(task).to_doc(row)
            assert doc.invented is True
            prompt = render(template(task), doc.fields)
            gold = doc.gold if task == "hoc" else (doc.gold,)
            assert set(gold) <= set(choices)
        else:
            assert set(row) == {"id", "query", "answer", "choices", "gold", "invented"}
            prompt = row["query"]
            assert row["choices"] == choices
            if choices:
                assert row["choices"][row["gold"]] == row["answer"]
            else:
                assert row["gold"] == 0 and row["answer"].strip()
            assert template_pattern(task).fullmatch(prompt), row["id"]
        assert len(prompt.split()) < 600
    if task not in HOOKED:
        assert len({row["query"] for row in rows}) == 3


def test_demo_emrqa_answers_are_spans_of_the_context():
    for row in jsonl(DEMO_DIR / "emrqa.jsonl"):
        context = re.search(r"\nContext: (.*)\nQuestion ", row["query"], re.S).group(1)
        assert row["answer"] in context


def test_demo_i2b2_answers_tag_the_input_sentence():
    for row in jsonl(DEMO_DIR / "i2b2_2010.jsonl"):
        sentence = re.search(r"\nInput Text: (.*)\nOutput Text:\n$", row["query"]).group(1)
        tags = re.findall(r'<span class="(\w+)">', row["answer"])
        assert tags and set(tags) <= {"problem", "treatment", "test"}
        assert re.sub(r"</?span[^>]*>", "", row["answer"]) == sentence


# --- (d) MedQA filled by hand -------------------------------------------------------------------

MEDQA_HEAD = (
    "You are a medical doctor taking the US Medical Licensing Examination. You need to demonstrate"
    " your understanding of basic and clinical science, medical knowledge, and mechanisms"
    " underlying health, disease, patient care, and modes of therapy. Show your ability to apply"
    " the knowledge essential for medical practice. For the following multiple-choice question,"
    " select one correct answer from A to E. Base your answer on the current and standard"
    " practices referenced in medical guidelines.\n"
)


def test_medqa_by_hand_inline_row():
    row = {
        "realidx": 7,
        "question": "Which vitamin is fat soluble",
        "options": {"B": "Vitamin C", "A": "Vitamin D", "D": "Vitamin B1", "C": "Folate"},
        "answer_idx": "A",
    }
    doc = hook("medqa").to_doc(row)
    assert doc.id == "7" and doc.gold == "A"
    assert render(template("medqa"), doc.fields) == (
        MEDQA_HEAD + "Question: Which vitamin is fat soluble?\n\nOptions:\nA. Vitamin D\n"
        "B. Vitamin C\nC. Folate\nD. Vitamin B1\n\nThe answer is\n"
    )


@needs_public
def test_medqa_by_hand_public_row():
    row = jsonl(PUBLIC / "medqa.jsonl")[0]
    release = {k: v for k, v in row.items() if not k.startswith("mibe_")}
    question = row["question"]
    assert question.endswith("?")
    opts = row["options"]
    expected = (
        MEDQA_HEAD + f"Question: {question}\n\nOptions:\n"
        f"A. {opts['A']}\nB. {opts['B']}\nC. {opts['C']}\nD. {opts['D']}\n\nThe answer is\n"
    )
    assert published_templates()["medqa"].startswith(MEDQA_HEAD)
    assert render(template("medqa"), hook("medqa").to_doc(release).fields) == expected


# --- hook rules, table-driven -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "text"),
    [
        ("Which is it?", "Which is it?"),
        ("It is the following.", "It is the following."),
        ("Gait apraxia is seen in lesions of:", "Gait apraxia is seen in lesions of:?"),
        ("Drug of choice is", "Drug of choice is?"),
        ('He says "no"', 'He says "no"?'),
        ("Which one?\n ", "Which one?"),
    ],
)
@pytest.mark.parametrize("task", ["medqa", "medmcqa"])
def test_question_mark_rule(task, question, text):
    assert hook(task).question_text(question) == text


OPS = {"opa": "w", "opb": "x", "opc": "y", "opd": "z"}


@pytest.mark.parametrize(
    ("cop", "gold"),
    [(1, "A"), (2, "B"), (3, "C"), (4, "D"), ("4", "D"), ("c", "C"), ("B", "B"),
     (0, None), (5, None), (-1, None), (None, None), (True, None), ("", None), ("E", None)],
)  # fmt: skip
def test_medmcqa_cop_is_one_indexed(cop, gold):
    row = {"id": "u1", "question": "Q?", **OPS, "cop": cop}
    if gold is None:
        with pytest.raises(ValueError, match=r"^cop: "):
            hook("medmcqa").to_doc(row)
    else:
        doc = hook("medmcqa").to_doc(row)
        assert doc.gold == gold and doc.id == "u1"
        assert options_text(doc.fields["options"]) == "A. w\nB. x\nC. y\nD. z"


MQ = {"realidx": 1, "question": "Q?"}
HQ = {"pmid": "1", "text": "t"}
BAD_BIT = "0_2,1_0,2_0,3_0,4_0,5_0,6_0,7_0,8_0,9_0"


@pytest.mark.parametrize(
    ("task", "row", "field"),
    [
        ("medqa", {**MQ, "options": {"A": "a", "C": "c"}, "answer_idx": "A"}, "options"),
        ("medqa", {**MQ, "options": {"A": "a", "B": "b"}, "answer_idx": "F"}, "answer_idx"),
        ("medqa", {**MQ, "question": " ", "options": {"A": "a"}, "answer_idx": "A"}, "question"),
        ("medmcqa", {"id": "u", "question": "Q?"}, "options"),
        ("medmcqa", {"id": "u", "question": "Q?", **OPS}, "cop"),
        ("pubmedqa", {"pmid": "1", "QUESTION": "Q?", "CONTEXTS": ["c"]}, "final_decision"),
        ("pubmedqa", {"pmid": "1", "QUESTION": "Q?", "final_decision": "yes"}, "CONTEXTS"),
        ("pubmedqa", {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "yes"}, "pmid"),
        ("ddi2013", {"id": "d", "sentence": "no drugs here", "label": "DDI-false"}, "sentence"),
        ("ddi2013", {"id": "d", "sentence": "@DRUG$ and @DRUG$", "label": ""}, "label"),
        ("hoc", {**HQ, "sentence_labels": ["0_1,1_0"]}, "sentence_labels"),
        ("hoc", {**HQ, "sentence_labels": [BAD_BIT]}, "sentence_labels"),
        ("hoc", {**HQ, "labels": "cellular energetics;made up"}, "labels"),
        ("hoc", HQ, "sentence_labels"),
        ("mtsample", {"transcription": "t", "medical_specialty": " ", "row_index": 1}, "medical_specialty"),
    ],
)
def test_malformed_rows_raise(task, row, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        hook(task).to_doc(row)


def test_pubmedqa_json_key_and_string_contexts():
    row = {"__key__": "123", "QUESTION": "Q?", "CONTEXTS": "['first.', 'second.']",
           "final_decision": "maybe", "LONG_ANSWER": "SECRET"}  # fmt: skip
    doc = hook("pubmedqa").to_doc(row)
    assert doc.id == "123" and doc.gold == "maybe"
    assert doc.fields == {"context": "first.\nsecond.", "text": "Q?"}


@pytest.mark.parametrize(
    ("row", "gold"),
    [
        ({"sentence_labels": ["0_1,1_0,2_0,3_0,4_0,5_0,6_0,7_0,8_0,9_0",
                              "0_0,1_0,2_0,3_0,4_0,5_0,6_0,7_0,8_1,9_1"]},
         ("sustaining proliferative signaling", "activating invasion and metastasis",
          "tumor promoting inflammation")),
        ({"sentence_labels": ["0_0,1_1,2_1,3_1,4_1,5_1,6_1,7_1,8_0,9_0"]},
         ("evading growth suppressors", "resisting cell death", "enabling replicative immortality",
          "inducing angiogenesis", "genomic instability and mutation", "cellular energetics",
          "avoiding immune destruction")),
        ({"sentence_labels": []}, ()),
        ({"labels": "avoiding immune destruction;cellular energetics\n"},
         ("cellular energetics", "avoiding immune destruction")),
        ({"labels": ""}, ()),
    ],
)  # fmt: skip
def test_hoc_gold(row, gold):
    doc = hook("hoc").to_doc({"pmid": 9, "sentences": ["a .", "b ."], **row})
    assert doc.gold == gold and doc.id == "9" and doc.fields == {"text": "a . b ."}


@pytest.mark.parametrize(
    ("row", "result"),
    [
        ({"transcription": "", "medical_specialty": " Surgery", "row_index": 1}, None),
        ({"transcription": float("nan"), "medical_specialty": " Surgery", "row_index": 1}, None),
        ({"transcription": "t", "medical_specialty": " Surgery", "row_index": 4}, ("4", "Surgery")),
        ({"transcription": "t", "medical_specialty": "Urology", "": 5.0}, ("5", "Urology")),
        (
            {"transcription": "t", "medical_specialty": "Urology", "sample_name": " Cysto "},
            ("Cysto", "Urology"),
        ),
    ],
)
def test_mtsample_rows(row, result):
    doc = hook("mtsample").to_doc(row)
    if result is None:
        assert doc is None
    else:
        assert (doc.id, doc.gold) == result and doc.fields == {"text": "t"}
