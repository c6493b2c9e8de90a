"""HF data-parallel through `accelerate launch` (2 CPU processes, gloo): the same results as one
process, each document scored once, one samples file per task, one results file; resume works."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("accelerate", reason="data-parallel runs are launched by accelerate (mibe[train])")

OPTIONS = ["--demo", "--tasks", "all", "--max-new-tokens", "8", "--batch-size", "1", "--bootstrap", "50"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mibe_run(model: Path, out: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    args = ["run", "--model", str(model), "--output-dir", str(out), *OPTIONS, *extra]
    if processes == 1:
        command = [sys.executable, "-m", "mibe.cli", *args]
    else:
        # accelerate's --multi_gpu launcher is torchrun: it also starts CPU processes (gloo).
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        launcher += ["--num_processes", str(processes), "--main_process_port", str(_free_port())]
        launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        command = [*launcher, "-m", "mibe.cli", *args]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def samples(out: Path) -> dict[str, dict[str, dict]]:
    found = {}
    for path in sorted((out / "samples").iterdir()):
        assert path.suffix == ".jsonl", f"left behind: {path.name}"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), f"{path.name}: a document scored twice"
        found[path.stem] = {r["id"]: r for r in rows}
    return found


@pytest.fixture(scope="module")
def single(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dp") / "single"
    mibe_run(tiny_llama, out, 1)
    return out


def _same(a: Path, b: Path) -> None:
    ra, rb = (json.loads((x / "results.json").read_text()) for x in (a, b))
    assert ra["tasks"] == rb["tasks"] and len(ra["tasks"]) == 12
    sa, sb = samples(a), samples(b)
    assert sa.keys() == sb.keys()
    for task in sa:
        assert sa[task].keys() == sb[task].keys(), task
        for doc, row in sa[task].items():
            other = sb[task][doc]
            assert (row["raw_output"], row["prediction"]) == (other["raw_output"], other["prediction"])


def test_two_processes_equal_one(tiny_llama: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "dp"
    done = mibe_run(tiny_llama, out, 2)
    _same(single, out)
    assert not list(out.glob("**/*.part"))
    assert done.stderr.count("mibe: results in") == 1  # rank 0 alone reports the run
    # Credentialed tasks' merged samples stay owner-only, as in a one-process run.
    assert (out / "samples" / "mednli.jsonl").stat().st_mode & 0o077 == 0


def test_resume_after_a_killed_data_parallel_run(tiny_llama: Path, single: Path, tmp_path: Path) -> None:
    # The state a kill leaves: run.json, some merged samples, rank shards not yet merged, no results.
    out = tmp_path / "resumed"
    (out / "samples").mkdir(parents=True)
    shutil.copy(single / "run.json", out / "run.json")
    rows = [json.loads(line) for line in (single / "samples" / "pubmedqa.jsonl").read_text().splitlines()]
    seeded = [{**r, "seeded": True} for r in rows]
    (out / "samples" / "pubmedqa.jsonl").write_text(json.dumps(seeded[0]) + "\n")
    (out / "samples" / "pubmedqa.rank1.part").write_text(json.dumps(seeded[1]) + "\n")
    (out / "samples" / "pubmedqa.rank0.part").write_text(
        json.dumps(seeded[0]) + "\n"
    )  # merged before the kill
    mibe_run(tiny_llama, out, 2)
    _same(single, out)
    kept = [r["id"] for r in samples(out)["pubmedqa"].values() if r.get("seeded")]
    assert sorted(kept) == sorted(r["id"] for r in seeded[:2])  # merged, never scored again
