"""`mibe view`'s page: the pure parts (pairing, highlights, clipping, what credentialed tasks keep) and
the page in a real headless Chromium (Debian's `chromium`): filters, search, the confusion matrix,
the two-run differences, links to one document, paging, and outputs holding `<script>` that run nothing.

The runs are invented here: rows shaped like samples/<task>.jsonl, no model."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import markupsafe
import numpy as np
import pytest

from mibe.boards.pages import embed, inline
from mibe.boards.view import diff_runs, diff_task, render_view
from mibe.boards.view_data import PROMPT_LIMIT, ViewRun, clip, highlight, page_data
from mibe.scoring.kinds import parse
from mibe.types import MibeError
from tests.support.browser import CHROMIUM, needs_chromium

EVIL_OUTPUT = "No. <script>document.title='pwned'</script>"
EVIL_PROMPT = "Q </script><script>document.title='pwned2'</script> <!--<script> end"
EVIL_LABEL = "<script>document.body.setAttribute('data-pwned','1')</script>model"
TASKS = {
    "pubmedqa": {"answer_type": "choice", "choices": ["yes", "no", "maybe"], "credentialed": False},
    "medqa": {"answer_type": "letter", "choices": ["A", "B", "C", "D"], "credentialed": False},
    "emrqa": {"answer_type": "span", "choices": [], "credentialed": True},
    "mimic": {"answer_type": "text", "choices": [], "credentialed": True},
    "ddi": {
        "answer_type": "choice",
        "choices": ["DDI-effect", "DDI-mechanism", "DDI-false"],
        "credentialed": True,
    },
}


def row(i: int, doc: str, gold: Any, pred: Any, raw: str, score: float | None = None, **extra: Any) -> dict:
    return {
        "id": doc,
        "index": i,
        "prompt": extra.pop("prompt", f"Question {doc}: is it so?"),
        "raw_output": raw,
        "prediction": pred,
        "gold": gold,
        "score": float(pred == gold) if score is None else score,
        "parse_failed": pred is None or pred == "",
        "truncated_tokens": extra.pop("truncated_tokens", 0),
        "logprobs": None,
        **extra,
    }


LONG = "Background. " + "The cohort was followed for years. " * 400 + "Question: does it help?"
SAMPLES_A = {
    "pubmedqa": [
        row(0, "d0", "yes", "yes", "yes"),
        row(1, "d1", "yes", "no", "The answer is no."),
        row(2, "d2", "no", "no", EVIL_OUTPUT, prompt=EVIL_PROMPT),
        row(3, "d3", "maybe", None, "I cannot say"),
        row(4, "d4", "no", None, "   "),
        row(5, "d5", "yes", "yes", "Yes, because it helps.", truncated_tokens=12),
        row(6, "d6", "maybe", "maybe", "Perhaps: maybe.", prompt=LONG),
    ],
    "medqa": [
        row(0, "m0", "A", "A", "A"),
        row(1, "m1", "B", "C", "A 45-year-old man: the answer is C"),
        row(2, "m2", "D", "D", "(D)"),
    ],
    "emrqa": [
        row(0, "e0", "SECRET-GOLD-e0", "SECRET-PRED-e0", "SECRET-OUTPUT-e0", 1.0, prompt="SECRET-PROMPT-e0"),
        row(
            1, "e1", "SECRET-GOLD-e1", "SECRET-PRED-e1", "SECRET-OUTPUT-e1", 2 / 3, prompt="SECRET-PROMPT-e1"
        ),
    ],
    "mimic": [
        row(
            0, "c0", "SECRET-GOLD-c0", "SECRET-OUTPUT-c0", "SECRET-OUTPUT-c0", 0.4, prompt="SECRET-PROMPT-c0"
        ),
        row(
            1, "c1", "SECRET-GOLD-c1", "SECRET-OUTPUT-c1", "SECRET-OUTPUT-c1", 0.8, prompt="SECRET-PROMPT-c1"
        ),
    ],
    "ddi": [
        row(0, "k0", "DDI-effect", "DDI-effect", "DDI-effect", prompt="SECRET-PROMPT-k0"),
        row(1, "k1", "DDI-false", "DDI-effect", "SECRET-OUTPUT-k1 DDI-effect", prompt="SECRET-PROMPT-k1"),
    ],
}
# B: what changes against A, per task and id (everything else as in A).
CHANGES_B = {
    ("pubmedqa", "d0"): {"prediction": "no", "raw_output": "no", "score": 0.0},
    ("pubmedqa", "d3"): {"prediction": "yes", "raw_output": "yes", "score": 0.0},
    ("pubmedqa", "d1"): {"raw_output": "No, it is no."},  # same label, other words: not a difference
    ("medqa", "m1"): {"prediction": "B", "raw_output": "B", "score": 1.0},
    ("emrqa", "e0"): {"score": 0.5},
    ("emrqa", "e1"): {"score": 2 / 3 + 1e-12},  # floating-point noise: not a difference
    ("mimic", "c1"): {"score": 0.6},
    ("ddi", "k1"): {"prediction": "DDI-false", "score": 1.0},
}
DIFFERING = {
    ("pubmedqa", "d0"),
    ("pubmedqa", "d3"),
    ("medqa", "m1"),
    ("emrqa", "e0"),
    ("mimic", "c1"),
    ("ddi", "k1"),
}


def results(label: str, shots: int) -> dict:
    tasks = {}
    for task, rows in SAMPLES_A.items():
        scores = [r["score"] for r in rows]
        tasks[task] = {
            "protocol": {"task": task, "shots": shots if task == "medqa" else 0, "parser": "strict"},
            "metrics": {"accuracy": {"value": float(np.mean(scores)), "ci95": [0.1, 0.9]}},
            "n": len(rows),
            "parse_failures": sum(r["parse_failed"] for r in rows),
            "truncated": 0,
        }
    return {"model": {"name": label}, "tasks": tasks}


def run_a(label: str = "model-a") -> ViewRun:
    return ViewRun(label, results(label, 0), SAMPLES_A, TASKS)


def run_b() -> ViewRun:
    samples = {t: [{**r, **CHANGES_B.get((t, r["id"]), {})} for r in rows] for t, rows in SAMPLES_A.items()}
    samples["pubmedqa"] = [*samples["pubmedqa"], row(7, "d7", "yes", "no", "no")]  # only in B: not paired
    return ViewRun("model-b", results("model-b", 1), samples, TASKS)


# --------------------------------------------------------------------------------------------------
# Pure parts


@pytest.mark.parametrize(
    ("raw", "answer_type", "prediction", "marked"),
    [
        ("The answer is no.", "choice", "no", ["no"]),
        ("I know it: NO", "choice", "no", ["NO"]),  # case-insensitive, and "know" is not the word "no"
        ("nothing", "choice", "no", ["no"]),  # no word occurrence: the first substring
        ("A 45-year-old man: the answer is C", "letter", "C", ["C"]),
        ("Cells are round; (c) it is", "letter", "C", ["c"]),  # a letter only as a word
        ("yes", "choice", None, []),
        ("missing", "choice", "missing", ["missing"]),  # a label that reads "missing" is a label
        (
            "resisting cell death and sustained angiogenesis",
            "multi_label",
            ["angiogenesis", "cell death"],
            ["cell death", "angiogenesis"],
        ),
        ("Aspirin 81 mg daily", "span", "81 mg", ["81 mg"]),
        ("Aspirin", "span", "", []),
        ("  A whole summary.\n", "text", "A whole summary.", []),  # the whole output: nothing to mark
    ],
)
def test_highlight_marks_the_first_occurrence_of_the_prediction(
    raw: str, answer_type: str, prediction: Any, marked: list[str]
) -> None:
    assert [raw[s:e] for s, e in highlight(raw, answer_type, prediction)] == marked


@pytest.mark.parametrize(
    ("text", "limit", "marks", "expected"),
    [
        ("short", 10, [], "short"),
        ("the answer is no", 100, [(14, 16)], ["the answer is ", ["no"]]),
        ("abcdefghij", 4, [], ["ab", 6, "ij"]),
        ("abcdefghij", 4, [(1, 3)], ["a", ["b"], 6, "ij"]),  # a mark cut at the edge keeps its kept part
        ("abcdefghij", 4, [(4, 6)], ["ab", 6, "ij"]),  # a mark inside the cut is cut with it
        ("ab😀defghij", 4, [], ["ab", 6, "ij"]),  # characters, not bytes or UTF-16 units
    ],
)
def test_clip_keeps_head_and_tail_with_the_count_cut(
    text: str, limit: int, marks: list, expected: Any
) -> None:
    assert clip(text, limit, marks) == expected


def test_long_prompts_are_cut_to_the_limit() -> None:
    data = page_data([run_a()], [], show=False)
    prompt = data["prompts"][next(r["prompt"] for r in data["rows"] if r["id"] == "d6")]
    head, cut, tail = prompt
    assert len(head) + len(tail) == PROMPT_LIMIT and cut == len(LONG) - PROMPT_LIMIT
    assert LONG.startswith(head) and LONG.endswith(tail)


def test_both_parsers_read_the_output_at_render_time() -> None:
    m1 = next(r for r in page_data([run_a()], [], show=False)["rows"] if r["id"] == "m1")
    raw = SAMPLES_A["medqa"][1]["raw_output"]
    assert (
        m1["paper_reading"] == parse(raw, "letter", ("A", "B", "C", "D"), "paper").value == "A"
    )  # "A 45-year-old"
    assert m1["strict_reading"] == parse(raw, "letter", ("A", "B", "C", "D"), "strict").value == "C"
    d3 = next(r for r in page_data([run_a()], [], show=False)["rows"] if r["id"] == "d3")  # "I cannot say"
    assert (
        d3["paper_reading"] == "no" and d3["strict_reading"] == "(no answer) (parse failure)"
    )  # strict: no label named


def test_two_runs_differ_on_exactly_the_documents_that_changed() -> None:
    diffs = diff_runs(run_a(), run_b())
    assert {(d.task, i) for d in diffs for i in d.differing} == DIFFERING
    pub = next(d for d in diffs if d.task == "pubmedqa")
    assert pub.shared == 7  # d7 is only in B


def test_runs_not_read_from_folders_are_paired_but_not_tested() -> None:
    # The paired tests are `mibe compare`'s, on the run folders (tests/boards/test_surfaces.py checks that the
    # page shows compare's p-values); runs built in memory get the pairing and no test.
    d = diff_task("pubmedqa", "choice", SAMPLES_A["pubmedqa"], run_b().samples["pubmedqa"])
    assert d.shared == 7 and d.tested is None and d.metric is None
    page = render_view([run_a(), run_b()])
    assert "read from folders only" in page and "bootstrap p (raw)" in page


def test_runs_with_no_shared_document_are_refused_in_one_line() -> None:
    other = ViewRun("other", {"tasks": {}}, {"pubmedqa": [row(0, "zz", "yes", "yes", "yes")]}, TASKS)
    with pytest.raises(MibeError, match=r"^other: shares no document with model-a") as info:
        render_view([run_a(), other])
    assert "\n" not in str(info.value)


def test_protocol_differences_are_shown_not_refused() -> None:
    text = render_view([run_a(), run_b()])
    block = re.search(r'<div class="warn" id="protocol-differences">(.*?)</div>', text, re.S)
    assert block and "medqa: shots: A 0, B 1" in block.group(1)
    assert "pubmedqa:" not in block.group(1)


@pytest.mark.parametrize("secret", ["SECRET-PROMPT", "SECRET-OUTPUT", "SECRET-GOLD", "SECRET-PRED"])
def test_credentialed_text_is_absent_from_the_file_by_default(secret: str) -> None:
    for runs in ([run_a()], [run_a(), run_b()]):
        text = render_view(runs)
        assert secret not in text
        assert secret in render_view(runs, show_credentialed=True)


def test_credentialed_label_tasks_keep_ids_scores_and_labels_only() -> None:
    rows = {r["id"]: r for r in page_data([run_a()], [], show=False)["rows"]}
    k1 = {
        "run": 0,
        "task": "ddi",
        "id": "k1",
        "score": 0.0,
        "index": 1,
        "predicted_labels": ["DDI-effect"],
        "gold_labels": ["DDI-false"],
        "withheld": 1,
    }
    assert rows["k1"] == k1
    c0 = {"run": 0, "task": "mimic", "id": "c0", "score": 0.4, "index": 0, "withheld": 1}
    assert rows["c0"] == c0  # a text task: no prediction, no gold
    assert rows["d1"]["prompt"] is not None and "withheld" not in rows["d1"]


def test_show_credentialed_says_so_in_a_banner() -> None:
    assert "This page holds credentialed text" in render_view([run_a()], show_credentialed=True)
    default = render_view([run_a()])
    assert "This page holds credentialed text" not in default and 'id="credentialed"' in default


def test_the_script_reads_the_words_the_data_holds() -> None:
    """The page data's keys are spelled out, the same in view_data.py and templates/view.js: each key
    a row may hold is read by the script, and the script reads no key a row never holds."""
    extra = row(9, "z9", "yes", "yes", "yes", reasoning="r", answer_text="a", reasoning_truncated=True)
    samples = {**SAMPLES_A, "pubmedqa": [*SAMPLES_A["pubmedqa"], {**extra, "logprobs": [-0.1, -2.0, -3.0]}]}
    runs = [ViewRun("m", results("m", 0), samples, TASKS), run_b()]
    data = page_data(runs, [], show=False)  # withheld: the credentialed tasks' rows
    held = {key for show in (False, True) for r in page_data(runs, [], show)["rows"] for key in r}
    script = inline("view.js")
    read = set(re.findall(r"\br\.([a-z_]+)", script)) - {"_h"}  # _h: the script's own search cache
    assert held - {"index"} == read  # the index orders the rows in Python; the script never reads it
    assert all(len(key) > 2 for key in (held | read) - {"id"})  # words, not pf, tr, pl, ...
    assert {key for t in data["tasks"].values() for key in t} == {"answer_type", "choices", "credentialed"}


def test_embedded_json_cannot_end_its_script_element() -> None:
    payload = {"x": "</script><!--<script>\u2028\u2029"}
    text = embed(payload)
    assert "<" not in text and "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == payload


def test_page_is_self_contained_and_untrusted_text_is_escaped() -> None:
    text = render_view([run_a(EVIL_LABEL), run_b()], show_credentialed=True)
    for fetch in (" src=", "@import", "url(", "http://", "https://", "<link"):
        assert fetch not in text, fetch
    assert EVIL_OUTPUT not in text and EVIL_LABEL not in text and "pwned2'</script>" not in text
    assert text.count("<script") == 2  # the data block and ours


# --------------------------------------------------------------------------------------------------
# In the browser


def browse(url: str, *args: str) -> str:
    profile = tempfile.mkdtemp(prefix="mibe-chromium-")  # a fresh profile every time
    try:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-2000:]
    return result.stdout


# What a test does on the page: steps (JS) run after the page's own script; each records
# `out[name]`, then the page holds `out` as JSON in <pre id="test-out">.
HELPERS = """
function visible(id){return Array.from(document.querySelectorAll('#'+id+' tbody tr.row'))
  .map(function(tr){return tr.dataset.task+'/'+tr.dataset.id+(tr.dataset.run==='1'?'@B':'');});}
