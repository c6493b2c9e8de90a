"""The shipped SLURM templates (docs/scale-out.md), run with bash as SLURM would run them: each array
task maps SLURM_ARRAY_TASK_ID to its shard and a fixed folder, a rerun resumes, the merge job merges.
`sbatch` itself is not run here (no SLURM on this machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mibe import cli, resources
from tests.support.demo import make_data
from tests.support.paths import REPO


def test_scale_out_prints_the_shipped_templates(capsys: pytest.CaptureFixture) -> None:
    for name in ("shard", "merge"):
        assert cli.main(["scale-out", "slurm", name]) == 0
        shown = capsys.readouterr().out
        assert shown == (resources.scale_out_dir() / "slurm" / f"{name}.sbatch").read_text()
        assert shown.startswith("#!/bin/bash") and "#SBATCH" in shown
    assert cli.main(["scale-out", "slurm"]) == 0
    assert "sbatch --array" in capsys.readouterr().out
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"scale-out" = "mibe/_shipped/scale-out"' in pyproject  # shipped in the wheel


def bash(template: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = resources.scale_out_dir() / "slurm" / f"{template}.sbatch"
    full = {**os.environ, "MIBE": f"{sys.executable} -m mibe", "PYTHONPATH": str(REPO), **env}
    return subprocess.run(["bash", str(script)], env=full, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_array_and_the_merge_job_run(tiny_llama: Path, tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    runs = tmp_path / "runs"
    flags = "--batch-size 1 --bootstrap 100 --max-new-tokens 12"
    common = {"MIBE_MODEL": str(tiny_llama), "MIBE_DATA_DIR": str(data), "MIBE_RUN_DIR": str(runs),
              "MIBE_TASKS": "pubmedqa", "MIBE_ARGS": flags}  # fmt: skip
    for task_id in (1, 2, 3):  # sbatch --array=1-3: SLURM_ARRAY_TASK_MIN 1 maps to shards 0..2
        env = {**common, "SLURM_ARRAY_TASK_ID": str(task_id), "SLURM_ARRAY_TASK_MIN": "1"}
        done = bash("shard", {**env, "SLURM_ARRAY_TASK_COUNT": "3"})
        assert done.returncode == 0, done.stderr[-2000:]
        run_json = json.loads((runs / f"shard-{task_id - 1}-of-3" / "run.json").read_text())
        assert run_json["shard"]["index"] == task_id - 1 and run_json["shard"]["of"] == 3
    requeued = bash("shard", {**common, "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1",
                              "SLURM_ARRAY_TASK_COUNT": "3"})  # fmt: skip
    assert requeued.returncode == 0, requeued.stderr[-2000:]  # the same folder: resumed, nothing redone
    samples = runs / "shard-0-of-3" / "samples" / "pubmedqa.jsonl"
    ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()]
    assert len(ids) == len(set(ids))
    merged = bash("merge", {**common, "MIBE_SHARDS": "3"})
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert merged.stdout.count("complete") == 3  # merge --status said each shard is whole
    results = json.loads((runs / "merged" / "results.json").read_text())
    assert results["tasks"]["pubmedqa"]["n"] == 12 and results["tasks"]["pubmedqa"]["metrics"]


def test_the_shard_template_needs_the_array_index(tmp_path: Path) -> None:
    done = bash("shard", {"MIBE_MODEL": "m", "MIBE_RUN_DIR": str(tmp_path), "SLURM_ARRAY_TASK_ID": ""})
    assert done.returncode != 0 and "sbatch --array" in done.stderr
