"""The contamination matcher (mibe/matcher.py) and `mibe data contamination`: normalisation, the
fields each document offers, a planted corpus counted exactly, parallel parts, resume from --state,
merging an engine's part results, and credentialed reports (ids and line numbers only, owner-only).
No model is loaded."""

from __future__ import annotations

import gzip
import json
import shutil
import stat
from pathlib import Path

import pytest

from mibe import cli, corpusscan, data, matcher, resources, tasks
from mibe.types import MibeError
from tests.support.paths import REPO

DEMO = resources.demo_dir()
TASKS = "pubmedqa,bionli,medqa,mednli,medmcqa"


def demo_docs(name: str) -> dict[str, object]:
    task = tasks.load_task(tasks.builtin_paths()[name])
    return {d.id: d for d in data.load_docs(task, data.locate(task, str(DEMO), {})).docs}


def field(name: str, doc_id: str, key: str) -> str:
    task = tasks.load_task(tasks.builtin_paths()[name])
    doc = demo_docs(name)[doc_id]
    return matcher.eval_doc(task, doc, data.load_hook(task)).fields[key]


# ------------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Is primary angioplasty acceptable?", "is PRIMARY angioplasty acceptable"),  # case
        ("Is primary angioplasty, acceptable?!", "Is primary angioplasty acceptable"),  # punctuation
        ("Is\u00a0primary angioplasty\u00a0acceptable", "Is primary angioplasty acceptable"),  # NBSP
        ("Ｉｓ ｐｒｉｍａｒｙ angioplasty acceptable？", "Is primary angioplasty acceptable"),  # full-width
        ("Is  primary\tangioplasty\n acceptable", "Is primary angioplasty acceptable"),  # whitespace
        ("Straße", "STRASSE"),  # case folding, not lower-casing
    ],
)  # fmt: skip
def test_normalisation_makes_these_equal(a: str, b: str) -> None:
    assert matcher.normalise(a) == matcher.normalise(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Is primary angioplasty acceptable", "Is primary angioplasty acceptables"),
        ("a beta blocker", "abeta blocker"),  # words never merge
        ("5 mg", "50 mg"),
    ],
)
def test_normalisation_keeps_these_apart(a: str, b: str) -> None:
    assert matcher.normalise(a) != matcher.normalise(b)


# ------------------------------------------------------------------------------ fields


def test_nli_documents_offer_premise_and_hypothesis_apart() -> None:
    hypothesis = field("bionli", "demo-bionli-1", "query line 4 hypothesis")
    assert hypothesis == "A low-salt diet lowered systolic blood pressure in adults with mild hypertension."
    assert field("bionli", "demo-bionli-1", "query line 4 premise").startswith("In this invented trial")


def test_published_rows_offer_their_query_lines_without_the_template_text(tmp_path: Path) -> None:
    task = tasks.load_task(tasks.builtin_paths()["pubmedqa"])
    doc = next(iter(demo_docs("pubmedqa").values()))
    query = (
        "As an expert doctor in clinical science and medical knowledge, can you tell me if the following "
        f"statement is correct? Answer yes, no, or maybe.\n{doc.fields['context']}\n{doc.fields['text']}\n"
        "The answer is:"
    )
    rows = tmp_path / "pubmedqa.jsonl"
    rows.write_text(
        json.dumps(
            {"id": "p1", "query": query, "answer": "yes", "choices": ["yes", "no", "maybe"], "gold": 0}
        )
    )
    (published,) = data.load_docs(task, data.Location("local", str(rows))).docs
    seen = matcher.eval_doc(task, published)
    assert seen.published and seen.golds == ("yes",)
    assert list(seen.fields.values()) == [
        matcher.normalise(line) for line in doc.fields["context"].split("\n")
    ] + [matcher.normalise(doc.fields["text"])]


