"""The forgetting study: the shipped general-domain tasks (tasks/general/, the group `general`, never
part of `all`) run on their invented fixture rows (the hub layout), and `mibe run --model A --model B`
scores a sweep into one folder per model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe import cli, names, tasks
from mibe.runner import api, sweep
from mibe.types import MibeError, RunConfig
from tests.support.paths import REPO

FIXTURES = REPO / "tests" / "fixtures" / "general"
GENERAL = ("arc_challenge", "boolq", "mmlu")


def test_the_general_group_is_apart_from_all() -> None:
    general, explicit = tasks.resolve(["general"])
    assert sorted(t.name for t in general) == list(GENERAL) and not explicit
    assert all(t.domain == "general" and not t.credentialed for t in general)
    everything, _ = tasks.resolve(["all"])
    assert not {t.name for t in everything} & set(GENERAL)
    assert tasks.resolve(["mmlu"])[0][0].source == "cais/mmlu"  # a bare name, from the hub only
    assert {t.name: t.config for t in general} == {
        "arc_challenge": "ARC-Challenge",
        "boolq": None,
        "mmlu": "all",
    }
    with pytest.raises(MibeError, match="reserved"):
        names.check_task_name("general", "tasks new")


@pytest.mark.parametrize("name", GENERAL)
def test_each_general_task_reads_its_fixture_rows(name: str) -> None:
    from mibe import data

    (task,), _ = tasks.resolve([name])
    rows = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
    docset = data.load_docs(task, data.locate(task, None, {name: str(FIXTURES / f"{name}.jsonl")}))
    assert len(docset.docs) == len(rows) and docset.n_skipped == 0
    assert all(d.invented for d in docset.docs)
    golds = {"mmlu": ["C", "B", "A", "D"], "arc_challenge": ["B", "B", "E"], "boolq": ["yes", "no", "yes"]}
    assert [d.gold for d in docset.docs] == golds[name]


def test_a_general_task_runs_on_its_fixture_rows(tiny_llama: Path, tmp_path: Path) -> None:
    config = RunConfig(
        model=str(tiny_llama), tasks=("mmlu",), data={"mmlu": str(FIXTURES / "mmlu.jsonl")},
        output_dir=str(tmp_path / "run"), bootstrap=20,
    )  # fmt: skip
    entry = api.run(config)["tasks"]["mmlu"]
    assert entry["n"] == 4 and entry["invented"] is True
    samples = {
        s["id"]: s
        for s in map(json.loads, (tmp_path / "run" / "samples" / "mmlu.jsonl").read_text().splitlines())
    }
    first = samples["0"]  # a hub row has no id: its place in the split
    assert "The following is a multiple choice question about astronomy." in first["prompt"]
    assert "\nC. Mave\n" in first["prompt"] and first["gold"] == "C"


@pytest.mark.slow
def test_a_two_model_sweep_writes_two_folders(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = tmp_path / "tiny-copy"
    twin.symlink_to(tiny_llama, target_is_directory=True)
    out = tmp_path / "sweep"
    code = cli.main(
        ["run", "--model", str(tiny_llama), "--model", str(twin), "--tasks", "pubmedqa", "--demo",
         "--limit", "2", "--bootstrap", "20", "--output-dir", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted([tiny_llama.name, "tiny-copy"])
    for label, model in ((tiny_llama.name, tiny_llama), ("tiny-copy", twin)):
        results = json.loads((out / label / "results.json").read_text())
        assert results["model"]["path"] == str(model) and results["tasks"]["pubmedqa"]["n"] == 2


def test_sweep_labels_and_refusals(tmp_path: Path) -> None:
    listed = tmp_path / "models.txt"
    listed.write_text("# checkpoints\nckpt/step-100\nbase=meta-llama/Llama-2-13b-hf\n\n")
    assert sweep.models(["runs/a/"], str(listed)) == [
        ("a", "runs/a/"), ("step-100", "ckpt/step-100"), ("base", "meta-llama/Llama-2-13b-hf"),
    ]  # fmt: skip
    with pytest.raises(MibeError, match=r"would both be scored into 'x/'.*LABEL=MODEL"):
        sweep.models(["one/x", "two/x"], None)
    with pytest.raises(MibeError, match=r"^--models .*: cannot read it"):
        sweep.models([], str(tmp_path / "none.txt"))


def test_tasks_list_marks_the_general_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tasks", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = {line.split()[0] for line in lines[1:] if line.split()[4:5] == ["general"]}
    assert marked == set(GENERAL)
