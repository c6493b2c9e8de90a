"""`mibe rescore`: the same parser gives the run's numbers exactly, the other parser gives a fresh
run's numbers under it, no model is loaded, and damaged run folders are refused in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mibe import cli
from mibe.runfolder import rescore
from mibe.runfolder import saved as saved_run
from mibe.runner import api
from mibe.types import RunConfig
from tests.support.runfiles import samples_by_id
from tests.support.scripted import Scripted
from tests.support.scriptedruns import scripted_run

TINY_TASKS = ("pubmedqa", "medmcqa", "hoc", "emrqa", "i2b2_2010")


def without_origin(tasks: dict) -> dict:
    return {name: {k: v for k, v in e.items() if k != "rescored_from"} for name, e in tasks.items()}


@pytest.fixture(scope="module")
def tiny_runs(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A strict and a paper run of a copy of the tiny model, then the copy is deleted."""
    tmp = tmp_path_factory.mktemp("tiny-rescore")
    model = tmp / "model"
    shutil.copytree(tiny_llama, model)
    runs = {}
    for parser in ("strict", "paper"):
        runs[parser] = tmp / parser
        config = RunConfig(
            model=str(model),
            tasks=(",".join(TINY_TASKS),),
            demo=True,
            output_dir=str(runs[parser]),
            parser=parser,
            batch_size=4,
            max_new_tokens=16,
        )
        api.run(config)
    shutil.rmtree(model)  # rescoring must not need it
    return runs


