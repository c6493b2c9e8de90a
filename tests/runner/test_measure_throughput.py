"""`--dry-run --measure-throughput DOCS`: the one dry run that loads the model; its measured tokens per
second sets each shard's wall time in the plan, and nothing is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mibe import cli


def test_a_short_timed_run_sets_the_shards_wall_time(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    argv = ["run", "--model", str(tiny_llama), "--tasks", "pubmedqa,medqa", "--demo", "--dry-run"]
    argv += ["--shards", "2", "--measure-throughput", "4", "--max-new-tokens", "4", "--output-dir", str(out)]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    found = re.search(r"measured: ([\d,]+) tokens/s \(prompt plus generated\) over (\d+) documents", err)
    assert found and int(found.group(1).replace(",", "")) > 0 and found.group(2) == "4", err
    shards = [line for line in err.splitlines() if re.match(r"\d+/2\s", line)]
    assert len(shards) == 2 and all(not line.rstrip().endswith("-") for line in shards), err
    assert not out.exists()  # a dry run writes no run folder, measured or not


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--measure-throughput", "3"], "--measure-throughput DOCS is a dry run's: add --dry-run"),
        (["--dry-run", "--measure-throughput", "0"], "--measure-throughput 0: must be 1 or more"),
        (["--dry-run", "--shards", "2", "--throughput", "50", "--measure-throughput", "2"], "give one"),
    ],
)
def test_bad_measure_flags_are_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "run",
        "--model",
        "m",
        "--tasks",
        "pubmedqa",
        "--demo",
        *extra,
        "--output-dir",
        str(tmp_path / "r"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
