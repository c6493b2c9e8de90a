"""The output folder: one mibe did not write is never touched, --overwrite deletes only what mibe wrote,
links inside a run folder are refused, and a second rescore into a locked folder is refused."""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

import pytest

from mibe import cli
from mibe.runfolder import rescore
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support.notes import run, samples, scripted, workspace


@pytest.mark.parametrize(
    "foreign",
    [
        {"results.json": '{"tasks": {"mine": 1}}'},
        {"samples/notes.jsonl": '{"id": "n0", "prompt": "someone else\'s"}\n'},
        {"notes.txt": "my thesis"},
        {"run.json": '{"not": "mibe"}'},
    ],
)
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_foreign_files_is_refused_and_left_alone(
    tmp_path: Path, foreign: dict[str, str], overwrite: bool
) -> None:
    out = tmp_path / "out"
    for name, text in foreign.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    with pytest.raises(MibeError, match="holds files mibe did not write"):
        run(workspace(tmp_path), out, overwrite=overwrite)
    for name, text in foreign.items():
        assert (out / name).read_text() == text


def test_the_default_output_folder_beside_other_runs_is_fine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "an-earlier-run").mkdir(parents=True)
    config = RunConfig(model="scripted", tasks=(str(workspace(tmp_path / "w")),), bootstrap=20)
    api.run(config, backend=scripted())
    assert len(list((tmp_path / "runs").glob("scripted-*/results.json"))) == 1


def test_overwrite_deletes_only_what_mibe_wrote(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out)
    (out / "samples" / "kept.jsonl").write_text("mine\n")
    (out / "notes.txt").write_text("mine")
    run(workspace(tmp_path), out, overwrite=True, limit=2)
    assert (out / "samples" / "kept.jsonl").read_text() == "mine\n" and (out / "notes.txt").exists()
    assert len(samples(out)) == 2


@pytest.mark.parametrize("link", ["samples/notes.jsonl", "samples", "samples/other.jsonl", "results.json"])
def test_a_link_in_a_run_folder_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, link: str
) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out, batch_size=1)
    victim = tmp_path / "victim"
    if link == "samples":
        shutil.copytree(out / "samples", victim)
    else:
        shutil.copy(out / "samples" / "notes.jsonl", victim)
    (out / "results.json").unlink()  # a run killed before its results: the next run resumes it
    target = out / link
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(victim)
    before = {p: p.read_bytes() for p in [victim, *victim.rglob("*")] if p.is_file()}
    with pytest.raises(MibeError, match=r"is a link \(to .*victim\); a run folder holds plain files only"):
        run(workspace(tmp_path), out, batch_size=1)
    assert {p: p.read_bytes() for p in [victim, *victim.rglob("*")] if p.is_file()} == before


def test_readers_refuse_a_linked_samples_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out)
    victim = tmp_path / "elsewhere.jsonl"
    (out / "samples" / "notes.jsonl").rename(victim)
    (out / "samples" / "notes.jsonl").symlink_to(victim)
    for argv in (["view", str(out), "-o", str(tmp_path / "p.html")], ["audit", str(out)]):
        assert cli.main(argv) == 2
        assert "is a link" in capsys.readouterr().err


def test_a_second_rescore_into_a_locked_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out)
    target = tmp_path / "re"
    target.mkdir()
    with (target / ".lock").open("a+") as other:  # another process's lock: a separate open file
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(MibeError, match="another mibe process"):
            rescore.rescore(out, "paper", [], target)
    assert sorted(p.name for p in target.iterdir()) == [".lock"]
    rescore.rescore(out, "paper", [], target)  # once the other is done
    assert (target / "results.json").is_file()
