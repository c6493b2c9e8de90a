"""The pieces a run hands to the Hugging Face Trainer: the output folder's state, precision, DeepSpeed
config, TrainingArguments, collators, model (+ LoRA), tokenizer, and merging an adapter."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from mibe.log import logger
from mibe.training import callbacks, provenance
from mibe.training import recipe as recipes
from mibe.types import MibeError


def cache_root(recipe: dict[str, Any]) -> Path:
    from mibe.backends import embedded

    return (
        Path(recipe["cache_dir"]).expanduser() if recipe["cache_dir"] else embedded.cache_dir() / "training"
    )


def folder_state(out: Path, identity: dict[str, Any], overwrite: bool) -> tuple[str, dict | None]:
    """fresh, resume or done; refuses a folder that holds something else."""
    previous = provenance.read(out)
    if previous is None:
        if out.exists() and any(out.iterdir()):
            raise MibeError(f"{out}: not empty and holds no {provenance.FILE}; choose another output_dir")
        return "fresh", None
    if previous.get("identity") != identity:
        if not overwrite:
            old, new = previous.get("identity") or {}, identity
            key = next((k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)), "?")
            raise MibeError(
                f"{out}: holds a training run with a different {key} ({old.get(key)!r} -> {new.get(key)!r}); "
                "use another output_dir, or --overwrite to start again"
            )
    elif not overwrite:
        if previous.get("complete"):
            return "done", previous
        return "resume", previous
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise MibeError(f"--overwrite: delete {out} yourself before a multi-process launch")
    logger.info(f"mibe: --overwrite: removing {out}")
    shutil.rmtree(out)
    return "fresh", None


def precision(requested: str) -> tuple[str, str]:
    """The precision used and why (recorded): bf16 where the hardware has it, else fp32."""
    import torch

    cuda = torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if requested == "auto":
        if bf16_ok:
            return "bf16", "auto: the GPU supports bf16 (the paper's precision)"
        return "fp32", "auto: no GPU with bf16 here, so fp32 instead of the paper's bf16"
    if requested == "fp16" and not cuda:
        raise MibeError("precision fp16: needs a CUDA GPU; use fp32 (or bf16) on a CPU")
    if requested == "bf16" and cuda and not bf16_ok:
        raise MibeError("precision bf16: this GPU lacks bf16; use fp16 or fp32")
    return requested, "as the recipe asks"


def deepspeed_config(setting: Any) -> tuple[Any, dict[str, Any] | None, str | None]:
    """(what TrainingArguments takes, the config as a dict, its file) for a name, a path or a mapping."""
    if setting is None:
        return None, None, None
    if isinstance(setting, dict):
        return setting, setting, None
    path = Path(setting).expanduser()
    if not path.is_file():
        path = recipes.shipped_dir() / "deepspeed" / f"{setting}.json"
    if not path.is_file():
        raise MibeError(f"deepspeed {setting}: no such file; use zero2, zero3 or a DeepSpeed JSON file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MibeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return str(path.resolve()), config, str(path.resolve())


def training_arguments(recipe: dict[str, Any], out: Path, used: str, ds: Any) -> Any:
    import dataclasses

    import torch
    from transformers import TrainingArguments

    has_eval = recipe["held_out"] > 0
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    # transformers 5 folded warmup_ratio into warmup_steps (a float below 1 is a ratio).
    warmup = {"warmup_ratio": recipe["warmup_ratio"]} if "warmup_ratio" in names else {}
    warmup = warmup or {"warmup_steps": recipe["warmup_ratio"]}
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing.
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    )
    extra = {**warmup, checkpointing: recipe["gradient_checkpointing"]}
    return TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=recipe["batch_size"],
        per_device_eval_batch_size=recipe["batch_size"],
        gradient_accumulation_steps=recipe["gradient_accumulation"],
        learning_rate=recipe["learning_rate"],
        weight_decay=recipe["weight_decay"],
        adam_beta1=recipe["adam_beta1"],
        adam_beta2=recipe["adam_beta2"],
        adam_epsilon=recipe["adam_epsilon"],
        max_grad_norm=recipe["max_grad_norm"],
        optim="adamw_torch",
        lr_scheduler_type=recipe["lr_scheduler"],
        num_train_epochs=recipe["epochs"],
        max_steps=recipe["max_steps"] or -1,
        logging_steps=recipe["log_every"],
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=recipe["eval_every"] if has_eval else None,
        prediction_loss_only=True,
        save_strategy="steps",
        save_steps=recipe["save_every"],
        save_total_limit=recipe["save_total_limit"],
        seed=recipe["seed"],
        bf16=used == "bf16",
        fp16=used == "fp16",
        use_cpu=not torch.cuda.is_available(),
        deepspeed=ds,
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        label_names=["labels"],
        **extra,
    )


def pad_collator(pad_id: int):
    """Right-pads a batch: pad ids, attention mask 0, labels -100 (never learned)."""
    import torch

    def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = [r["input_ids"] + [pad_id] * (width - len(r["input_ids"])) for r in rows]
        labels = [r["labels"] + [-100] * (width - len(r["labels"])) for r in rows]
        mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }

    return collate


def block_collator(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Packed blocks have no padding: every token is a label (EOS included, unlike a pad-masking collator)."""
    import torch

    ids = torch.tensor([r["input_ids"] for r in rows])
    return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}


