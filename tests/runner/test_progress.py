"""What a run shows while it works: the progress bar, each step of the backend, where it wrote."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mibe.types import Request
from tests.support.notes import run, scripted, workspace
from tests.support.paths import REPO


def test_the_progress_bar_is_closed_when_a_batch_fails(tmp_path: Path, monkeypatch) -> None:
    from mibe.runner import batches

    made = []
    real = batches.progress
    monkeypatch.setattr(batches, "progress", lambda *a: made.append(real(*a)) or made[-1])
    with pytest.raises(KeyboardInterrupt):
        run(workspace(tmp_path), tmp_path / "run", backend=scripted(fail_after=1), batch_size=1)
    assert len(made) == 1 and made[0].bar.disable  # tqdm's close() disables the bar


def test_evaluate_says_where_it_wrote(tiny_llama: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    import mibe

    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mibe"):
        results = mibe.evaluate(
            str(tiny_llama), tasks="ddi2013", demo=True, limit=1, bootstrap=10, max_new_tokens=2
        )
    assert results.run_dir.parent == Path("runs") and (tmp_path / results.run_dir / "results.json").is_file()
    assert json.loads((tmp_path / results.run_dir / "results.json").read_text()) == json.loads(
        json.dumps(results)
    )
    assert str(results.run_dir) in caplog.text
    small = {"demo": True, "limit": 1, "bootstrap": 10, "max_new_tokens": 2}
    chosen = mibe.evaluate(str(tiny_llama), tasks="ddi2013", output_dir=str(tmp_path / "mine"), **small)
    assert chosen.run_dir == tmp_path / "mine"


def test_hf_backend_reports_each_step(tiny_llama: Path) -> None:
    from mibe.backends.hf import HFBackend

    backend = HFBackend(str(tiny_llama))
    steps: list[int] = []
    backend.on_step = steps.append
    backend.generate([Request("a", "Question: is it?", 5), Request("b", "Another question here", 5)])
    assert 1 <= len(steps) <= 5 and set(steps) == {2}  # one call per step, two rows each
    steps.clear()
    backend.loglikelihood([Request("a", "Is it?", 0, (), (" yes", " no"))])
    assert steps and all(n > 0 for n in steps)


@pytest.mark.slow
def test_progress_counts_whole_documents_one_bar_at_a_time_and_the_run_ends_with_next_steps(
    tiny_llama: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo run"
    done = subprocess.run(
        [sys.executable, "-m", "mibe", "run", "--model", str(tiny_llama), "--demo", "--tasks",
         "pubmedqa,mtsample", "--max-new-tokens", "4", "--bootstrap", "20", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stderr  # a pipe, as in a log file
    assert "\x1b[A" not in log  # no second bar moving the cursor up
    counts = re.findall(r"\| ([\d.]+)/(\d+) doc", log)
    assert counts and all("." not in n for n, _ in counts)  # whole documents only
    assert {total for _, total in counts} == {"3"} and ("3", "3") in counts
    assert re.search(r"\d+ tok", log)
    assert "Loading" not in log  # the model's loading bar is off under the task's bar
    tail = log[log.index("next:") :]
    assert f"mibe view '{out}' -o 'demo run.html'" in tail and f"mibe leaderboard '{out}'" in tail
    ids = [json.loads(line)["id"] for line in (out / "samples" / "mtsample.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["demo-mtsample-1", "demo-mtsample-2", "demo-mtsample-3"]
