"""`--device auto`, the default of every command that loads a model: CUDA when present, else MPS, else
CPU, said in the run's opening lines; the resolved device is what run.json records and what resume
compares, so a folder recorded on `cpu` (before auto existed) keeps resuming on a CPU machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe import cli
from mibe.backends import devices
from mibe.types import RunConfig

pytestmark = pytest.mark.skipif(devices.missing("cuda") is None, reason="this machine has CUDA: auto is cuda")


def _argv(model: Path, out: Path) -> list[str]:
    return ["run", "--model", str(model), "--demo", "--tasks", "pubmedqa", "--output-dir", str(out)]


def test_auto_is_the_default_and_picks_the_cpu_here(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert RunConfig(model="m").device == "auto"
    assert cli.main([*_argv(tiny_llama, tmp_path / "r"), "--limit", "1", "--bootstrap", "20"]) == 0
    err = capsys.readouterr().err
    assert "mibe: --device auto: cpu (this machine has no CUDA or MPS device)" in err
    assert err.index("--device auto") < err.index("mibe: protocol ")  # before the first request
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["config"]["device"] == "cpu" and run["model"]["device"] == "cpu"


def test_a_folder_recorded_on_cpu_resumes_under_auto(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, argv = tmp_path / "r", [*_argv(tiny_llama, tmp_path / "r"), "--limit", "2", "--bootstrap", "20"]
    assert cli.main([*argv, "--device", "cpu"]) == 0
    samples = out / "samples" / "pubmedqa.jsonl"
    first = samples.read_text().splitlines()[0] + "\n"
    samples.write_text(first)  # as a run killed after its first document leaves it
    (out / "results.json").unlink()
    capsys.readouterr()
    assert cli.main(argv) == 0  # the default, auto: cpu here, as recorded
    rows = samples.read_text()
    assert rows.startswith(first) and len(rows.splitlines()) == 2  # resumed, not restarted
    # What is compared is the resolved device: a folder recorded on a GPU is another run here.
    run = json.loads((out / "run.json").read_text())
    run["config"]["device"] = "cuda"
    (out / "run.json").write_text(json.dumps(run))
    assert cli.main(argv) == 2
    assert "device: 'cuda' -> 'cpu'" in capsys.readouterr().err


def test_auto_resolves_to_a_device_torch_accepts() -> None:
    found, line = devices.resolve("auto")
    assert devices.missing(found) is None and found in ("cpu", "mps")
    assert line is not None and line.startswith(f"mibe: --device auto: {found}")
    assert devices.resolve("cpu") == ("cpu", None)  # a named device is kept, silently