function set(id,v){var e=document.getElementById(id);e.value=v;e.dispatchEvent(new Event('change'));}
function reset(){document.getElementById('reset').click();}
function press(el,key){el.dispatchEvent(new KeyboardEvent('keydown',{key:key,bubbles:true}));}
var out={};
function done(){var p=document.createElement('pre');p.id='test-out';p.textContent=JSON.stringify(out);
  document.body.appendChild(p);}
"""


def run_page(tmp: Path, text: str, steps: str, fragment: str = "") -> dict:
    path = tmp / f"page-{abs(hash(steps + fragment))}.html"
    path.write_text(text.replace("</body>", f"<script>{HELPERS}{steps}</script></body>"), encoding="utf-8")
    dumped = browse(path.as_uri() + fragment)
    found = re.search(r'<pre id="test-out">(.*?)</pre>', dumped, re.S)
    assert found, dumped[-3000:]
    return {**json.loads(html.unescape(found.group(1))), "_dom": dumped}


def ids(task_rows: dict[str, list[dict]], keep: Any) -> list[str]:
    return [f"{t}/{r['id']}" for t, rows in task_rows.items() for r in sorted(rows, key=lambda r: r["index"])
            if keep(t, r)]  # fmt: skip


SINGLE_STEPS = """
out.initial=visible('rows');
set('f-outcome','wrong');out.wrong=visible('rows');reset();
set('f-task','pubmedqa');set('f-pf','yes');out.pf=visible('rows');reset();
set('f-tr','yes');out.truncated=visible('rows');reset();
set('f-em','yes');out.empty=visible('rows');reset();
set('f-gold','maybe');out.gold=visible('rows');reset();
set('f-pred','DDI-effect');out.pred=visible('rows');reset();
set('f-outcome','wrong');out.csv=window.mibeView.csv();reset();
var cell=document.querySelector('td.cm[data-task="pubmedqa"][data-gold="yes"][data-pred="no"]');
cell.click();out.cm_yes_no=visible('rows');reset();
cell=document.querySelector('td.cm[data-task="pubmedqa"][data-gold="maybe"][data-pf="yes"]');
press(cell,'Enter');out.cm_enter=visible('rows');out.cm_focus=document.activeElement.dataset.id;reset();
var tr=document.querySelector('#rows tbody tr.row[data-id="m1"]');press(tr,'Enter');
out.expanded=tr.getAttribute('aria-expanded');var more=tr.nextElementSibling;
out.parsers=more.querySelector('dd:nth-of-type(5)')?more.textContent:'';
out.marks=Array.from(more.querySelectorAll('mark')).map(function(m){return m.textContent;});
var q=document.getElementById('f-q');q.value='cannot SAY';q.dispatchEvent(new Event('input'));
setTimeout(function(){out.search=visible('rows');
  q.value='QUESTION d5';q.dispatchEvent(new Event('input'));
  setTimeout(function(){out.search_prompt=visible('rows');out.title=document.title;done();},400);},400);