def test_match_fields_in_a_task_file_choose_the_fields(tmp_path: Path) -> None:
    row = {"id": "n1", "note": "A very distinctive invented note text here.", "title": "Title words one two"}
    (tmp_path / "notes.jsonl").write_text(json.dumps({**row, "label": "a"}) + "\n")
    spec = "name: notes\ndataset: {source: notes.jsonl}\ntemplate: '{{ title }}: {{ note }}'\ntarget: label\n"
    spec += "answer: {type: choice, choices: [a, b]}\nmetrics: [accuracy]\n"
    (tmp_path / "notes.yaml").write_text(spec)
    before = tasks.load_task(tmp_path / "notes.yaml").file_hash
    (tmp_path / "notes.yaml").write_text(spec + "match_fields:\n  - note\n")
    task = tasks.load_task(tmp_path / "notes.yaml")
    assert task.file_hash == before  # what the matcher compares changes no score and no column
    (doc,) = data.load_docs(task, data.locate(task, None, {})).docs
    assert dict(matcher.eval_doc(task, doc).fields) == {"note": "A very distinctive invented note text here."}
    (tmp_path / "notes.yaml").write_text(spec + "match_fields: [body]\n")
    with pytest.raises(
        MibeError, match=r"notes.yaml: field 'match_fields': document n1 has no text field 'body' \(has"
    ):
        matcher.eval_doc(tasks.load_task(tmp_path / "notes.yaml"), doc)
    (tmp_path / "notes.yaml").write_text(spec + "match_fields: note\n")
    with pytest.raises(MibeError, match="field 'match_fields': a list of document field names"):
        tasks.load_task(tmp_path / "notes.yaml")


# ------------------------------------------------------------------------------ a planted corpus

INVENTED = [
    "An invented line about the weather in a small town that nobody has visited.",
    "Another invented sentence: the committee met on a Tuesday and agreed on nothing at all.",
    "Short line.",
]


def planted(tmp_path: Path) -> tuple[Path, dict[str, dict[str, int]]]:
    """A corpus of invented lines plus known fields of fixture documents; the counts it must give."""
    pubmedqa, medqa = demo_docs("pubmedqa"), demo_docs("medqa")
    q1, q2 = pubmedqa["demo-pubmedqa-1"].fields["text"], pubmedqa["demo-pubmedqa-2"].fields["text"]
    stem = medqa["demo-medqa-1"].fields["text"].split()
    hypothesis = field("bionli", "demo-bionli-2", "query line 4 hypothesis")
    premise = field("mednli", "demo-mednli-1", "query line 4 premise")
    rows = [
        {"text": INVENTED[0]},
        # line 2: the short PubMedQA question with its gold answer in the next turn
        {"conversations": [{"from": "human", "value": q1.upper()}, {"from": "gpt", "value": "Yes."}]},
        {"text": INVENTED[1]},
        # line 4: the other question alone, full-width and with NBSPs
        {"text": "Ｑ: " + q2.replace(" ", "\u00a0")},
        # line 5: a 14-word run of a MedQA stem inside other text
        {"text": "We once read that " + " ".join(stem[3:17]) + " and then stopped reading."},
        # line 6: an NLI hypothesis (10 words) as a sentence of a longer text
        {"text": f"Background first. {hypothesis} Then more invented words follow here."},
        # line 7: a MedNLI premise (credentialed) on its own line
        {"instruction": "Rewrite.", "input": "Some text\n" + premise, "output": "done"},
        # line 8: the PubMedQA instruction, which every prompt shares, is boilerplate
        {"text": "As an expert doctor in clinical science and medical knowledge, can you tell me if the "
                 "following statement is correct? Answer yes, no, or maybe."},
        # line 9: four words of a question are below the five-word field
        {"text": " ".join(q1.split()[:4])},
        {"text": INVENTED[2]},
    ]  # fmt: skip
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    expected = {
        "pubmedqa": {"touched": 2, "question + answer": 1, "exact field": 1, "n-gram run": 0},
        "medqa": {"touched": 1, "question + answer": 0, "exact field": 0, "n-gram run": 1},
        "bionli": {"touched": 1, "question + answer": 0, "exact field": 1, "n-gram run": 0},
        "mednli": {"touched": 1, "question + answer": 0, "exact field": 1, "n-gram run": 0},
        "medmcqa": {"touched": 0, "question + answer": 0, "exact field": 0, "n-gram run": 0},
    }
    return path, expected


