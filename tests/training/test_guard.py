"""Training data you can trust, on the tiny LLaMA (one or two steps each): the guard refuses a
verbatim question + answer, refuses or drops exactly the training rows that repeat the test split,
honours an exclusion list, and records what it kept (a leaderboard then marks the checkpoint); the
card's corpora as released: a MIMIC-like .csv.gz of invented notes with a token target met at the
ratio, and Dolly/ShareGPT/Alpaca rows with per-source weights."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mibe import cli, resources
from mibe.commands import train as train_cli
from mibe.training import guard, provenance
from mibe.types import MibeError
from tests.support.paths import PUBLIC, REPO, needs_public_data

EXAMPLES = REPO / "training" / "examples"
QUESTION = "Does a daily walking reminder lower resting heart rate in office workers?"  # demo-pubmedqa-1


def record(folder: Path) -> dict:
    return json.loads((folder / provenance.FILE).read_text())


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------ SFT


def sft_sources(tmp_path: Path) -> list[str]:
    dolly = [
        {"instruction": f"Name an invented drug class number {i}.", "context": "", "response": f"Class {i}.",
         "category": "open_qa"} for i in range(4)
    ]  # fmt: skip

    def chat(ident: str, question: str, answer: str) -> dict:
        turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
        return {"id": ident, "conversations": turns}

    sharegpt = [chat("leak", QUESTION, "yes")]
    sharegpt += [chat(f"s{i}", f"Invented question {i}?", f"Invented answer {i}.") for i in range(3)]
    alpaca = [{"instruction": f"Invented task {i}.", "input": "", "output": "ok"} for i in range(4)]
    jsonl(tmp_path / "dolly.jsonl", dolly)
    jsonl(tmp_path / "sharegpt.jsonl", sharegpt)
    jsonl(tmp_path / "alpaca.jsonl", [*alpaca, {"text": "a row in no layout"}])
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(
        (EXAMPLES / "tiny-sft.yaml").read_text().replace("data: sft.jsonl", "")
        + "data:\n  - {path: dolly.jsonl, weight: 2}\n  - {path: sharegpt.jsonl}\n"
        "  - {path: alpaca.jsonl, weight: 0.5}\n"
    )
    return ["sft", "--config", str(recipe)]


@pytest.mark.slow
def test_verbatim_question_and_answer_is_refused_then_dropped(tiny_llama: Path, tmp_path: Path) -> None:
    args = [*sft_sources(tmp_path), "--model", str(tiny_llama), "--output-dir", str(tmp_path / "out")]
    with pytest.raises(MibeError) as err:
        train_cli.main(args)
    message = str(err.value)
    assert message.startswith(
        "contamination guard: 1 of 14 rows repeat evaluation documents (1 by question + answer;"
    )
    assert "row 9 (id leak) ~ pubmedqa/demo-pubmedqa-1 (question + answer, field text)" in message
    assert not (tmp_path / "out").exists()
    train_cli.main([*args, "--drop-contaminated", "--max-steps", "1"])
    done = record(tmp_path / "out")
    assert done["contamination"]["dropped_rows"] == [9] and done["contamination"]["mode"] == "drop"
    assert done["contamination"]["matcher_version"] == 1 and done["lineage"][-1]["contaminated"] == []
    sources = done["data"]["sources"]
    # Per-source weights: 4 Dolly rows twice, 4 ShareGPT rows once, half of 4 Alpaca rows.
    assert [s["used_rows"] for s in sources] == [8, 4, 2]
    assert [s["layouts"] for s in sources] == [{"dolly": 4}, {"conversations": 4}, {"alpaca": 4}]
    assert sources[2]["skipped_rows"] == 1 and "row 5: expected conversations" in sources[2]["first_problem"]
    assert done["data"]["rows"] == 13 and done["data"]["train_rows"] == 13


@needs_public_data()
@pytest.mark.shared
def test_the_public_pubmedqa_question_with_its_answer_is_caught() -> None:
    rows = [json.loads(line) for line in (PUBLIC / "pubmedqa.jsonl").read_text().splitlines()]
    row = next(r for r in rows if "primary angioplasty" in r["QUESTION"].lower())
    tasks_, places = guard.locations({"guard_data_dir": str(PUBLIC)})
    index = guard.build_index(tasks_, places, 13)
    hits = guard.row_hits([row["QUESTION"], row["final_decision"]], index)
    assert [(h.task, h.doc, h.how) for h in hits] == [("pubmedqa", str(row["pmid"]), "question + answer")]


# ------------------------------------------------------------------------------ task


def task_folder(tmp_path: Path) -> Path:
    """A release whose train split repeats two of its three test rows (as MedQA's hub copy does)."""
    folder = tmp_path / "release"
    folder.mkdir()
    test = [json.loads(line) for line in (resources.demo_dir() / "pubmedqa.jsonl").read_text().splitlines()]
    fresh = [
        {"pmid": f"t{i}", "QUESTION": f"Does invented treatment number {i} shorten a hospital stay?",
         "CONTEXTS": [f"An invented trial of treatment {i} in adults admitted with pneumonia."],
         "final_decision": "no", "invented": True} for i in range(4)
    ]  # fmt: skip
    jsonl(folder / "test.jsonl", test)
    jsonl(folder / "train.jsonl", [fresh[0], test[0], fresh[1], fresh[2], test[2], fresh[3]])
    return folder


@pytest.mark.slow
def test_a_train_split_that_repeats_test_rows_is_refused_or_dropped_exactly(
    tiny_llama: Path, tmp_path: Path
) -> None:
    folder = task_folder(tmp_path)
    (tmp_path / "exclude.txt").write_text("# invented study ids\nt3\n")
    args = ["task", "pubmedqa", "--config", str(EXAMPLES / "tiny-task.yaml"), "--model", str(tiny_llama)]
    args += [
        "--data",
        str(folder),
        "--output-dir",
        str(tmp_path / "out"),
        "--exclude-ids",
        str(tmp_path / "exclude.txt"),
    ]
    with pytest.raises(MibeError) as err:
        train_cli.main(args)
    assert "2 of 5 rows repeat evaluation documents" in str(err.value)  # t3 left out by the list first
    assert "pubmedqa: 2 rows touch 2 documents" in str(err.value)
    train_cli.main([*args, "--drop-contaminated", "--max-steps", "1"])
    done = record(tmp_path / "out")
    # Rows 2 and 5 once t3 is left out: the copies of two test documents, named by their ids.
    assert done["contamination"]["dropped_rows"] == [2, 5]
    assert done["contamination"]["dropped_ids"] == ["demo-pubmedqa-1", "demo-pubmedqa-3"]
    assert done["contamination"]["evaluation_sources"]["pubmedqa"][-1] == str(folder.resolve())
    assert done["data"]["excluded_by_id"] == ["t3"] and done["data"]["train_rows"] == 3


@pytest.mark.slow
def test_a_checkpoint_trained_on_test_documents_is_marked_on_the_leaderboard(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "kept"
    args = ["task", "pubmedqa", "--config", str(EXAMPLES / "tiny-task.yaml"), "--model", str(tiny_llama)]
    train_cli.main([*args, "--data", str(task_folder(tmp_path)), "--output-dir", str(out),
                    "--allow-contamination", "--max-steps", "1"])  # fmt: skip
    assert record(out)["lineage"][-1]["contaminated"] == ["pubmedqa"]
    run = tmp_path / "run"
    assert cli.main(["run", "--model", str(out), "--tasks", "pubmedqa", "--demo", "--limit", "1",
                     "--output-dir", str(run), "--max-new-tokens", "2"]) == 0  # fmt: skip
    capsys.readouterr()
    assert cli.main(["leaderboard", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "[trained on test: pubmedqa]" in shown


# ------------------------------------------------------------------------------ pretraining


@pytest.mark.slow
def test_a_mimic_like_csv_gz_trains_without_excluded_ids_and_leaks_to_a_token_target(
    tiny_llama: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "NOTEEVENTS-invented.csv.gz"  # invented notes in MIMIC-III's layout
    body = "ROW_ID,SUBJECT_ID,CATEGORY,TEXT\n" + "".join(
        f'{i},{100 + i},Discharge summary,"INVENTED NOTE {i}.\nAdmitted with an invented fever of '
        f'{38 + i % 3} C, treated with fluids and discharged on day {i % 5 + 2}, well."\n'
        for i in range(60)
    )
    notes.write_bytes(gzip.compress(body.encode()))
    mix = tmp_path / "mix.yaml"
    corpus = EXAMPLES / "corpus"
    general = tmp_path / "general.jsonl"  # the example text, then a test question with its answer
    leak = json.dumps({"text": f"Q: {QUESTION}\nA: yes"})
    general.write_text((corpus / "general.jsonl").read_text() + leak + "\n")
    mix.write_text(
        "target_tokens: 2560\ndomains:\n"
        f"  biomedical: {{ratio: 15, sources: [{{path: {corpus / 'biomedical.jsonl'}}}]}}\n"
        f"  clinical: {{ratio: 1, sources: [{{path: {notes}, text: TEXT, id: ROW_ID}}]}}\n"
        f"  general: {{ratio: 4, sources: [{{path: {general}}}]}}\n"
    )
    out = tmp_path / "pre"
    excluded = tmp_path / "test-ids.txt"
    excluded.write_text("3\n7\n999\n")  # e.g. the ids of notes behind a test set
    train_cli.main(["pretrain", "--config", str(EXAMPLES / "tiny-pretrain.yaml"), "--model", str(tiny_llama),
                    "--mix", str(mix), "--output-dir", str(out), "--max-steps", "1",
                    "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "held_out=0",
                    "--exclude-ids", str(excluded), "--drop-contaminated"])  # fmt: skip
    data, guarded = record(out)["data"], record(out)["contamination"]
    # 120 biomedical rows, 58 clinical ones (2 excluded by id), then the general rows: the last leaks.
    assert guarded["rows_checked"] == 120 + 58 + 61 and guarded["dropped_rows"] == [239]
    assert guarded["leaks"] == {"pubmedqa": {"rows": 1, "documents": 1}}
    assert data["domains"]["general"]["documents"] == 60
    # 2560 tokens = 40 blocks of 64 at 15:1:4: 30, 2 and 8 blocks.
    assert {d: e["train_blocks"] for d, e in data["domains"].items()} == {
        "biomedical": 30,
        "clinical": 2,
        "general": 8,
    }
    assert data["train_tokens"] == 2560 and data["target_tokens"] == 2560
    clinical = data["domains"]["clinical"]
    assert clinical["sources"][0]["excluded_by_id"] == 2
    assert clinical["documents"] == 58 and clinical["sources"][0]["files"][0]["file"] == str(notes.resolve())