@pytest.mark.slow
def test_same_parser_reproduces_the_run_exactly(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    original = json.loads((tiny_runs["strict"] / "results.json").read_text())
    out = rescore.rescore(tiny_runs["strict"], "strict", [], tmp_path / "re")
    assert without_origin(out["tasks"]) == without_origin(original["tasks"])
    for name, entry in out["tasks"].items():
        assert entry["rescored_from"] == {"run": str(tiny_runs["strict"].resolve()), "parser": "strict"}
        assert entry["metrics"] == original["tasks"][name]["metrics"]  # intervals included
        assert samples_by_id(tmp_path / "re", name) == samples_by_id(tiny_runs["strict"], name)
    on_disk = json.loads((tmp_path / "re" / "run.json").read_text())
    assert on_disk["rescored_from"]["parser"] == "strict" and set(on_disk["protocols"]) == set(TINY_TASKS)


@pytest.mark.slow
def test_other_parser_gives_a_fresh_runs_numbers_without_the_model(
    tiny_runs: dict[str, Path], tmp_path: Path
) -> None:
    new = tmp_path / "re-paper"
    check = (
        "import sys; from mibe import cli; "
        f"rc = cli.main(['rescore', {str(tiny_runs['strict'])!r}, '--parser', 'paper', "
        f"'--output-dir', {str(new)!r}]); "
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]; "
        "print('rc', rc, 'heavy', heavy)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "rc 0 heavy []", done.stderr
    paper = json.loads((tiny_runs["paper"] / "results.json").read_text())["tasks"]
    strict = json.loads((tiny_runs["strict"] / "results.json").read_text())["tasks"]
    got = json.loads((new / "results.json").read_text())
    assert without_origin(got["tasks"]) == without_origin(paper)
    assert got["config"]["parser"] == "paper"
    assert any(paper[t]["metrics"] != strict[t]["metrics"] for t in TINY_TASKS)  # the check has teeth
    for name in TINY_TASKS:
        assert got["tasks"][name]["protocol"]["parser"] == "paper"
        assert samples_by_id(new, name) == samples_by_id(tiny_runs["paper"], name)
    assert (new / "samples" / "emrqa.jsonl").stat().st_mode & 0o077 == 0  # credentialed stays private


def test_loglikelihood_tasks_are_carried_over(tiny_llama: Path, tmp_path: Path, said: list[str]) -> None:
    run = tmp_path / "ll"
    config = RunConfig(
        model=str(tiny_llama),
        tasks=("pubmedqa,emrqa",),
        demo=True,
        output_dir=str(run),
        scoring="loglikelihood",
        max_new_tokens=8,
    )
    original = api.run(config)["tasks"]
    said.clear()
    out = rescore.rescore(run, "paper", [], tmp_path / "re")["tasks"]
    assert original["pubmedqa"]["protocol"]["scoring"] == "loglikelihood"
    assert without_origin(out)["pubmedqa"] == without_origin(original)["pubmedqa"]
    assert out["pubmedqa"]["rescored_from"]["parser"] == "argmax-loglikelihood"
    assert samples_by_id(tmp_path / "re", "pubmedqa") == samples_by_id(run, "pubmedqa")
    assert out["emrqa"]["protocol"]["parser"] == "paper"  # no choices: it was generated, so re-parsed
    assert any("pubmedqa: scored by log-likelihood: nothing to re-parse" in line for line in said)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("scripted")
    return {
        parser: (scripted_run(tmp, tmp / parser, parser), tmp / parser)[1] for parser in ("strict", "paper")
    }


def test_realistic_outputs_rescored_match_fresh_runs(scripted: dict[str, Path], tmp_path: Path) -> None:
    for source, parser in (("strict", "paper"), ("paper", "strict"), ("paper", "paper")):
        out = rescore.rescore(scripted[source], parser, [], tmp_path / f"{source}-{parser}")
        fresh = json.loads((scripted[parser] / "results.json").read_text())["tasks"]
        assert without_origin(out["tasks"]) == without_origin(fresh), (source, parser)


def specialty_run(tmp_path: Path) -> tuple[Path, dict]:
    """A user's task file (specialty.yaml, no hook) and a scripted run of it into run/ that answers
    every note with its gold: its path and the run's results."""
    task_file = tmp_path / "specialty.yaml"
    task_file.write_text(
        "name: specialty\ndataset: {source: notes.jsonl}\n"
        'template: "Which specialty?\\n{{ note }}\\nOUTPUT:"\ntarget: label\n'
        "answer: {type: choice, choices: [Surgery, Neurosurgery, Cardiology]}\nmetrics: [accuracy]\n"
    )
    notes = [("n1", "craniotomy", "Neurosurgery"), ("n2", "bypass graft", "Cardiology")]
    (tmp_path / "notes.jsonl").write_text(
        "".join(json.dumps({"id": i, "note": n, "label": g}) + "\n" for i, n, g in notes)
    )
    outputs = {f"Which specialty?\n{n}\nOUTPUT:": g for _, n, g in notes}
    config = RunConfig(model="scripted", tasks=(str(task_file),), output_dir=str(tmp_path / "run"))
    return task_file, api.run(config, backend=Scripted(outputs))


def test_tasks_subset_and_user_task_file(tmp_path: Path) -> None:
    task_file, run = specialty_run(tmp_path)
    assert run["tasks"]["specialty"]["task_file"] == str(task_file)
    out = rescore.rescore(tmp_path / "run", "paper", ["specialty"], tmp_path / "re")
    assert run["tasks"]["specialty"]["metrics"]["accuracy"]["value"] == 1.0
    assert out["tasks"]["specialty"]["metrics"]["accuracy"]["value"] == 0.5  # Neurosurgery -> Surgery
    assert out["config"]["tasks"] == ["specialty"]


def test_intervals_resample_in_the_runs_document_order(scripted: dict[str, Path]) -> None:
    # The runner writes samples longest prompt first; the bootstrap drew documents in data order.
    task = saved_run.read_task(saved_run.read_run(scripted["strict"]), "pubmedqa")
    assert saved_run.doc_order(task) == [f"pubmedqa-{i}" for i in range(5)]
    assert [row["id"] for row in task.rows] == [f"pubmedqa-{i}" for i in reversed(range(5))]


def test_missing_data_reproduces_the_run_from_the_samples_alone(tmp_path: Path) -> None:
    # Samples carry each document's position, so the run's data is not needed to restore its order.
    original = scripted_run(tmp_path, tmp_path / "run")["tasks"]
    shutil.rmtree(tmp_path / "data")
    out = rescore.rescore(tmp_path / "run", "strict", ["pubmedqa"], tmp_path / "re")
    entry = out["tasks"]["pubmedqa"]
    assert "note" not in entry["rescored_from"]
    assert entry["metrics"] == original["pubmedqa"]["metrics"]


def test_samples_without_positions_fall_back_and_say_so(tmp_path: Path) -> None:
    original = scripted_run(tmp_path, tmp_path / "run")["tasks"]
    samples = tmp_path / "run" / "samples" / "pubmedqa.jsonl"
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    samples.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "index"}) + "\n" for r in rows))
    shutil.rmtree(tmp_path / "data")
    out = rescore.rescore(tmp_path / "run", "strict", ["pubmedqa"], tmp_path / "re")
    entry = out["tasks"]["pubmedqa"]
    assert "intervals resample the samples file's order" in entry["rescored_from"]["note"]
    for name, metric in entry["metrics"].items():
        assert metric["value"] == original["pubmedqa"]["metrics"][name]["value"]


