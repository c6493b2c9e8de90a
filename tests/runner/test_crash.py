"""SIGKILL at random points of a run, then resume: the same results, no sample lost or counted twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TASKS = "pubmed_sum,pubmedqa,hoc"


def args(model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "mibe.cli", "run", "--model", str(model), "--tasks", TASKS, "--demo",
            "--batch-size", "1", "--bootstrap", "100", "--output-dir", str(out)]  # fmt: skip


@pytest.mark.slow
def test_random_sigkills_then_resume_equal_uninterrupted(tiny_llama: Path, tmp_path: Path) -> None:
    whole = subprocess.run(args(tiny_llama, tmp_path / "whole"), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    expected = json.loads((tmp_path / "whole" / "results.json").read_text())["tasks"]
    rng = random.Random(20261127)
    kills = 0
    for trial in range(4):
        out = tmp_path / f"trial{trial}"
        for _ in range(2):  # two kills per trial at random moments, then a run to the end
            proc = subprocess.Popen(
                args(tiny_llama, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(rng.uniform(2.0, 9.0))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
        final = subprocess.run(args(tiny_llama, out), capture_output=True, text=True, timeout=600)
        assert final.returncode == 0, final.stderr[-2000:]
        assert json.loads((out / "results.json").read_text())["tasks"] == expected, f"trial {trial}"
        for task in TASKS.split(","):
            ids = [
                json.loads(line)["id"]
                for line in (out / "samples" / f"{task}.jsonl").read_text().splitlines()
            ]
            assert len(ids) == len(set(ids)) == 3, (trial, task)
    assert kills >= 4  # most kills must land mid-run for the test to mean anything