def scan(*args: str) -> int:
    return cli.main(["data", "contamination", *args])


def summary(report: dict) -> dict[str, dict[str, int]]:
    return {t: {"touched": e["touched"], **e["by_evidence"]} for t, e in report["tasks"].items()}


def test_a_planted_corpus_gives_exactly_the_planted_counts(tmp_path: Path) -> None:
    corpus, expected = planted(tmp_path)
    out = tmp_path / "report.json"
    assert scan(str(corpus), "--tasks", TASKS, "--demo", "-o", str(out)) == 0
    report = json.loads(out.read_text())
    assert summary(report) == expected
    lines = {t: sorted((h["id"], h["line"]) for h in e["hits"]) for t, e in report["tasks"].items()}
    assert lines == {
        "pubmedqa": [("demo-pubmedqa-1", 2), ("demo-pubmedqa-2", 4)],
        "medqa": [("demo-medqa-1", 5)],
        "bionli": [("demo-bionli-2", 6)],
        "mednli": [("demo-mednli-1", 7)],
        "medmcqa": [],
    }
    assert report["tasks"]["pubmedqa"]["share"] == round(2 / 3, 6) and report["documents_scanned"] == 10
    assert report["tasks"]["bionli"]["published_query_hits"] == 1  # the demo rows are Me-LLaMA's
    assert report["matcher_version"] == matcher.VERSION


def test_the_same_counts_from_text_and_compressed_files_and_every_format(tmp_path: Path) -> None:
    corpus, expected = planted(tmp_path)
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(" ".join(corpusscan.record_parts(json.loads(r))) .replace("\n", " ") + "\n"
                             for r in corpus.read_text().splitlines()), encoding="utf-8")  # fmt: skip
    packed = tmp_path / "packed" / "corpus.jsonl.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(corpus.read_bytes()))
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    (packed.parent / "corpus.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(corpus.read_bytes()))
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    columns = sorted({key for row in rows for key in row})  # from_pylist reads the first row's keys only
    pq.write_table(
        pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), tmp_path / "corpus.parquet"
    )
    for each in (packed, packed.parent / "corpus.jsonl.zst", tmp_path / "corpus.parquet"):
        out = tmp_path / f"{each.name}.json"
        assert scan(str(each), "--tasks", TASKS, "--demo", "-o", str(out)) == 0
        assert summary(json.loads(out.read_text())) == expected, each.name
    # A folder of both compressed copies: every count twice.
    out = tmp_path / "both.json"
    assert scan(str(packed.parent), "--tasks", TASKS, "--demo", "-o", str(out)) == 0
    assert {t: e["touched"] for t, e in json.loads(out.read_text())["tasks"].items()} == {
        t: e["touched"] for t, e in expected.items()
    }
    assert len(json.loads(out.read_text())["tasks"]["pubmedqa"]["hits"]) == 4
    assert scan(str(corpus), "--tasks", TASKS, "--demo", "-o", str(tmp_path / "r.csv")) == 0
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0] == "task,id,field,how,published_query,file,line" and len(rows) == 1 + 5
    assert scan(str(corpus), "--tasks", TASKS, "--demo", "-o", str(tmp_path / "r.md")) == 0
    assert "| pubmedqa | 3 | 2 | 66.67% | 1 | 1 | 0 |" in (tmp_path / "r.md").read_text()
    # One text line holds a question and its answer side by side: still the question, as an exact
    # sentence only where the line ends it; the JSON layout above kept turns apart.
    assert scan(str(plain), "--tasks", TASKS, "--demo", "-o", str(tmp_path / "t.json")) == 0
    assert json.loads((tmp_path / "t.json").read_text())["tasks"]["medqa"]["touched"] == 1


def test_a_credentialed_report_names_ids_and_lines_only_and_is_owner_only(tmp_path: Path) -> None:
    corpus, _ = planted(tmp_path)
    out = tmp_path / "report.md"
    assert scan(str(corpus), "--tasks", "mednli", "--demo", "-o", str(out)) == 0
    text = out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "demo-mednli-1 (exact field, field query line 4 premise)" in text and "corpus.jsonl:7" in text
    premise = field("mednli", "demo-mednli-1", "query line 4 premise")
    assert premise not in text and "insulin" not in text