"""


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_page(tmp_path_factory.mktemp("view"), render_view([run_a()]), SINGLE_STEPS)


@needs_chromium
def test_filters_change_the_visible_rows(single: dict) -> None:
    everything = ids(SAMPLES_A, lambda t, r: True)
    assert single["initial"] == everything
    assert single["wrong"] == ids(SAMPLES_A, lambda t, r: r["score"] < 1)
    assert single["pf"] == ["pubmedqa/d3", "pubmedqa/d4"]
    assert single["truncated"] == ["pubmedqa/d5"]
    assert single["empty"] == ["pubmedqa/d4"]
    assert single["gold"] == ["pubmedqa/d3", "pubmedqa/d6"]
    assert single["pred"] == ["ddi/k0", "ddi/k1"]


@needs_chromium
def test_search_finds_outputs_and_prompts_in_any_case(single: dict) -> None:
    assert single["search"] == ["pubmedqa/d3"]
    assert single["search_prompt"] == ["pubmedqa/d5"]


@needs_chromium
def test_a_confusion_matrix_cell_lists_its_documents(single: dict) -> None:
    assert single["cm_yes_no"] == ["pubmedqa/d1"]
    assert single["cm_enter"] == ["pubmedqa/d3"]  # by keyboard too, and the first row takes the focus
    assert single["cm_focus"] == "d3"


@needs_chromium
def test_enter_expands_a_row_with_both_parsers_and_the_highlight(single: dict) -> None:
    assert single["expanded"] == "true"
    assert "paper: A  ·  strict: C" in single["parsers"]
    assert single["marks"] == ["C"]


@needs_chromium
def test_export_holds_the_filtered_ids(single: dict) -> None:
    lines = single["csv"].strip().split("\r\n")
    assert lines[0] == "run,task,id"
    assert [line.split(",", 1)[1] for line in lines[1:]] == [
        x.replace("/", ",") for x in ids(SAMPLES_A, lambda t, r: r["score"] < 1)
    ]


@needs_chromium
def test_a_script_in_a_model_output_stays_text(tmp_path: Path) -> None:
    steps = (
        "out.title=document.title;out.detail=document.querySelector('#rows td.detail').textContent;done();"
    )
    got = run_page(tmp_path, render_view([run_a(EVIL_LABEL)]), steps, "#doc=pubmedqa/d2")
    assert got["title"] == f"mibe view: {EVIL_LABEL}"  # the label as text; the output's script never ran
    assert EVIL_OUTPUT in got["detail"] and EVIL_PROMPT in got["detail"]  # shown as text
    assert "data-pwned" not in got["_dom"].split("<body", 1)[1].split(">", 1)[0]
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in got["_dom"]


@needs_chromium
def test_a_link_opens_one_document_and_a_credentialed_one_has_no_text(tmp_path: Path) -> None:
    steps = (
        "out.rows=visible('rows');out.open=document.querySelectorAll('#rows td.detail').length;"
        "out.text=document.querySelector('#rows td.detail').textContent;done();"
    )
    got = run_page(tmp_path, render_view([run_a()]), steps, "#doc=ddi/k1")
    assert got["rows"] == ["ddi/k1"] and got["open"] == 1
    assert "written without its text" in got["text"] and "DDI-false" in got["text"]
    assert "SECRET" not in got["_dom"]


@needs_chromium
def test_two_runs_list_exactly_the_differing_documents(tmp_path: Path) -> None:
    steps = """
    out.diffs=visible('diffs');set('d-task','medqa');out.medqa=visible('diffs');
    var tr=document.querySelector('#diffs tbody tr.row');tr.click();
    out.side=Array.from(tr.nextElementSibling.querySelectorAll('.pair > div')).length;
    set('f-run','1');out.run_b=visible('rows');done();
    """
    got = run_page(tmp_path, render_view([run_a(), run_b()]), steps)
    expected = [f"{t}/{r['id']}" for t, rows in SAMPLES_A.items() for r in rows if (t, r["id"]) in DIFFERING]
    assert got["diffs"] == expected
    assert got["medqa"] == ["medqa/m1"] and got["side"] == 2
    assert len(got["run_b"]) == sum(len(v) for v in SAMPLES_A.values()) + 1
    assert all(x.endswith("@B") for x in got["run_b"])


@needs_chromium
def test_thousands_of_samples_are_drawn_a_page_at_a_time(tmp_path: Path) -> None:
    many = [row(i, f"n{i}", "yes", "yes" if i % 3 else "no", "yes" if i % 3 else "no") for i in range(2500)]
    run = ViewRun("big", {"tasks": {}}, {"pubmedqa": many}, TASKS)
    steps = """
    out.first=visible('rows');document.getElementById('p-next').click();out.second=visible('rows');
    out.count=document.getElementById('rows').dataset.count;set('f-outcome','wrong');
    out.wrong=document.getElementById('rows').dataset.count;out.in_dom=document.querySelectorAll('tr.row').length;
    done();
    """
    got = run_page(tmp_path, render_view([run]), steps)
    assert got["first"] == [f"pubmedqa/n{i}" for i in range(100)]
    assert got["second"] == [f"pubmedqa/n{i}" for i in range(100, 200)]
    assert got["count"] == "2500" and got["wrong"] == str(sum(1 for i in range(2500) if i % 3 == 0))
    assert got["in_dom"] == 100


def test_a_prediction_that_is_the_whole_output_is_stored_once() -> None:
    rows = {r["id"]: r for r in page_data([run_a()], [], show=True)["rows"]}
    c0, e0 = rows["c0"], rows["e0"]
    assert c0["prediction_is_output"] == 1 and "prediction" not in c0 and c0["output"] == "SECRET-OUTPUT-c0"
    assert e0["prediction"] == "SECRET-PRED-e0" and "prediction_is_output" not in e0


@needs_chromium
def test_the_export_never_holds_a_formula(tmp_path: Path) -> None:
    # A model name and document ids from someone else's data, read by a spreadsheet: text, not formulas.
    names = ['=HYPERLINK("http://x")', "@SUM(1)", "-2+3", "d3"]
    evil = {"pubmedqa": [row(i, name, "yes", "no", "no") for i, name in enumerate(names)]}
    run = ViewRun("+cmd|' /C calc'!A0", results("m", 0), evil, {"pubmedqa": TASKS["pubmedqa"]})
    got = run_page(tmp_path, render_view([run]), "out.csv=window.mibeView.csv();done();")
    lines = got["csv"].strip().split("\r\n")
    assert lines[1:] == [
        '\'+cmd|\' /C calc\'!A0,pubmedqa,"\'=HYPERLINK(""http://x"")"',
        "'+cmd|' /C calc'!A0,pubmedqa,'@SUM(1)",
        "'+cmd|' /C calc'!A0,pubmedqa,'-2+3",
        "'+cmd|' /C calc'!A0,pubmedqa,d3",
    ]


def test_a_metric_without_a_value_says_why() -> None:
    run = run_a()
    why = "BERTScore model 'bert' unavailable: OSError: offline; give --bertscore-model PATH"
    run.results["tasks"]["mimic"]["metrics"]["bertscore_f1"] = {
        "value": None,
        "ci95": None,
        "unavailable": why,
    }
    page = render_view([run])
    assert "bertscore_f1 <b>—</b>" in page and f"unavailable: {markupsafe.escape(why)}" in page
