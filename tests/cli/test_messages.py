"""What a new user reads: a model that is not a model, messages that name their fix, `--help` with
defaults."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from mibe import cli
from tests.support.paths import REPO


def mibe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "mibe", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_model_that_is_not_a_model_says_so_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "notamodel").mkdir()
    for model, said in (
        (tmp_path / "notamodel", "has no config.json"),
        (tmp_path / "config.json", "is a file"),
    ):
        result = mibe(
            "run", "--model", str(model), "--tasks", "ddi2013", "--demo", "--output-dir", str(tmp_path / "r")
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "not a causal LM mibe can load" in lines[0] and said in lines[0] and "smollm2-135m" in lines[0]


def test_messages_name_the_fix(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["run", "--model", "x", "--tasks", "PubMedQA"]) == 2
    assert "did you mean 'pubmedqa'" in capsys.readouterr().err
    assert cli.main(["run", "--model", "x", "--data-dir", str(empty)]) == 2
    assert "--demo" in capsys.readouterr().err
    assert cli.main(["data", "check", "--demo", "--tasks", "pubmedqa,mednli"]) == 0
    assert "2 of 2 tasks have usable data" in capsys.readouterr().out


def test_run_help_shows_help_and_defaults() -> None:
    text = mibe("run", "--help").stdout
    flat = " ".join(text.split())
    for flag, default in (
        ("--num-fewshot", "0"),
        ("--seed", "1234"),
        ("--scoring", "generate"),
        ("--protocol", "mibe"),
        ("--dtype", "auto"),
        ("--device", "auto"),
        ("--tasks", "all"),
    ):
        assert re.search(rf"{flag} \S+ .*?\(default: {default}\)", flat), flag
    assert "--max-new-tokens MAX_NEW_TOKENS cap on each answer" in flat  # fmt: skip