def test_parts_in_parallel_give_the_one_process_report(tmp_path: Path) -> None:
    corpus, expected = planted(tmp_path)
    big = tmp_path / "big.jsonl"
    filler = "".join(json.dumps({"text": f"{INVENTED[i % 2]} number {i}"}) + "\n" for i in range(30_000))
    big.write_text(filler + corpus.read_text() + filler, encoding="utf-8")
    assert big.stat().st_size > 3 << 20  # four parts of 1 MB at least
    reports = []
    for procs in ("1", "2"):
        out = tmp_path / f"p{procs}.json"
        assert (
            scan(str(big), "--tasks", TASKS, "--demo", "--part-mb", "1", "--num-proc", procs, "-o", str(out))
            == 0
        )
        reports.append(json.loads(out.read_text()))
    assert reports[0] == reports[1] and summary(reports[0]) == expected
    assert reports[0]["documents_scanned"] == 60_010
    assert sorted(h["line"] for h in reports[0]["tasks"]["pubmedqa"]["hits"]) == [30_002, 30_004]


def test_a_killed_scan_resumed_from_its_state_gives_the_same_report(tmp_path: Path, capsys) -> None:
    corpus, _ = planted(tmp_path)
    big = tmp_path / "big.jsonl"
    big.write_text(
        "".join(json.dumps({"text": f"{INVENTED[0]} {i}"}) + "\n" for i in range(40_000)) + corpus.read_text()
    )
    args = [str(big), "--tasks", TASKS, "--demo", "--part-mb", "1"]
    assert scan(*args, "-o", str(tmp_path / "whole.json")) == 0
    state = tmp_path / "state"
    assert scan(*args, "--state", str(state), "-o", str(tmp_path / "first.json")) == 0
    saved = sorted((state / "parts").glob("*.json"))
    assert len(saved) >= 3
    # As if killed: the last parts never finished, one of them mid-write.
    for path in saved[1:]:
        path.unlink()
    (state / "parts" / "half.tmp").write_text('{"part": ')
    capsys.readouterr()
    assert scan(*args, "--state", str(state), "-o", str(tmp_path / "resumed.json")) == 0
    assert "resumed_parts=1" in capsys.readouterr().err
    assert json.loads((tmp_path / "resumed.json").read_text()) == json.loads(
        (tmp_path / "whole.json").read_text()
    )
    # A state folder of another scan is refused, in one line.
    with pytest.raises(MibeError, match="holds a scan of other corpora, tasks or settings"):
        from mibe.training import contamination

        other = ["data", "contamination", str(corpus), "--tasks", "pubmedqa", "--data-dir", str(DEMO)]
        contamination.main(cli._parser().parse_args([*other, "--state", str(state)]))


