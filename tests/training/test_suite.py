"""The paper's supervised setting end to end on the tiny LLaMA: `mibe train task T1,T2,...` trains one
adapter per task into D/<task>/ (a task whose training rows repeat evaluation documents is skipped in
one line), then `mibe run --adapters D` scores every task through its own adapter, over one load of
the base, into one run folder whose board row is complete and names every adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe.backends.hf import HFBackend
from mibe.boards import table as board_model
from mibe.commands import train as train_cli
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support import logs
from tests.support.paths import REPO

TINY_TASK = REPO / "training" / "examples" / "tiny-task.yaml"
DEMO_EMRQA = len((REPO / "tasks" / "demo" / "emrqa.jsonl").read_text().splitlines())
NLI = "\nTASK: Please classify the relationship between the given premise and hypothesis into one of the following labels: {labels}. Return only the label.\n###\nINPUT: [PRE] {pre} [HYP] {hyp}\nOUTPUT:\n"  # noqa: E501
PAIRS = [  # invented premise, hypothesis, label
    ("An invented patient took a made-up tablet at noon.", "The patient took a tablet.", "entailment"),
    ("An invented rash faded after a fictional cream.", "The rash spread everywhere.", "contradiction"),
    ("A fictional nurse counted invented pills twice.", "The pills were counted.", "entailment"),
    ("A made-up scan showed an imaginary shadow.", "The scan was entirely clear.", "contradiction"),
]


def nli_rows(path: Path, task: str, labels: str) -> Path:
    rows = [
        {"id": f"{task}-train-{i}", "query": NLI.format(labels=labels, pre=p, hyp=h), "answer": a}
        for i, (p, h, a) in enumerate(PAIRS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pubmedqa_rows(path: Path) -> Path:
    rows = [
        {"pmid": f"suite-{i}", "QUESTION": f"Does invented remedy {i} work?",
         "CONTEXTS": [f"A fictional trial of invented remedy {i} found answer {a}."], "final_decision": a}
        for i, a in enumerate(("yes", "no", "maybe", "yes"))
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def suite(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("suite")
    data = {
        "pubmedqa": pubmedqa_rows(root / "pubmedqa.jsonl"),
        "mednli": nli_rows(root / "mednli.jsonl", "mednli", "entailment, contradiction, or neutral"),
        "bionli": nli_rows(root / "bionli.jsonl", "bionli", "entailment or contradiction"),
        "ddi2013": REPO / "tasks" / "demo" / "ddi2013.jsonl",  # its own evaluation documents
        "emrqa": REPO / "tests" / "fixtures" / "emrqa",  # the release: trained on the train part by note
    }
    args = [
        "task",
        "pubmedqa,mednli,bionli,ddi2013,emrqa",
        "--config",
        str(TINY_TASK),
        "--model",
        str(tiny_llama),
    ]
    args += ["--output-dir", str(root / "adapters"), "--max-steps", "1"]
    args += ["--set", "warmup_ratio=0", "--set", "lr_scheduler=constant"]  # one step that moves the weights
    args += [a for task, path in data.items() for a in ("--data", f"{task}={path}")]
    with logs.collected() as lines:
        train_cli.main(args)
    return root / "adapters", lines


@pytest.mark.slow
def test_train_task_suite_writes_one_adapter_per_task_and_skips_a_contaminated_one(
    suite: tuple[Path, list[str]],
) -> None:
    root, lines = suite
    for task in ("pubmedqa", "mednli", "bionli"):
        assert (root / task / "adapter_config.json").is_file(), task
        record = json.loads((root / task / "mibe_training.json").read_text())
        assert record["data"]["task"] == task and record["complete"] is True
    assert not (root / "ddi2013").exists()  # refused before anything was written
    skipped = [line for line in lines if line.startswith("mibe: ddi2013: skipped: contamination guard:")]
    assert len(skipped) == 1 and "\n" not in skipped[0]
    summary = json.loads((root / "mibe_suite.json").read_text())
    assert sorted(summary["tasks"]) == ["bionli", "emrqa", "mednli", "pubmedqa"]
    emrqa = json.loads((root / "emrqa" / "mibe_training.json").read_text())
    assert emrqa["data"]["documents"] == 5  # note 0901's questions; the guard read note 0903's test part
    assert (
        emrqa["contamination"]["leaks"] == {}
        and emrqa["contamination"]["evaluation_documents"]["emrqa"] == DEMO_EMRQA + 1
    )
    assert list(summary["skipped"]) == ["ddi2013"]


@pytest.mark.slow
def test_run_adapters_scores_each_task_with_its_own_adapter_in_one_load(
    suite: tuple[Path, list[str]], tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = suite
    loads: list[str] = []
    real = HFBackend._load
    monkeypatch.setattr(HFBackend, "_load", lambda self: loads.append(self.model_name) or real(self))
    out = tmp_path / "run"
    config = RunConfig(
        model=str(tiny_llama), adapters=str(root), tasks=("pubmedqa,mednli,bionli",), demo=True,
        output_dir=str(out), bootstrap=20, chat_template="none",
    )  # fmt: skip
    results = api.run(config)
    assert loads == [str(tiny_llama)]  # the base loaded once for three adapters
    assert sorted(results["tasks"]) == ["bionli", "mednli", "pubmedqa"]
    adapters = results["model"]["adapters"]
    assert {t: a["path"] for t, a in adapters.items()} == {
        t: str((root / t).resolve()) for t in ("pubmedqa", "mednli", "bionli")
    }
    assert all(a["provenance"]["kind"] == "task" for a in adapters.values())
    run = board_model.load_run(out)
    lineage = board_model.run_lineage(run)
    assert all(f"{t}={(root / t).resolve()}" in lineage["adapter"] for t in adapters)
    assert lineage["base"] == str(tiny_llama)
    # Resumed with the same command, the finished run is read back, not scored again.
    assert api.run(config)["tasks"] == results["tasks"]


@pytest.mark.slow
def test_each_task_answers_through_its_own_adapter(suite: tuple[Path, list[str]], tiny_llama: Path) -> None:
    root, _ = suite
    base = HFBackend(str(tiny_llama))
    one, two = base.with_adapter(str(root / "mednli")), base.with_adapter(str(root / "bionli"))
    alone = HFBackend(str(tiny_llama), adapter=str(root / "mednli"))
    prompt = NLI.format(labels="entailment or contradiction", pre="A fictional test.", hyp="A test.")
    from mibe.types import Request

    request = [Request(doc_id="x", prompt=prompt, continuations=(" entailment", " contradiction"))]
    plain = HFBackend(str(tiny_llama)).loglikelihood(request)
    # Switching back to an earlier adapter gives exactly what that adapter alone gives.
    assert len({str(plain), str(one.loglikelihood(request)), str(two.loglikelihood(request))}) == 3
    assert one.loglikelihood(request)[0] == pytest.approx(alone.loglikelihood(request)[0], abs=1e-5)
    other = HFBackend(str(tiny_llama), adapter=str(root / "bionli"))
    assert two.loglikelihood(request)[0] == pytest.approx(other.loglikelihood(request)[0], abs=1e-5)


def test_adapters_refusals_are_one_line(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(MibeError, match=r"^--adapters .*: no such folder"):
        api.run(RunConfig(model=str(tiny_llama), adapters=str(tmp_path / "none"), demo=True))
    with pytest.raises(MibeError, match=r"^--adapter and --adapters"):
        api.run(RunConfig(model=str(tiny_llama), adapter="x", adapters=str(tmp_path), demo=True))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MibeError, match=r"pubmedqa: no LoRA adapter in"):
        api.run(
            RunConfig(model=str(tiny_llama), adapters=str(tmp_path / "empty"), tasks=("pubmedqa",), demo=True)
        )


def test_emrqa_release_is_split_by_note_and_keeps_notes_apart(tmp_path: Path) -> None:
    from mibe import data, tasks

    (emrqa,), _ = tasks.resolve(["emrqa"])
    fixture = REPO / "tests" / "fixtures" / "emrqa" / "data.json"

    def part(path: Path, split: str) -> list:
        return data.load_docs(emrqa, data.Location("local", str(path)), split).docs

    test, train = part(fixture, "test"), part(fixture, "train")
    assert {d.id.split("/")[1] for d in test} == {"0903"} and {d.id.split("/")[1] for d in train} == {"0901"}
    # Ten invented notes: two (a fifth) are the test part, no note is in both, every question is in one.
    notes = [
        {"note_id": f"n{i}", "context": [f"Invented note {i}.", f"Patient {i} takes drug{i} daily ."],
         "qas": [{"question": [f"What does patient {i} take?"], "id": [["t", "l"]],
                  "answers": [{"text": f"drug{i}", "answer_start": [1, 3], "evidence": ""}]}]}
        for i in range(10)
    ]  # fmt: skip
    (tmp_path / "data.json").write_text(json.dumps({"data": [{"title": "medication", "paragraphs": notes}]}))
    test, train = part(tmp_path / "data.json", "test"), part(tmp_path / "data.json", "train")
    assert len(test) == 2 and len(train) == 8
    assert not {d.cluster for d in test} & {d.cluster for d in train}
    assert sorted(d.id for d in test + train) == sorted(f"medication/n{i}/0" for i in range(10))
    assert [d.id for d in part(tmp_path / "data.json", "test")] == [d.id for d in test]  # seeded, not drawn
