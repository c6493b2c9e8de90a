"""Few-shot as published: `--protocol paper-fewshot` and where shots come from (`shot_source`, a
column-key field absent at 0 shots). A release's train split is used when the matcher finds it
disjoint from the test split, else the test split without the scored document; older few-shot
folders (written before shot_source) keep resuming, and zero-shot columns do not move."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe import data, tasks
from mibe.boards.table import protocol_key
from mibe.runner import api, fewshot
from mibe.types import MibeError, RunConfig
from tests.support import logs

ROWS = [  # invented PubMedQA-format rows: (id, question, context, answer)
    (
        "p1",
        "Does invented tea lower a made-up fever?",
        "A fictional trial gave tea to invented patients.",
        "yes",
    ),
    ("p2", "Does an imaginary bandage speed healing?", "Pretend wounds healed at the usual pace.", "no"),
    (
        "p3",
        "Can a fictional app predict invented falls?",
        "The app's alarms were mixed and unclear.",
        "maybe",
    ),
    (
        "p4",
        "Does invented yoga reduce made-up pain?",
        "Pretend patients reported less pain after yoga.",
        "yes",
    ),
]
OTHER = [
    (
        "t1",
        "Does a fictional vitamin improve invented sleep quality?",
        "Invented sleepers slept longer.",
        "yes",
    ),
    (
        "t2",
        "Does an imaginary diet change made-up cholesterol values?",
        "No change in values was seen.",
        "no",
    ),
]


def write(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps({"pmid": i, "QUESTION": q, "CONTEXTS": [c], "final_decision": a}) + "\n"
            for i, q, c, a in rows
        )
    )


def source_of(folder: Path, k: int = 1) -> tuple[str | None, list[str], list[str]]:
    (task,), _ = tasks.resolve(["pubmedqa"])
    location = data.locate(task, str(folder), {})
    docset = data.load_docs(task, location)
    with logs.collected() as said:
        pool, source = fewshot.pool(task, location, docset, RunConfig(model="m", num_fewshot=k))
    return source, said, [str(d.id) for d in pool]


def test_shots_come_from_a_disjoint_train_split(tmp_path: Path) -> None:
    write(tmp_path / "pubmedqa" / "test.jsonl", ROWS)
    write(tmp_path / "pubmedqa" / "train.jsonl", OTHER)
    assert source_of(tmp_path) == ("train", [], ["t1", "t2"])
    assert source_of(tmp_path, k=0) == (None, [], ["p1", "p2", "p3", "p4"])  # null at 0 shots


def test_a_train_split_that_repeats_the_test_split_is_not_used(tmp_path: Path) -> None:
    write(tmp_path / "pubmedqa" / "test.jsonl", ROWS)
    write(tmp_path / "pubmedqa" / "train.jsonl", OTHER + ROWS[:1])  # as MedQA's hub copy does
    source, said, pool = source_of(tmp_path)
    assert source == "evaluation" and pool == ["p1", "p2", "p3", "p4"]
    assert said == [
        "mibe: pubmedqa: its 'train' split repeats 1 evaluation documents (e.g. p1); "
        "shots come from the evaluation split without the scored document"
    ]


def test_medqa_keeps_test_minus_document_shots() -> None:
    (medqa,), _ = tasks.resolve(["medqa"])
    assert medqa.fewshot_split is None  # the hub copy repeats its test rows in train


def run(tiny_llama: Path, out: Path, **options: object) -> dict:
    config = RunConfig(
        model=str(tiny_llama), tasks=("pubmedqa",), demo=True, output_dir=str(out), limit=2, bootstrap=20,
        **options,
    )  # fmt: skip
    return api.run(config)


@pytest.mark.slow
def test_paper_fewshot_preset_is_in_the_protocol(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(MibeError, match=r"^--protocol paper-fewshot: give --num-fewshot K"):
        run(tiny_llama, tmp_path / "none", protocol="paper-fewshot")
    protocol = run(tiny_llama, tmp_path / "few", protocol="paper-fewshot", num_fewshot=1)["tasks"][
        "pubmedqa"
    ]["protocol"]
    assert protocol["shots"] == 1 and protocol["shot_source"] == "evaluation"  # the demo is one file
    assert (protocol["parser"], protocol["max_new_tokens"], protocol["stop"]) == ("paper", 256, [])
    assert protocol["chat_template"] is None
    zero = run(tiny_llama, tmp_path / "zero", protocol="paper")["tasks"]["pubmedqa"]["protocol"]
    assert "shot_source" not in zero
    assert dict(protocol_key("pubmedqa", zero))["shot_source"] == "null"  # as a published zero-shot row's


def test_an_older_fewshot_folder_keeps_resuming(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "older"
    first = run(tiny_llama, out, num_fewshot=1)
    for name in ("run.json", "results.json"):  # as written before shot_source was recorded
        doc = json.loads((out / name).read_text())
        for protocol in [*(doc.get("protocols") or {}).values()] + [
            e["protocol"] for e in (doc.get("tasks") or {}).values()
        ]:
            del protocol["shot_source"]
        (out / name).write_text(json.dumps(doc))
    again = run(tiny_llama, out, num_fewshot=1)  # resumed, not refused
    assert again["tasks"]["pubmedqa"]["metrics"] == first["tasks"]["pubmedqa"]["metrics"]


@pytest.mark.parametrize("model", ["no-model", "tiny"])
def test_too_few_shots_is_refused_before_the_model_loads(
    model: str, tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mibe import cli

    write(tmp_path / "pubmedqa" / "test.jsonl", ROWS)
    write(tmp_path / "pubmedqa" / "train.jsonl", OTHER)
    path = str(tiny_llama) if model == "tiny" else str(tmp_path / "no-model")
    argv = ["run", "--model", path, "--tasks", "pubmedqa", "--data-dir", str(tmp_path), "--num-fewshot", "3"]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    # A missing model folder would be its own one-line error: the pool's size is checked first.
    assert err == (
        "mibe: error: pubmedqa: --num-fewshot 3: only 2 other documents to draw from (shots come from "
        "its 'train' split); lower --num-fewshot\n"
    )
    assert not (tmp_path / "run").exists()