def test_part_results_of_an_engine_merge_into_the_same_report(tmp_path: Path) -> None:
    """The recipe of docs/contamination.md: an engine maps scan_part over parts; the command merges."""
    from mibe.training import contamination

    corpus, expected = planted(tmp_path)
    index, _ = contamination.load_index(TASKS, str(DEMO), matcher.NGRAM)
    results = [corpusscan.scan_part(part, index) for part in corpusscan.plan([str(corpus)], 200)]
    assert len(results) > 3  # byte ranges of 200 bytes: the lines are split among parts
    hits = tmp_path / "hits.jsonl"
    hits.write_text("".join(json.dumps({**r, "index": index.fingerprint()}) + "\n" for r in results))
    out = tmp_path / "merged.json"
    assert scan("--merge", str(hits), "--tasks", TASKS, "--demo", "-o", str(out)) == 0
    merged = json.loads(out.read_text())
    assert summary(merged) == expected
    assert sorted(h["line"] for h in merged["tasks"]["pubmedqa"]["hits"]) == [2, 4]
    # Results without the index they were scanned against, or of another index, are refused.
    hits.write_text(json.dumps(results[0]) + "\n")
    with pytest.raises(MibeError, match=r"hits.jsonl:1: not a part result"):
        contamination.main(
            cli._parser().parse_args(
                ["data", "contamination", "--merge", str(hits), "--tasks", TASKS, "--data-dir", str(DEMO)]
            )
        )
    hits.write_text(json.dumps({**results[0], "index": "sha256:other"}) + "\n")
    with pytest.raises(MibeError, match=r"hits.jsonl:1: scanned against another index \(sha256:other\)"):
        contamination.main(
            cli._parser().parse_args(
                ["data", "contamination", "--merge", str(hits), "--tasks", TASKS, "--data-dir", str(DEMO)]
            )
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "missing.jsonl: no such file, folder or glob"),
        (["CORPUS", "-o", "report.txt"], "-o report.txt: write .md, .csv or .json"),
        (["CORPUS", "--num-proc", "0"], "--ngram, --num-proc and --part-mb: positive whole numbers"),
        ([], "name a corpus to scan"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, capsys, monkeypatch, args: list[str], message: str) -> None:
    corpus, _ = planted(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = [str(corpus) if a == "CORPUS" else a for a in args]
    assert scan(*args, "--tasks", "pubmedqa", "--demo") == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_bundled_examples_report(tmp_path: Path) -> None:
    """The invented example corpus and SFT rows shipped in training/examples repeat no demo document."""
    examples = resources.training_dir() / "examples" if hasattr(resources, "training_dir") else None
    folder = examples or REPO / "training" / "examples"
    out = tmp_path / "examples.json"
    corpus = [str(p) for p in sorted((folder / "corpus").glob("*.jsonl"))] + [str(folder / "sft.jsonl")]
    assert scan(*corpus, "--demo", "-o", str(out)) == 0
    report = json.loads(out.read_text())
    assert report["documents_scanned"] > 100 and len(report["tasks"]) == 12
    assert {t: e["touched"] for t, e in report["tasks"].items() if e["touched"]} == {}


def test_shipped_demo_folder_is_unchanged(tmp_path: Path) -> None:
    # The scan reads the evaluation side; it never writes next to it.
    before = sorted(p.name for p in DEMO.iterdir())
    corpus, _ = planted(tmp_path)
    shutil.copy(corpus, tmp_path / "copy.jsonl")
    assert scan(str(tmp_path / "copy.jsonl"), "--demo", "-o", str(tmp_path / "r.json")) == 0
    assert sorted(p.name for p in DEMO.iterdir()) == before


def test_the_guard_always_reads_the_evaluation_split_of_a_source_trained_on() -> None:
    from mibe.training import guard

    task = tasks.load_task(tasks.builtin_paths()["pubmedqa"])
    _, places = guard.locations({}, trained=[{"hub": task.source}, {"hub": "someone/else"}])
    assert data.Location("hub", task.source) in places["pubmedqa"]
    assert all(p.where != "someone/else" for where in places.values() for p in where)


def test_a_scan_killed_by_a_signal_resumes_to_the_same_report(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    corpus, expected = planted(tmp_path)
    big = tmp_path / "big.jsonl"
    filler = "".join(json.dumps({"text": f"{INVENTED[1]} {i}"}) + "\n" for i in range(12_000))
    big.write_text(corpus.read_text() + filler * 10, encoding="utf-8")
    parts = len(corpusscan.plan([str(big)], 1 << 20))
    assert parts >= 10
    state, args = tmp_path / "state", [str(big), "--tasks", TASKS, "--demo", "--part-mb", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "mibe", "data", "contamination", *args, "--state", str(state)]
    scan_process = subprocess.Popen(
        [*command, "-o", str(tmp_path / "never.json")], env=env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list((state / "parts").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    scan_process.send_signal(signal.SIGKILL)  # as soon as the first part is saved
    scan_process.wait()
    saved = len(list((state / "parts").glob("*.json")))
    assert 1 <= saved < parts and not (tmp_path / "never.json").exists()
    assert scan(*args, "--state", str(state), "-o", str(tmp_path / "resumed.json")) == 0
    assert scan(*args, "-o", str(tmp_path / "whole.json")) == 0
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed == json.loads((tmp_path / "whole.json").read_text()) and summary(resumed) == expected
