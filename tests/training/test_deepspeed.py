"""Real DeepSpeed runs on two CPU ranks started by the `deepspeed` launcher, through the HF Trainer:
ZeRO-2 pre-training (training/deepspeed/zero2.json) and ZeRO-3 LoRA instruction tuning with --merge
(zero3.json), two optimiser steps each; then `mibe run` scores each checkpoint.

DeepSpeed JIT-compiles its CPU ops on first use (about 4.5 minutes here, cached in
~/.cache/torch_extensions); tests/prepare.sh builds them ahead so this test takes about a minute.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mibe.runner import api
from mibe.training import provenance
from mibe.types import RunConfig
from tests.support.paths import REPO

pytestmark = pytest.mark.slow  # DeepSpeed on two ranks

pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install '.[train]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(kind: str, recipe: str, *args: str, cwd: Path) -> None:
    """`deepspeed --no_local_rank --num_gpus 2 --module mibe.cli train KIND ...`, as docs/training.md says."""
    launcher = Path(sys.executable).parent / "deepspeed"
    command = [str(launcher), "--no_local_rank", "--num_gpus", "2", "--master_port", str(free_port())]
    command += [
        "--module",
        "mibe.cli",
        "train",
        kind,
        "--config",
        str(REPO / "training" / "examples" / recipe),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=1200, env=env, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_zero2_trains_on_two_ranks_through_the_hf_trainer(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "zero2"
    launch(
        "pretrain", "tiny-pretrain.yaml", "--model", str(tiny_llama), "--output-dir", str(out),
        "--deepspeed", "zero2", "--max-steps", "2", "--set", "save_every=2",
        "--set", f"cache_dir={tmp_path / 'c'}", cwd=tmp_path,
    )  # fmt: skip
    record = json.loads((out / provenance.FILE).read_text())
    assert record["complete"] and record["progress"]["steps"] == 2
    assert record["hyperparameters"]["world_size"] == 2 and record["hyperparameters"]["effective_batch"] == 16
    assert record["deepspeed"]["file"] == str(REPO / "training" / "deepspeed" / "zero2.json")
    assert record["deepspeed"]["config"]["zero_optimization"]["stage"] == 2
    assert record["progress"]["tokens"] == 2 * 16 * 64  # two steps of 2 ranks x 8 blocks x 64 tokens
    loss = record["progress"]["end"]["eval_loss"]
    assert 0 < loss < 10
    # DeepSpeed's own sharded state, one optimizer partition per rank, for resuming.
    shards = sorted(p.name for p in (out / "checkpoint-2" / "global_step2").iterdir())
    assert shards == [
        "mp_rank_00_model_states.pt",
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    ]
    results = api.run(
        RunConfig(
            model=str(out), tasks=("mednli",), demo=True, output_dir=str(tmp_path / "run"), bootstrap=50
        ),
    )
    assert results["tasks"]["mednli"]["n"] == 3


def test_zero3_lora_instruction_tuning_merges_on_two_ranks(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "zero3"
    launch(
        "sft", "tiny-sft.yaml", "--model", str(tiny_llama), "--output-dir", str(out), "--deepspeed", "zero3",
        "--max-steps", "2", "--merge", "--set", f"cache_dir={tmp_path / 'c'}", cwd=tmp_path,
    )  # fmt: skip
    record = json.loads((out / provenance.FILE).read_text())
    assert record["complete"] and record["deepspeed"]["config"]["zero_optimization"]["stage"] == 3
    assert record["output"] == {"adapter": False, "merged": True}
    # ZeRO-3 partitions parameters too: each rank holds its own shard of the (LoRA) weights.
    shards = sorted(p.name for p in (out / "checkpoint-2" / "global_step2").iterdir())
    assert [s for s in shards if "model_states" in s] == [
        "zero_pp_rank_0_mp_rank_00_model_states.pt",
        "zero_pp_rank_1_mp_rank_00_model_states.pt",
    ]
    from safetensors.torch import load_file

    merged, base = load_file(out / "model.safetensors"), load_file(tiny_llama / "model.safetensors")
    assert merged.keys() == base.keys()  # full weights, gathered from both ranks
    assert all(merged[k].shape == base[k].shape for k in base)
    assert any((merged[k] - base[k]).abs().max() > 0 for k in base)  # the adapter was merged in
    results = api.run(
        RunConfig(
            model=str(out), tasks=("mednli",), demo=True, output_dir=str(tmp_path / "run"), bootstrap=50
        ),
    )
    assert results["tasks"]["mednli"]["n"] == 3
