"""`mibe run` flags that are wrong, lost or contradictory: one line and exit 2, before the model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from mibe import cli
from tests.support.notes import main, one_line, run, workspace


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--seed", "-1"], "--seed -1: must be between 0 and"),
        (["--seed", str(2**32)], "--seed 4294967296: must be between"),
        (["--bootstrap", "-5"], "--bootstrap -5: must be 0"),
        (["--data", "mednli=/nowhere"], "--data mednli=...: no task 'mednli' among --tasks (pubmedqa)"),
        (["--request-timeout", "0"], "--request-timeout 0: must be a positive"),
    ],
)
def test_bad_run_flags_are_one_line_before_anything_loads(flags: list[str], says: str, capsys) -> None:
    code, err = main(
        "run", "--model", "/no/such/model", "--tasks", "pubmedqa", "--demo", *flags, capsys=capsys
    )
    one_line(code, err, says)


def test_an_output_folder_that_is_a_file_is_found_before_the_model_loads(tmp_path: Path, capsys) -> None:
    (tmp_path / "out").write_text("a file")
    args = ["run", "--model", "/no/such/model", "--tasks", "pubmedqa", "--demo"]
    code, err = main(*args, "--output-dir", str(tmp_path / "out"), capsys=capsys)
    one_line(code, err, "--output-dir")
    assert "is a file" in err and "model" not in err.replace("--model", "")
    code, err = main(*args, "--output-dir", str(tmp_path / "out" / "run"), capsys=capsys)
    one_line(code, err, "is a file, not a folder")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["--data", "notes=a.jsonl", "--data", "notes=b.jsonl"],
            "notes was already given --data notes=a.jsonl",
        ),
        (["--bootstrap", "100001"], "--bootstrap 100001: must be 0 (no intervals) to 100,000 resamples"),
    ],
)
def test_run_flags_that_would_be_silently_lost_or_exhaust_memory(
    tmp_path: Path, argv: list[str], said: str, capsys
) -> None:
    base = ["run", "--model", "/nonexistent-model", "--tasks", str(workspace(tmp_path)), "--output-dir"]
    assert cli.main([*base, str(tmp_path / "out"), *argv]) == 2
    assert said in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_answer_cap_that_fills_the_context_is_one_line(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    argv = ["run", "--model", str(tiny_llama), "--tasks", "pubmedqa", "--demo", "--limit", "1"]
    assert cli.main([*argv, "--max-new-tokens", "5000", "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "max_new_tokens 5000 (--max-new-tokens) leaves no room for a prompt in the model's" in err
    assert "allows -" not in err  # no negative allowance


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "--model", "/m", "--tasks", ","], "--tasks: names no task"),
        (["run", "--model", "/m", "--tasks", ""], "--tasks: names no task"),
        (["data", "check", "--tasks", " , "], "--tasks: names no task"),
        (["run", "--model", "/m", "--tasks", "pubmedqa", "--num-fewshot", "1", "--fewshot-seeds", "1,-2"],
         "each seed must be between 0 and 4294967295"),
        (["leaderboard", "{a}", "--delta-vs-base", "--base", "{a}={a}"], "a run is not its own base"),
        (["leaderboard", "{a}", "--delta-vs-base", "--base", "{a}={b}", "--base", "{a}={c}"],
         "was already given a base"),
        (["leaderboard", "{a}", "--no-published", "--plot", "{tmp}/fig.gif"],
         "name a .png, .pdf or .svg file"),
    ],
)  # fmt: skip
def test_flags_that_name_nothing_or_contradict_are_one_line(
    tmp_path: Path, argv: list[str], said: str, capsys
) -> None:
    names = {"a": tmp_path / "a", "b": tmp_path / "b", "c": tmp_path / "c", "tmp": tmp_path}
    for key in "abc":
        if any("{" + key + "}" in x for x in argv):  # the run folders this case names
            run(workspace(tmp_path / f"w{key}"), names[key])
    capsys.readouterr()
    assert cli.main([x.format(**names) for x in argv]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
