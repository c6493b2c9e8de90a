"""`mibe train` for real on the tiny LLaMA: pre-training (perplexity falls, block cache, mix shares,
kill and resume), LoRA SFT (merge, chat template, lineage), task fine-tuning scored by `mibe run`,
and the contamination guard refusing the evaluation documents. A few steps each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mibe.commands import train as train_cli
from mibe.training import provenance
from mibe.types import MibeError
from tests.support.paths import REPO

pytestmark = pytest.mark.slow  # trains the tiny LLaMA

EXAMPLES = REPO / "training" / "examples"


def train(*args: str) -> int:
    return train_cli.main(list(args))


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def doc(folder: Path) -> dict:
    return json.loads((folder / provenance.FILE).read_text())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("training-cache")


@pytest.fixture(scope="module")
def pretrained(tiny_llama: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrain") / "out"
    train(
        "pretrain", "--config", str(EXAMPLES / "tiny-pretrain.yaml"), "--model", str(tiny_llama),
        "--output-dir", str(out), "--max-steps", "12", "--set", "eval_every=4", "--set", "save_every=6",
        "--set", f"cache_dir={cache}",
    )  # fmt: skip
    return out


def test_pretraining_lowers_held_out_perplexity(pretrained: Path) -> None:
    evals = [row for row in metrics(pretrained) if "perplexity" in row]
    assert [row["step"] for row in evals] == [0, 4, 8, 12]  # a baseline before the first step, every 4
    first, last = evals[0]["perplexity"], evals[-1]["perplexity"]
    assert last < first / 2, [round(e["perplexity"], 1) for e in evals]
    trained = [row for row in metrics(pretrained) if "loss" in row]
    assert trained and all(row["tokens"] == row["step"] * 8 * 64 for row in trained)  # batch 8 x block 64
    assert all(row["tokens_per_s"] > 0 for row in trained)
    record = doc(pretrained)
    assert record["complete"] and record["progress"]["steps"] == 12
    assert record["progress"]["start"]["perplexity"] == pytest.approx(first)
    assert record["progress"]["end"]["perplexity"] == pytest.approx(last)


def test_pretraining_provenance_records_the_recipe_and_data(pretrained: Path, tiny_llama: Path) -> None:
    record = doc(pretrained)
    assert record["kind"] == "pretrain" and record["base_model"] == str(tiny_llama)
    assert record["recipe"]["file"] == str(EXAMPLES / "tiny-pretrain.yaml")
    assert (
        record["recipe"]["resolved"]["adam_beta2"] == 0.95
        and record["recipe"]["resolved"]["learning_rate"] == 3e-3
    )
    hyper = record["hyperparameters"]
    assert hyper["precision"] == "fp32" and "bf16" in hyper["precision_note"]  # no bf16 GPU here
    data = record["data"]
    for domain, name in (("biomedical", "biomedical"), ("clinical", "clinical"), ("general", "general")):
        file = EXAMPLES / "corpus" / f"{name}.jsonl"
        import hashlib

        assert (
            data["domains"][domain]["sources"][0]["files"][0]["sha256"]
            == hashlib.sha256(file.read_bytes()).hexdigest()
        )
    # 15:1:4 by blocks, within one block of each domain's share.
    total = data["train_blocks"] + data["held_out_blocks"]
    for domain, ratio in (("biomedical", 15), ("clinical", 1), ("general", 4)):
        entry = data["domains"][domain]
        assert abs(entry["train_blocks"] + entry["held_out_blocks"] - total * ratio / 20) <= 1.5
    assert (
        record["contamination"]["leaks"] == {}
        and record["contamination"]["evaluation_documents"]["pubmedqa"] == 3
    )
    assert record["lineage"] == [
        {
            **record["lineage"][0],
            "kind": "pretrain",
            "base_model": str(tiny_llama),
            "steps": 12,
            "lora": False,
        }
    ]
    for checkpoint in ("checkpoint-6", "checkpoint-12"):
        assert doc(pretrained / checkpoint)["progress"]["steps"] == int(checkpoint[11:])
    assert (pretrained / "model.safetensors").is_file() and (pretrained / "tokenizer.json").is_file()


def test_packed_blocks_are_cached_once_and_a_finished_run_is_not_redone(
    pretrained: Path, tiny_llama: Path, cache: Path, said: list[str]
) -> None:
    blocks = sorted(p.name for p in (cache / "blocks").iterdir())
    assert len(blocks) == 3 and all((cache / "blocks" / b / "mibe_blocks.json").is_file() for b in blocks)
    args = ["pretrain", "--config", str(EXAMPLES / "tiny-pretrain.yaml"), "--model", str(tiny_llama)]
    args += [
        "--output-dir",
        str(pretrained),
        "--max-steps",
        "12",
        "--set",
        "eval_every=4",
        "--set",
        "save_every=6",
    ]
    before = (pretrained / provenance.FILE).read_bytes()
    train(*args, "--set", f"cache_dir={cache}")
    assert any("already holds this finished run (tiny-llama0 -> pretrain); nothing to do" in m for m in said)
    assert (pretrained / provenance.FILE).read_bytes() == before
    with pytest.raises(MibeError, match=r"holds a training run with a different learning_rate .*--overwrite"):
        train(*args, "--set", f"cache_dir={cache}", "--set", "learning_rate=1e-3")


def _pretrain_args(tiny_llama: Path, out: Path, cache: Path) -> list[str]:
    return [
        "train", "pretrain", "--config", str(EXAMPLES / "tiny-pretrain.yaml"), "--model", str(tiny_llama),
        "--output-dir", str(out), "--max-steps", "12", "--set", "batch_size=2", "--set", "save_every=3",
        "--set", "held_out=0", "--set", f"cache_dir={cache}",
    ]  # fmt: skip


def test_a_killed_pretraining_run_resumes_from_its_last_checkpoint(
    tiny_llama: Path, cache: Path, tmp_path: Path, pretrained: Path
) -> None:
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mibe.cli", *_pretrain_args(tiny_llama, killed, cache)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.time() + 300
    while not (killed / "checkpoint-3" / provenance.FILE).is_file():
        assert process.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not doc(killed)["complete"]
    saved = sorted(int(p.name[11:]) for p in killed.glob("checkpoint-*"))
    assert saved and max(saved) < 12, saved
    train(*_pretrain_args(tiny_llama, killed, cache)[1:])
    events = [row for row in metrics(killed) if row.get("event") == "resume"]
    assert len(events) == 1 and Path(events[0]["checkpoint"]).parent == killed
    assert doc(killed)["complete"] and doc(killed)["progress"]["steps"] == 12
    # Same weights as a run never interrupted: the data order and RNG state come back with the checkpoint.
    train(*_pretrain_args(tiny_llama, whole, cache)[1:])
    from safetensors.torch import load_file

    a, b = load_file(killed / "model.safetensors"), load_file(whole / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max().item() < 1e-5, name
