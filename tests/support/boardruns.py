"""Run folders the board tests read: real tiny-LLaMA runs made once per session (the `board_runs`
fixture in tests/conftest.py), and run folders written by hand whose right answers are known."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from mibe import resources
from mibe.runner import api
from mibe.scoring import kinds
from mibe.types import RunConfig

TASKS = ("pubmedqa", "medqa", "mednli", "hoc")


ID_KEYS = ("id", "pmid", "realidx", "row_index")


COPIES = 1  # the 3 demo documents per task: real runs stay quick; significance cases are constructed


def stand_in_data(target: Path) -> Path:
    """The bundled demo documents, copied and renumbered, standing in for a user's real data: the
    leaderboard only reads the `invented` flag, so without it these count as real documents."""
    target.mkdir(parents=True)
    for task in TASKS:
        rows = [json.loads(x) for x in (resources.demo_dir() / f"{task}.jsonl").read_text().splitlines()]
        copies = 1 if task == "hoc" else COPIES
        with (target / f"{task}.jsonl").open("w") as out:
            for k in range(copies):
                for row in rows:
                    row = {key: value for key, value in row.items() if key != "invented"}
                    for key in ID_KEYS:
                        if key in row:
                            row[key] = f"{row[key]}-{k}"
                    out.write(json.dumps(row) + "\n")
    return target


def reseeded(base: Path, target: Path, seed: int) -> Path:
    """tinymodel.build(seed=seed) without training the tokenizer again: the same tokenizer (its
    training is deterministic), weights drawn from another seed: a second checkpoint."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shutil.copytree(base, target)
    torch.manual_seed(seed)
    LlamaForCausalLM(LlamaConfig.from_pretrained(base)).eval().save_pretrained(target)
    return target


def lora_adapter(base: Path, target: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)  # a real update, so the adapter changes predictions
    model.save_pretrained(target)
    return target


def make_board_runs(tiny_llama: Path, base: Path) -> dict[str, Path]:
    """The runs every leaderboard and HTML test reads, made once per test session (both test
    modules call this; the second finds them under pytest's base temp folder)."""
    root = base / "board-runs"
    done = root / "done.json"
    if done.is_file():
        return {name: Path(path) for name, path in json.loads(done.read_text()).items()}
    data = stand_in_data(root / "data")
    other = reseeded(tiny_llama, root / "tiny-other", seed=1)
    adapter = lora_adapter(tiny_llama, root / "adapter")
    common = dict(scoring="loglikelihood", max_new_tokens=8, bootstrap=200, batch_size=8)
    configs = {
        "zero": RunConfig(model=str(tiny_llama), tasks=TASKS, data_dir=str(data), **common),
        "oneshot": RunConfig(model=str(tiny_llama), tasks=TASKS, data_dir=str(data), num_fewshot=1, **common),
        "lora": RunConfig(
            model=str(tiny_llama), adapter=str(adapter), tasks=TASKS, data_dir=str(data), **common
        ),
        "other": RunConfig(model=str(other), tasks=TASKS, data_dir=str(data), **common),
        "partial": RunConfig(model=str(other), tasks=("pubmedqa",), data_dir=str(data), **common),
        "demo": RunConfig(model=str(tiny_llama), tasks=("pubmedqa", "mednli"), demo=True, **common),
    }
    out = {}
    for name, config in configs.items():
        out[name] = root / name
        api.run(RunConfig(**{**config.__dict__, "output_dir": str(out[name])}))
    done.write_text(json.dumps({name: str(path) for name, path in out.items()}))
    return out


LABELS = ("yes", "no", "maybe")


def constructed_run(folder: Path, name: str, right: set[int], n: int, **protocol: object) -> Path:
    """A run folder written by hand (results scored by mibe's own scorer) for significance cases."""
    golds = [LABELS[i % 3] for i in range(n)]
    preds = [g if i in right else LABELS[(i + 1) % 3] for i, g in enumerate(golds)]
    scored = kinds.score_task(
        "choice", ("accuracy", "macro_f1"), golds, preds, LABELS, "strict", seed=1, n_boot=100
    )
    key = {
        "task": "pubmedqa",
        "task_version": 1,
        "data": {"fingerprint": "sha256:constructed", "n_rows": n},
        "split": "test",
        "limit": None,
        "shots": 0,
        "scoring": "generate",
        "parser": "strict",
        "chat_template": None,
        "system_prompt": None,
        "max_new_tokens": 32,
        "stop": ["\n\n"],
        **protocol,
    }
    entry = {"protocol": key, "n": n, "invented": False, "partial": False, "metrics": scored["metrics"]}
    (folder / "samples").mkdir(parents=True)
    data = {"model": {"name": name, "path": f"/models/{name}", "adapter": None}, "tasks": {"pubmedqa": entry}}
    (folder / "results.json").write_text(json.dumps(data))
    with (folder / "samples" / "pubmedqa.jsonl").open("w") as out:
        for i, (g, p) in enumerate(zip(golds, preds, strict=True)):
            row = {
                "id": f"d{i}",
                "prompt": "",
                "raw_output": p,
                "prediction": p,
                "gold": g,
                "score": float(g == p),
            }
            out.write(json.dumps(row) + "\n")
    return folder


def run_cli(*args: str) -> tuple[int, str, str]:
    from mibe import cli

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main(list(args))
    finally:
        sys.stdout, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()
