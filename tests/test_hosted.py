"""Hosted-model baselines (issue 30 item 4): `--tasks public`, endpoint context limits, pricing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe.run import api
from mibe.types import RunConfig

# The paper's "8 datasets without privacy concerns" (the ones it sent to ChatGPT and GPT-4).
PAPER_PUBLIC = {"pubmedqa", "medqa", "medmcqa", "ddi2013", "hoc", "mtsample", "pubmed_sum", "bionli"}


def test_tasks_public_runs_exactly_the_non_credentialed_builtins(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.backends.hf import HFBackend

    out = tmp_path / "r"
    config = RunConfig(
        model=str(tiny_llama),
        tasks=("public",),
        demo=True,
        limit=1,
        max_new_tokens=2,
        output_dir=str(out),
        bootstrap=0,
    )
    api.run(config, backend=HFBackend(str(tiny_llama)), say=lambda _: None)
    written = json.loads((out / "results.json").read_text())
    assert set(written["tasks"]) == PAPER_PUBLIC


def test_tasks_list_marks_the_public_group(capsys: pytest.CaptureFixture[str]) -> None:
    from mibe.cli import main

    assert main(["tasks", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = {line.split()[0] for line in lines[1:] if "all, public" in line}
    assert marked == PAPER_PUBLIC