def damage(run: Path, how: str) -> None:
    pubmedqa = run / "samples" / "pubmedqa.jsonl"
    lines = pubmedqa.read_text().splitlines(keepends=True)
    if how == "no results":
        (run / "results.json").unlink()
    elif how == "bad results":
        (run / "results.json").write_text('{"tasks": {')
    elif how == "no tasks":
        (run / "results.json").write_text('{"tasks": [1, 2]}')
    elif how == "empty":
        (run / "results.json").write_text('{"tasks": {}}')
    elif how == "no samples":
        pubmedqa.unlink()
    elif how == "cut off":
        pubmedqa.write_text("".join(lines) + '{"id": "pubmedqa-9", "raw_')
    elif how == "bad line":
        pubmedqa.write_text(lines[0] + "{oops\n" + "".join(lines[1:]))
    elif how == "redacted":
        pubmedqa.write_text(
            "".join(json.dumps({"id": json.loads(x)["id"], "score": 0.0}) + "\n" for x in lines)
        )
    elif how == "short":
        pubmedqa.write_text("".join(lines[1:]))


@pytest.mark.parametrize(
    ("how", "extra", "says"),
    [
        ("gone", [], "no such run folder"),
        ("no results", [], "no results.json"),
        ("bad results", [], "results.json: not valid JSON"),
        ("no tasks", [], "no 'tasks' mapping"),
        ("empty", [], "no task was scored in this run"),
        ("no samples", [], "pubmedqa.jsonl: missing"),
        ("cut off", [], "ends in a cut-off line"),
        ("bad line", [], "pubmedqa.jsonl:2: corrupt sample line"),
        ("redacted", [], "samples without raw_output"),
        ("short", [], "4 samples (4 distinct) but results.json says n=5"),
        ("", ["--tasks", "bionli"], "holds no task 'bionli'"),
        ("same dir", [], "is the run itself"),
        ("full dir", [], "exists and is not empty"),
    ],
)
def test_damaged_runs_and_bad_flags_refused_in_one_line(
    scripted: dict[str, Path], tmp_path: Path, capsys, how: str, extra: list[str], says: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(scripted["strict"], run)
    target = tmp_path / "new"
    damage(run, how)
    if how == "gone":
        shutil.rmtree(run)
    before = (run / "samples" / "pubmedqa.jsonl").read_bytes() if how == "cut off" else None
    if how == "same dir":
        target = run
    if how == "full dir":
        target.mkdir()
        (target / "results.json").write_text("{}")
    assert cli.main(["rescore", str(run), "--output-dir", str(target), *extra]) == 2
    err = capsys.readouterr().err
    assert says in err and err.startswith("mibe: error: ") and err.count("\n") == 1, err
    if before is not None:  # the original run folder is never rewritten
        assert (run / "samples" / "pubmedqa.jsonl").read_bytes() == before
    if how not in ("same dir", "full dir"):
        assert not target.exists()


def test_overwrite_replaces_an_earlier_rescore_and_nothing_else(tmp_path: Path, capsys) -> None:
    task_file, _ = specialty_run(tmp_path)
    new = tmp_path / "re"
    argv = ["rescore", str(tmp_path / "run"), "--tasks", str(task_file), "--output-dir", str(new)]
    assert cli.main([*argv, "--parser", "paper"]) == 0
    assert (
        json.loads((new / "results.json").read_text())["tasks"]["specialty"]["protocol"]["parser"] == "paper"
    )
    capsys.readouterr()
    assert cli.main([*argv, "--parser", "strict"]) == 2  # not without --overwrite
    err = capsys.readouterr().err
    assert "exists and is not empty" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert cli.main([*argv, "--parser", "strict", "--overwrite"]) == 0
    results = json.loads((new / "results.json").read_text())
    assert results["tasks"]["specialty"]["protocol"]["parser"] == "strict"
    assert results["tasks"]["specialty"]["metrics"]["accuracy"]["value"] == 1.0
    (new / "notes.txt").write_text("mine")  # a file mibe did not write is never deleted
    assert cli.main([*argv, "--overwrite"]) == 0  # --overwrite means one thing: what mibe wrote goes
    assert (new / "notes.txt").read_text() == "mine" and (new / "results.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("x")  # not a run folder: refused, untouched
    capsys.readouterr()
    assert cli.main([*argv[:-1], str(other), "--overwrite"]) == 2
    assert "mibe did not write" in capsys.readouterr().err and (other / "data.csv").is_file()
