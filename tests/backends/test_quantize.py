"""`--quantize 4bit|8bit` (HF, bitsandbytes) and `--device-map`: what can be checked without a GPU:
the one-line refusals, the memory estimate at the chosen precision, and quantisation as a fact of the
model (resume identity, description, row label) that never splits a board's column."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from mibe import cli
from mibe.backends import memory, quantize
from mibe.boards import table as board
from mibe.types import MibeError
from tests.support.paths import FIXTURES, REPO

FIXTURE = FIXTURES / "runs" / "v1-zero"
NO_BNB = importlib.util.find_spec("bitsandbytes") is None


def _last(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.skipif(not NO_BNB, reason="bitsandbytes is installed here: its absence cannot be shown")
def test_quantize_without_bitsandbytes_is_one_line(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--model", str(tiny_llama), "--demo", "--tasks", "pubmedqa", "--limit", "1"]
    assert cli.main([*argv, "--quantize", "4bit", "--output-dir", str(tmp_path / "r")]) == 2
    last = _last(capsys)[-1]
    assert last == (
        "mibe: error: --quantize 4bit: needs bitsandbytes, which is not installed: pip install "
        "bitsandbytes (Linux x86_64 or aarch64 with a CUDA GPU)"
    )
    assert not (tmp_path / "r" / "samples" / "pubmedqa.jsonl").exists()  # nothing scored


def test_bitsandbytes_on_a_machine_without_cuda_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(  # as where bitsandbytes is installed: the device is what refuses
        importlib.util, "find_spec", lambda name, *a: object() if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(
        MibeError, match=r"^--quantize 8bit: bitsandbytes quantises on a CUDA GPU and --device is cpu"
    ):
        quantize.check_runnable("8bit", "cpu")
    quantize.check_runnable("8bit", "cuda")  # passes: the GPU check script loads it for real


@pytest.mark.parametrize("backend", ["vllm", "openai"])
def test_quantize_is_hf_only(backend: str) -> None:
    with pytest.raises(
        MibeError, match=r"^--quantize 4bit: HF backend only .*pre-quantised checkpoint \(AWQ, GPTQ\)"
    ):
        quantize.check("4bit", backend)
    with pytest.raises(MibeError, match=r"^--device-map auto: HF backend only"):
        quantize.check(None, backend, "auto")


def test_openai_with_quantize_is_refused_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--demo"]
    assert (
        cli.main([*argv, "--tasks", "pubmedqa", "--quantize", "8bit", "--output-dir", str(tmp_path / "r")])
        == 2
    )
    assert _last(capsys)[-1].startswith("mibe: error: --quantize 8bit: HF backend only")


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_the_dry_run_estimates_memory_at_the_chosen_quantisation(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str], bits: str
) -> None:
    argv = ["run", "--model", str(tiny_llama), "--demo", "--tasks", "pubmedqa", "--dry-run"]
    assert cli.main([*argv, "--quantize", bits, "--dtype", "float32"]) == 0
    out = capsys.readouterr()
    said = out.out + out.err
    expected = memory.weights(memory.load_config(tiny_llama), bits, "float32")
    assert expected.quantized > 0 and expected.kept  # some layers quantised, the head kept
    weights = f"memory: weights {expected.bytes / memory.GIB:.2f} GiB"
    assert f"{weights} ({expected.parameters:,} parameters at {bits})" in said
    assert expected.bytes < memory.weights(memory.load_config(tiny_llama), "float32").bytes
    assert "stay float32" in said and "bitsandbytes converts linear layers only" in said


def test_quantisation_labels_the_row_but_shares_the_column(tmp_path: Path) -> None:
    quantised = tmp_path / "q"
    shutil.copytree(FIXTURE, quantised)
    results = json.loads((quantised / "results.json").read_text())
    results["model"]["quantization"] = "4bit"
    (quantised / "results.json").write_text(json.dumps(results))
    (baseline,) = board.run_rows(board.load_run(FIXTURE))
    (four,) = board.run_rows(board.load_run(quantised))
    assert set(four.cells) == set(baseline.cells)  # the same column keys: one column each
    assert four.label == f"{baseline.label} (4bit)" and baseline.label == "tiny"


def test_quantize_is_in_the_resume_identity_only_when_given() -> None:
    from mibe.runner.api import identity
    from mibe.types import RunConfig

    assert "quantize" not in identity(RunConfig(model="m"))  # older folders keep resuming
    assert identity(RunConfig(model="m", quantize="4bit"))["quantize"] == "4bit"
    assert "device_map" not in identity(RunConfig(model="m", device_map="auto"))  # changes no number


# ---- QLoRA in `mibe train`: a 4-bit (or 8-bit) base under the LoRA adapters ----------------------
TRAIN = {"model": "m", "output_dir": "o", "data": "d.jsonl"}


def test_a_qlora_recipe_is_lora_over_a_quantised_base() -> None:
    from mibe.training import recipe

    loaded, _ = recipe.load("sft", None, TRAIN, ["quantize=4bit"])
    assert loaded["quantize"] == "4bit" and loaded["lora"] is not None
    assert recipe.identity(loaded)["quantize"] == "4bit"
    plain, _ = recipe.load("sft", None, TRAIN, [])
    assert "quantize" not in recipe.identity(plain)  # trainings from before QLoRA keep resuming


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["quantize=2bit"], "recipe key quantize: 4bit or 8bit, got '2bit'"),
        (["quantize=4bit", "lora=null"], "QLoRA trains LoRA adapters over a quantised base"),
    ],
)
def test_bad_qlora_recipes_are_one_line(sets: list[str], message: str) -> None:
    from mibe.training import recipe

    with pytest.raises(MibeError) as err:
        recipe.load("sft", None, TRAIN, sets)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(not NO_BNB, reason="bitsandbytes is installed here: its absence cannot be shown")
def test_qlora_without_bitsandbytes_is_one_line() -> None:
    import torch

    from mibe.training import trainer

    with pytest.raises(MibeError, match=r"^recipe key quantize 4bit: needs bitsandbytes, which is not"):
        trainer.qlora_kwargs("4bit", torch.float32)


# ---- the GPU check script: what a CPU can rehearse ------------------------------------------------
BENCH = REPO / "benchmarks"


@pytest.mark.slow
def test_the_gpu_check_rehearses_on_a_cpu() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(BENCH / "gpu_quant_check.py"), "--size", "tiny", "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(BENCH.parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.split("SUMMARY ", 1)[1])
    checks = summary["checks"]
    assert checks["4bit"] == checks["8bit"] == {"ok": None, "skipped": "needs CUDA"}
    assert checks["bf16"]["ok"] and checks["device_map"]["ok"]
    assert checks["device_map"]["describe"]["device_map"] == "auto"
    step = checks["qlora_step"]
    assert step["ok"] and step["tensors_updated"] == step["trainable_tensors"] > 0  # every adapter moved
    assert "vLLM on a GPU" in summary["unverified"]


@pytest.mark.skipif(NO_BNB is False, reason="bitsandbytes is installed here")
def test_the_gpu_check_without_a_wheel_is_one_line(tmp_path: Path) -> None:
    import shutil as sh
    import subprocess

    copy = tmp_path / "repo" / "benchmarks"
    copy.mkdir(parents=True)
    sh.copy(BENCH / "gpu_quant_check.sh", copy)
    result = subprocess.run(
        ["bash", str(copy / "gpu_quant_check.sh")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1].startswith("gpu_quant_check: no bitsandbytes wheel in .whl/")
    )