def load_model(recipe: dict[str, Any], used: str, deepspeed: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    lora = recipe["lora"] is not None
    # A frozen LoRA base (or DeepSpeed's own casting) can live in half precision; full fine-tuning
    # without DeepSpeed keeps fp32 master weights and autocasts.
    dtype = torch.float32
    if used == "bf16" and (lora or deepspeed):
        dtype = torch.bfloat16
    elif used == "fp16" and lora:
        dtype = torch.float16
    if deepspeed:
        import deepspeed as ds

        # ZeRO-3 partitions the weights while they load, so DeepSpeed's process group must exist
        # before from_pretrained (on CPU ranks accelerate leaves only torch's own group).
        if not ds.comm.is_initialized():
            ds.init_distributed()
    bits = recipe.get("quantize")  # QLoRA: the frozen base loads quantised, placed on this rank's GPU
    extra = qlora_kwargs(bits, dtype) if bits else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            recipe["model"], dtype=dtype, trust_remote_code=recipe["trust_remote_code"], **extra
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise MibeError(f"model {recipe['model']}: not a causal LM that can be loaded ({first})") from None
    if not lora:
        return model
    from peft import LoraConfig, get_peft_model

    spec = recipe["lora"]
    if bits:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(recipe["gradient_checkpointing"])
        )
    config = LoraConfig(
        r=spec["r"],
        lora_alpha=spec["alpha"],
        lora_dropout=spec["dropout"],
        target_modules=spec["target_modules"],
        task_type="CAUSAL_LM",
    )
    if recipe["gradient_checkpointing"]:
        model.enable_input_require_grads()  # checkpointed LoRA needs grads flowing into the frozen embeddings
    return get_peft_model(model, config)


def qlora_kwargs(bits: str, dtype: Any) -> dict[str, Any]:
    """from_pretrained's quantisation arguments for a QLoRA base (one line when it cannot run here)."""
    import os

    import torch

    from mibe.backends import quantize

    device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    quantize.check_runnable(bits, device, "recipe key quantize")
    compute = torch.bfloat16 if dtype == torch.float32 else dtype
    return quantize.load_kwargs(bits, None, device, compute)


def load_tokenizer(recipe: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            recipe["model"], trust_remote_code=recipe["trust_remote_code"]
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise MibeError(f"model {recipe['model']}: cannot load its tokenizer ({first})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def merge(out: Path, recipe: dict[str, Any]) -> None:
    """The adapter (kept in out/adapter) folded into the base weights, saved as a full model in out."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    # Rank 0 merges alone, after training: a ZeRO-3 context still set would partition the base
    # model across ranks that are no longer listening.
    unset_hf_deepspeed_config()
    adapter = out / "adapter"
    if not adapter.is_dir():
        adapter.mkdir()
        for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
            if (out / name).is_file():
                (out / name).replace(adapter / name)
    base = AutoModelForCausalLM.from_pretrained(
        recipe["model"], dtype="auto", trust_remote_code=recipe["trust_remote_code"]
    )
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    logger.info(f"mibe: merged the adapter into full weights in {out} (adapter kept in {adapter})")


def last_checkpoint(out: Path) -> str | None:
    """The newest checkpoint saved whole: the provenance file lands after every other file (on_save),
    so a folder without it was cut short by a kill and is passed over."""
    numbered = [(int(p.name[11:]), p) for p in out.glob("checkpoint-*") if p.name[11:].isdigit()]
    for _, path in sorted(numbered, reverse=True):
        if (path / provenance.FILE).is_file() and (path / "trainer_state.json").is_file():
            return str(path)
    return None


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def perplexity_of(metrics: dict[str, Any] | None) -> float | None:
    if not metrics or "eval_loss" not in metrics:
        return None
    return callbacks.perplexity(float(metrics["eval_loss"]))


def tokens_per_step(recipe: dict[str, Any], world: int) -> int:
    return recipe["block_size"] * recipe["batch_size"] * recipe["gradient_accumulation"] * world
