"""`mibe data check`: per task, where its data comes from, documents, labels, unusable rows; no model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mibe import datacheck, tasks
from mibe.datacheck import TaskCheck
from tests.support.paths import PUBLIC, REPO, needs_public_data

FIX = REPO / "tests" / "fixtures"
MEDNLI_RELEASE = "mednli-a-natural-language-inference-dataset-for-the-clinical-domain-1.0.0"
PUBLIC_TASKS = ("pubmedqa", "medqa", "medmcqa", "ddi2013", "hoc", "mtsample")
OTHERS = {  # task -> what its "get it" line must name
    "mednli": "physionet.org/content/mednli",
    "mimic_cxr": "physionet.org/content/mimic-cxr",
    "emrqa": "github.com/panushri25/emrQA",
    "i2b2_2010": "portal.dbmi.hms.harvard.edu/projects/n2c2-nlp",
    "bionli": "github.com/StonyBrookNLP/BioNLI",
    "pubmed_sum": "github.com/armancohan/long-summarization",
}


def mibe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mibe.cli", "data", "check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def blocks(stdout: str) -> dict[str, list[str]]:
    """The report's lines grouped by task (a task's block starts at column 0)."""
    out: dict[str, list[str]] = {}
    for line in stdout.splitlines()[:-1]:
        if not line.startswith(" "):
            name = line.split()[0]
            out[name] = [line]
        else:
            out[name].append(line.strip())
    return out


def field(block: list[str], key: str) -> str:
    return next(line[len(key) + 2 :] for line in block if line.startswith(key + ": "))


def expected_labels(task: str) -> str:
    """The label line computed from the samples' own `mibe_gold`, in the task file's label order."""
    (t,), _ = tasks.resolve([task])
    rows = [json.loads(line) for line in (PUBLIC / f"{task}.jsonl").read_text().splitlines() if line]
    golds = [
        g for r in rows for g in (r["mibe_gold"] if isinstance(r["mibe_gold"], list) else [r["mibe_gold"]])
    ]
    counts = Counter(golds)
    parts = [f"{c} {counts[c]}" for c in t.choices if counts[c]]
    empty = sum(1 for r in rows if r["mibe_gold"] == [])
    return ", ".join(parts + ([f"(no label) {empty}"] if empty else []))


@pytest.mark.shared
@needs_public_data()
def test_public_samples_report():
    result = mibe("--data-dir", str(PUBLIC))
    assert result.returncode == 0, result.stderr
    report = blocks(result.stdout)
    assert sorted(report) == sorted([*PUBLIC_TASKS, *OTHERS])
    for task in PUBLIC_TASKS:
        block = report[task]
        assert block[0].split(None, 1)[1] == "found: 300 documents"
        assert field(block, "source") == str((PUBLIC / f"{task}.jsonl").resolve())
        assert field(block, "labels") == expected_labels(task)
        assert re.fullmatch(r"sha256:[0-9a-f]{16}", field(block, "fingerprint"))
        assert field(block, "unusable rows") == "0"
    for task, where in OTHERS.items():
        block = report[task]
        assert block[0].split(None, 1)[1] == "MISSING"
        assert f"nothing named {task}.* in {PUBLIC}" in field(block, "why")
        assert where in field(block, "get it")
    assert result.stdout.splitlines()[-1] == "6 of 12 tasks have usable data"


@pytest.mark.shared
@needs_public_data()
def test_named_task_without_data_exits_2_after_the_report():
    result = mibe("--data-dir", str(PUBLIC), "--tasks", "pubmedqa,mednli")
    assert result.returncode == 2
    assert set(blocks(result.stdout)) == {"pubmedqa", "mednli"}
    assert result.stderr.strip().splitlines() == [
        "mibe: error: no usable data for mednli (named in --tasks); see the report above"
    ]


def test_fixtures_through_data_flags():
    result = mibe(
        "--tasks", "i2b2_2010,mimic_cxr,emrqa",
        "--data", f"i2b2_2010={FIX / 'i2b2_2010'}",
        "--data", f"mimic_cxr={FIX / 'mimic_cxr' / 'mimic-cxr-reports'}",
        "--data", f"emrqa={FIX / 'emrqa' / 'data.json'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = blocks(result.stdout)
    assert report["i2b2_2010"][0].endswith("found: 21 documents (invented)")
    assert field(report["i2b2_2010"], "labels") == "problem 8, test 7, treatment 6, (no entity) 11"
    assert field(report["i2b2_2010"], "unusable rows").startswith("1; first: test_data/0902.txt line 7: ")
    assert field(report["mimic_cxr"], "unusable rows").startswith(
        "3; first: files/p10/p10999901/s50999912.txt: ValueError: no FINDINGS section"
    )
    assert field(report["emrqa"], "unusable rows").startswith("1; first: data.json: obesity")
    assert "labels" not in " ".join(report["emrqa"])  # free-text spans have no label distribution


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-dir", "/no/such/folder"], "--data-dir /no/such/folder: no such folder"),
        (["--tasks", "mednli", "--data", "mednil=x"], "--data mednil=...: no task named mednil"),
        (["--tasks", "mednli", "--data", "mednli"], "--data mednli: expected TASK=PATH"),
        (["--tasks", "mednli", "--data", "mednli=/no/such"], "no usable data for mednli"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    result = mibe(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_all_with_an_empty_folder_exits_2(tmp_path: Path):
    result = mibe("--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no task has usable data" in result.stderr
    assert result.stdout.splitlines()[-1] == "0 of 12 tasks have usable data"


def test_loads_no_model_and_no_torch():
    release = FIX / "mednli" / MEDNLI_RELEASE
    code = (
        "import sys; from mibe.cli import main; "
        f"rc = main(['data', 'check', '--tasks', 'mednli', '--data', 'mednli={release}']); "
        "print(rc, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 False False"


def test_exit_codes():
    found = TaskCheck("a", "/x", None, "get a", n_docs=3)
    missing = TaskCheck("b", None, "no data", "get b")
    assert datacheck.exit_code([found, missing], set()) == (0, None)
    assert datacheck.exit_code([found, missing], {"a"}) == (0, None)
    assert datacheck.exit_code([found, missing], {"b"})[0] == 2
    assert datacheck.exit_code([missing], set())[0] == 2


def test_render_names_the_unusable_and_the_missing():
    text = datacheck.render(
        [
            TaskCheck("a", "/x", None, "get a", n_docs=2, labels={"yes": 2}, fingerprint="sha256:0",
                      n_skipped=1, first_skipped="row 3: ValueError: label"),
            TaskCheck("bb", "/y", "bb: /y has no usable documents", "get bb from z"),
        ]
    )  # fmt: skip
    assert text.splitlines() == [
        "a   found: 2 documents",
        "    source: /x",
        "    labels: yes 2",
        "    fingerprint: sha256:0",
        "    unusable rows: 1; first: row 3: ValueError: label",
        "bb  NO USABLE DATA",
        "    source: /y",
        "    why: bb: /y has no usable documents",
        "    get it: get bb from z",
        "1 of 2 tasks have usable data",
    ]


def test_a_file_with_no_usable_row_is_named_with_its_first_problem(tmp_path: Path):
    bad = tmp_path / "mli_test_v1.jsonl"
    bad.write_text(json.dumps({"sentence1": "p", "sentence2": "h", "pairID": "1", "gold_label": "-"}) + "\n")
    result = mibe("--tasks", "mednli", "--data", f"mednli={bad}")
    assert result.returncode == 2
    block = blocks(result.stdout)["mednli"]
    assert block[0].endswith("NO USABLE DATA") and field(block, "source") == str(bad)
    assert "row 1: ValueError: gold_label: '-' is not entailment" in field(block, "why")


def test_a_template_no_row_can_render_is_no_usable_data(tmp_path: Path):
    # A run would stop at the first document; the check says so before any model is loaded.
    (tmp_path / "notes.jsonl").write_text(json.dumps({"id": "a", "text": "t", "label": "Surgery"}) + "\n")
    (tmp_path / "notes.yaml").write_text(
        "name: notes\ndataset: {source: notes.jsonl}\ntemplate: 'Note: {{ txt }}'\ntarget: label\n"
        "answer: {type: choice, choices: [Surgery, Cardiology]}\nmetrics: [accuracy]\n"
    )
    result = mibe("--tasks", str(tmp_path / "notes.yaml"))
    assert result.returncode == 2
    block = blocks(result.stdout)["notes"]
    assert block[0].endswith("NO USABLE DATA") and "'txt' is undefined" in field(block, "why")
