"""The original release formats of mednli, i2b2_2010, emrqa, mimic_cxr, bionli and pubmed_sum.

Each is read by its hook (tasks/<task>.py) from an invented fixture laid out like the real release
(tests/fixtures/README.md), and scored end to end on the tiny LLaMA.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mibe import data, datacheck, prompts, tasks
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support.paths import REPO

FIX = REPO / "tests" / "fixtures"
MEDNLI = FIX / "mednli" / "mednli-a-natural-language-inference-dataset-for-the-clinical-domain-1.0.0"
REPORTS = FIX / "mimic_cxr" / "mimic-cxr-reports"
TYPES = ("problem", "treatment", "test", "drug")
SIX = ("mednli", "i2b2_2010", "emrqa", "mimic_cxr", "bionli", "pubmed_sum")
# task, path, usable documents, unusable rows, where the first unusable row is
CASES = [
    ("mednli", MEDNLI, 6, 0, None),
    ("bionli", FIX / "bionli", 6, 0, None),
    ("bionli", FIX / "bionli_json" / "test.json", 5, 0, None),
    ("i2b2_2010", FIX / "i2b2_2010", 21, 1, "test_data/0902.txt line 7: ValueError: reference_standard"),
    # The release is split by note (tasks/emrqa.py, by_note): note 0903 is the test part (its second
    # question unusable), note 0901's five questions the train part.
    ("emrqa", FIX / "emrqa" / "data.json", 1, 1, "data.json: obesity, note 0903, question 1"),
    ("mimic_cxr", REPORTS, 5, 3, "files/p10/p10999901/s50999912.txt: ValueError: no FINDINGS section"),
    ("mimic_cxr", FIX / "mimic_cxr" / "mimic_cxr_sectioned.csv", 3, 1, "row 2: ValueError: no FINDINGS"),
    ("pubmed_sum", FIX / "pubmed_sum" / "pubmed-dataset", 3, 2, "test.txt line 2: ValueError: article_text"),
]


def task(name: str):
    (t,), _ = tasks.resolve([name])
    return t


def load(name: str, path: Path, split: str | None = None) -> data.DocSet:
    t = task(name)
    return data.load_docs(t, data.locate(t, None, {name: str(path)}), split)


def hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hook_{name}", REPO / "tasks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("name", "path", "n", "skipped", "first"), CASES)
def test_fixture_loads(name, path, n, skipped, first):
    docset = load(name, path)
    assert (len(docset.docs), docset.n_skipped) == (n, skipped)
    assert docset.first_problem is None if first is None else docset.first_problem.startswith(first)
    assert all(d.invented and d.query is None for d in docset.docs)
    assert len({d.id for d in docset.docs}) == n
    assert load(name, path).fingerprint == docset.fingerprint
    for doc in docset.docs:
        prompt = prompts.render(task(name).template, doc.fields)
        assert task(name).truncate in doc.fields and doc.fields[task(name).truncate] in prompt


@pytest.mark.parametrize("name", SIX)
def test_published_rows_still_read_verbatim(name):
    docs = load(name, REPO / "tasks" / "demo" / f"{name}.jsonl").docs
    assert len(docs) == 3 and all(d.query is not None for d in docs)


@pytest.mark.parametrize(
    ("name", "path", "split", "n"),
    [
        ("mednli", MEDNLI, "train", 3),
        ("mednli", MEDNLI, "dev", 2),
        ("i2b2_2010", FIX / "i2b2_2010", "train", 8),  # beth + partners; unannotated/ is not read
        ("pubmed_sum", FIX / "pubmed_sum" / "pubmed-dataset", "train", 2),
        ("pubmed_sum", FIX / "pubmed_sum" / "pubmed-dataset", "dev", 1),  # val.txt
        ("bionli", FIX / "bionli", "train", 2),
    ],
)
def test_splits(name, path, split, n):
    assert len(load(name, path, split).docs) == n


def test_i2b2_folder_without_split_names_and_broken_files(tmp_path):
    (tmp_path / "a.txt").write_text("Pain in the chest .\n\nNo concept here .\nSecond half of it\n")
    (tmp_path / "a.con").write_text(
        'c="pain" 1:0 1:0||t="problem"\nc="half of it" 4:1 5:0||t="problem"\nnot a concept line\n'
    )
    (tmp_path / "b.txt").write_text("A note with no concept file .\n")
    rows = hook("i2b2_2010").read(tmp_path, "train")  # undivided: every split sees it all
    assert rows == hook("i2b2_2010").read(tmp_path, "test")
    docset = load("i2b2_2010", tmp_path)
    assert [d.id for d in docset.docs] == ["a:1", "a:3"]
    assert docset.docs[0].gold == '<span class="problem">Pain</span> in the chest .'
    # the bad .con line, the 4-5 concept's line 4 (line 5 does not exist), and b.txt
    assert docset.n_skipped == 3
    assert docset.first_problem.startswith("a.con line 3: ValueError: cannot parse 'not a concept line'")


T = {"start": 0, "end": 0, "type": "problem", "where": "x.con line 1"}


@pytest.mark.parametrize(
    ("text", "concepts", "gold"),
    [
        ("He has pain .", [{**T, "c": "pain", "start": 2, "end": 2}],
         'He has <span class="problem">pain</span> .'),
        ("Aspirin  daily", [{**T, "c": "aspirin", "type": "treatment"}],
         '<span class="treatment">Aspirin</span>  daily'),
        ("BP < 90 & HR", [{**T, "c": "bp", "type": "test"}], '<span class="test">BP</span> &lt; 90 &amp; HR'),
        ("a b", [{**T, "c": "a b", "end": 1}, {**T, "c": "A  B", "end": 1}],
         '<span class="problem">a b</span>'),
        ("No entity .", [], "No entity ."),
    ],
)  # fmt: skip
def test_i2b2_tag(text, concepts, gold):
    assert hook("i2b2_2010").tag(text, concepts) == gold


@pytest.mark.parametrize(
    ("text", "concepts", "error"),
    [
        ("a b c", [{**T, "c": "a b", "end": 1}, {**T, "c": "b c", "start": 1, "end": 2}], "overlap another"),
        ("a b", [{**T, "c": "a b", "end": 1, "type": "drug"}], "type 'drug' is not"),
        ("a b", [{**T, "c": "b c", "start": 1, "end": 2}], "outside the line's 2 tokens"),
        ("a b", [{**T, "c": "b"}], 'c="b" 0-0 does not match the text ("a")'),
        ("a b", [{**T, "c": "a b", "end": 1}, {**T, "c": "a b", "end": 1, "type": "test"}],
         "both problem and test"),
    ],
)  # fmt: skip
def test_i2b2_tag_refuses(text, concepts, error):
    with pytest.raises(ValueError, match=r"^x\.con line 1: ") as info:
        hook("i2b2_2010").tag(text, concepts)
    assert error in str(info.value)


@pytest.mark.parametrize(
    ("heading", "kind"),
    [
        ("FINDINGS", "findings"), ("Findings", "findings"), ("FINIDNGS", "findings"),
        ("PA AND LATERAL VIEWS OF THE CHEST", "findings"), ("IMPRESSION", "impression"),
        ("impression", "impression"), ("CONCLUSION", "impression"), ("IMPRESSON", "impression"),
        ("FINDINGS AND IMPRESSION", "impression"), ("FINDINGS/IMPRESSION", "impression"),
        ("INDICATION", "other"), ("WET READ", "other"), ("NOTIFICATION", "other"),
    ],
)  # fmt: skip
def test_mimic_section_kind(heading, kind):
    assert hook("mimic_cxr").section_kind(heading) == kind


@pytest.mark.parametrize(
    ("report", "found"),
    [
        (" FINDINGS:  Clear.\n IMPRESSION:  Normal.\n", {"findings": "Clear.", "impression": "Normal."}),
        (" FINDINGS:\n\n IMPRESSION:  Normal.\n", {"impression": "Normal."}),
        (" Findings: a\n  b\n Impression: c\n NOTIFICATION: d\n", {"findings": "a b", "impression": "c"}),
        (" FINDINGS: a\n Lungs: clear.\n", {"findings": "a Lungs: clear."}),  # unknown mixed case: text
        (" FINDINGS: old\n FINDINGS: new\n", {"findings": "new"}),  # the last one, as MIT-LCP's
        ("No headings at all.", {}),
    ],
)
def test_mimic_sections(report, found):
    assert hook("mimic_cxr").sections(report) == found


def test_mimic_split_list_picks_the_split(tmp_path):
    tree = tmp_path / "reports"
    shutil.copytree(REPORTS, tree)
    with gzip.open(tree / "mimic-cxr-2.0.0-split.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dicom_id", "study_id", "subject_id", "split"])
        writer.writerows([["d1", "50999911", "10999901", "test"], ["d2", "50999941", "11999904", "train"]])
        writer.writerow(["d3", "50999942", "11999904", "validate"])
    assert [d.id for d in load("mimic_cxr", tree).docs] == ["s50999911"]
    assert [d.id for d in load("mimic_cxr", tree, "train").docs] == ["s50999941"]
    assert [d.id for d in load("mimic_cxr", tree, "dev").docs] == ["s50999942"]


@pytest.mark.parametrize(
    ("label", "gold"),
    [(1, "entailment"), (0, "contradiction"), ("1", "entailment"), ("0", "contradiction"),
     (1.0, "entailment"), ("0.0", "contradiction"), (True, "entailment"), (False, "contradiction"),
     ("Entailment", "entailment"), ("contradiction", "contradiction"), ("pos", "entailment"),
     ("neg", "contradiction"), ("neutral", None), (2, None), ("", None)],
)  # fmt: skip
def test_bionli_label_map(label, gold):
    if gold is None:
        with pytest.raises(ValueError, match=r"^label: "):
            hook("bionli").label_of(label)
    else:
        assert hook("bionli").label_of(label) == gold


def test_bionli_rows_without_id_get_a_stable_one():
    row = {"supp_set": ["S one.", "S two."], "conclusion": "C.", "label": 1}
    doc = hook("bionli").to_doc(row)
    assert doc.fields == {"text": "[PRE] S one. S two. [HYP] C."} and doc.gold == "entailment"
    assert (
        doc.id == hook("bionli").to_doc(dict(row)).id != hook("bionli").to_doc({**row, "conclusion": "D."}).id
    )


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"sentence1": "p", "sentence2": "h", "pairID": "x"}, "gold_label"),
        ({"sentence1": "p", "sentence2": "h", "pairID": "x", "gold_label": "-"}, "gold_label"),
        ({"sentence1": " ", "sentence2": "h", "pairID": "x", "gold_label": "neutral"}, "sentence1"),
        ({"sentence1": "p", "sentence2": "h", "gold_label": "neutral"}, "pairID"),
    ],
)
def test_mednli_bad_rows(row, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        hook("mednli").to_doc(row)


def test_mednli_text_is_me_llamas():
    doc = hook("mednli").to_doc(
        {"sentence1": "P.", "sentence2": "H.", "gold_label": "Neutral", "pairID": "7"}
    )
    assert (doc.id, doc.fields, doc.gold) == ("7", {"text": "[PRE] P. [HYP] H."}, "neutral")


@pytest.mark.parametrize(
    ("span", "note", "found"),
    [
        ("lisinopril", "Takes Lisinopril daily", "Lisinopril"),
        ("81 mg daily", "Aspirin 81 mg\ndaily .", "81 mg\ndaily"),
        ("warfarin", "Takes Lisinopril daily", None),
        ("", "anything", None),
    ],
)
def test_emrqa_locate(span, note, found):
    assert hook("emrqa").locate(span, note) == found


def test_emrqa_folder_of_split_files_and_squad_shape(tmp_path):
    squad = {"data": [{"title": "t", "paragraphs": [{"context": "Takes Lisinopril daily.", "qas": [
        {"question": "What does the patient take?", "id": "q1",
         "answers": [{"text": "Lisinopril", "answer_start": 6}]}]}]}]}  # fmt: skip
    (tmp_path / "emrqa_test.json").write_text(json.dumps(squad))
    (tmp_path / "emrqa_train.json").write_text(json.dumps(squad))
    (tmp_path / "notes.json").write_text("[]")  # not emrQA: ignored
    doc = load("emrqa", tmp_path).docs[0]
    assert (doc.id, doc.gold, doc.fields["question"]) == (
        "t/0/0",
        "Lisinopril",
        "What does the patient take?",
    )
    assert len(load("emrqa", tmp_path, "train").docs) == 1
    assert hook("emrqa").read(tmp_path, "dev") == []


def test_pubmed_release_file_and_hub_export(tmp_path):
    docs = load("pubmed_sum", FIX / "pubmed_sum" / "pubmed-dataset" / "val.txt").docs
    assert [d.id for d in docs] == ["PMC9990011"] and "<S>" not in docs[0].gold
    export = {"id": "e1", "article": "first line .\nsecond line .", "abstract": "<S> a summary . </S>"}
    (tmp_path / "test.jsonl").write_text(json.dumps(export) + "\n")
    doc = load("pubmed_sum", tmp_path).docs[0]
    assert (doc.fields["text"], doc.gold) == ("first line . second line .", "a summary .")


RUN = {
    c[0]: c
    for c in CASES
    if c[1] not in (FIX / "bionli_json" / "test.json", FIX / "mimic_cxr" / "mimic_cxr_sectioned.csv")
}


@pytest.fixture(scope="module")
def scored(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("formats") / "run"
    paths = {name: str(case[1]) for name, case in RUN.items()}
    config = RunConfig(  # bare prompts: the check below reads the task templates' exact text
        model=str(tiny_llama), tasks=SIX, data=paths, output_dir=str(out), max_new_tokens=8, bootstrap=50,
        chat_template="none",
    )  # fmt: skip
    return api.run(config), out


@pytest.mark.slow
@pytest.mark.parametrize("name", SIX)
def test_scored_end_to_end(scored, name):
    results, out = scored
    _, path, n, skipped, first = RUN[name]
    entry = results["tasks"][name]
    assert (entry["n"], entry["n_skipped_rows"], entry["invented"]) == (n, skipped, True)
    assert (
        entry["first_skipped_row"] is None if first is None else entry["first_skipped_row"].startswith(first)
    )
    check = datacheck.check_task(task(name), None, {name: str(path)})
    assert entry["protocol"]["data"]["fingerprint"] == check.fingerprint
    assert set(entry["metrics"]) == set(task(name).metrics)
    samples = [json.loads(line) for line in (out / "samples" / f"{name}.jsonl").read_text().splitlines()]
    assert len(samples) == n and all(s["invented"] for s in samples)
    head = task(name).template.split("{{")[0]
    assert all(s["prompt"].startswith(head) for s in samples)
    if name == "i2b2_2010":
        assert sum('<span class="' in s["gold"] for s in samples) == 10
    if name == "pubmed_sum":  # the article is shortened inside the document, the instruction kept
        long = next(s for s in samples if s["id"] == "PMC9990004")
        assert long["truncated_tokens"] > 0 and long["prompt"].endswith("\nOutput:\n")


FIELDS = [
    "sentence1", "sentence2", "gold_label", "pairID", "premise", "hypothesis", "label", "supp_set",
    "conclusion", "label_cat", "id", "article_text", "abstract_text", "article", "abstract", "article_id",
    "report", "study_id", "study", "findings", "impression", "qa", "context", "text", "concepts",
    "__error__", "__where__",
]  # fmt: skip
QA = st.fixed_dictionaries(
    {
        "question": st.text(max_size=5),
        "answers": st.lists(
            st.dictionaries(
                st.sampled_from(["text", "evidence"]), st.one_of(st.text(max_size=5), st.lists(st.text()))
            )
        ),
    }
)
CONCEPT = st.fixed_dictionaries(
    {"c": st.text(max_size=5), "start": st.integers(-1, 4), "end": st.integers(-1, 4),
     "type": st.sampled_from(TYPES), "where": st.just("x")}
)  # fmt: skip
CELLS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["entailment", "neutral", "<S> a . </S>", " FINDINGS: a\n IMPRESSION: b", "pos"]),
    st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=3), QA, st.lists(CONCEPT, max_size=3),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SIX), st.lists(st.dictionaries(st.sampled_from(FIELDS), CELLS, max_size=8), max_size=5)
)
def test_hooks_turn_any_rows_into_docs_or_counted_skips(name, rows):
    t = task(name)
    docs, skipped, first = data.to_docs(t, rows, data.load_hook(t))
    assert len(docs) + skipped == len(rows) and (skipped == 0) == (first is None)
    assert all(d.gold in t.choices for d in docs) if t.choices else all(isinstance(d.gold, str) for d in docs)


def test_malformed_release_files_are_counted_or_one_line(tmp_path):
    qa = {"question": ["q"], "answers": [{"text": "A"}]}
    note = {"note_id": "n", "context": ["a b"], "qas": [qa]}
    broken = {"data": [{"title": "x", "paragraphs": "oops"}, {"title": "y", "paragraphs": [note]}]}
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    docset = load("emrqa", tmp_path / "bad.json")
    assert [d.gold for d in docset.docs] == ["a"] and docset.n_skipped == 1
    assert docset.first_problem == "bad.json: x: ValueError: paragraphs: expected a list of notes"
    tree = tmp_path / "reports"
    shutil.copytree(REPORTS, tree)
    (tree / "mimic-cxr-2.0.0-split.csv").write_text("dicom_id,study_id\nd1,50999911\n")
    with pytest.raises(MibeError, match="expected the columns study_id and split"):
        load("mimic_cxr", tree)
