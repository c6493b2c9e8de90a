"""Training recipes: the paper's defaults, a YAML file over them, then command-line overrides.

A recipe is a flat mapping (plus `lora`, a small mapping) so that every key can be overridden with
`--set KEY=VALUE` and recorded verbatim in the checkpoint's provenance file.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
from pathlib import Path
from typing import Any

import yaml

from mibe import resources
from mibe.types import MibeError

KINDS = ("pretrain", "sft", "task")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")

LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"}

# Shared by the three kinds. Values the paper states are set per kind below; the others are ours.
_COMMON: dict[str, Any] = {
    "model": None,
    "output_dir": None,
    "deepspeed": None,
    "learning_rate": 1e-5,
    "weight_decay": 1e-5,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.01,
    "max_grad_norm": 1.0,
    "precision": "auto",
    "batch_size": 1,
    "gradient_accumulation": 1,
    "epochs": 1.0,
    "max_steps": None,
    "held_out": 0.0,
    "eval_every": 200,
    "save_every": 200,
    "log_every": 10,
    "save_total_limit": 2,
    "seed": 42,
    "gradient_checkpointing": False,
    "trust_remote_code": False,
    "num_proc": 1,
    "cache_dir": None,
    "allow_contamination": False,
    "drop_contaminated": False,
    "exclude_ids": None,
    "guard_data_dir": None,
    "guard_ngram": 13,
    "lora": None,
    "quantize": None,  # QLoRA: "4bit" (or "8bit") base under the LoRA adapters (bitsandbytes, a CUDA GPU)
    "merge": False,
}

DEFAULTS: dict[str, dict[str, Any]] = {
    # Me-LLaMA continual pre-training: AdamW (0.9, 0.95), wd 1e-5, lr 8e-6, cosine, warm-up 0.05,
    # bf16, gradient accumulation 16, one epoch, domains 15:1:4 (the mix file carries the ratio).
    "pretrain": {
        **_COMMON,
        "mix": None,
        "block_size": 4096,
        "learning_rate": 8e-6,
        "adam_beta2": 0.95,
        "warmup_ratio": 0.05,
        "gradient_accumulation": 16,
        "epochs": 1.0,
        "held_out": 1000,
    },
    # Me-LLaMA instruction tuning: LoRA, lr 1e-5, wd 1e-5, warm-up 0.01, 3 epochs.
    "sft": {
        **_COMMON,
        "data": None,
        "chat_template": "auto",
        "max_length": 4096,
        "lora": dict(LORA),
        "epochs": 3.0,
    },
    # The paper's supervised setting: instruction tuning on one task's training split.
    "task": {
        **_COMMON,
        "task": None,
        "data": None,
        "split": "train",
        "chat_template": "none",
        "max_length": 4096,
        "lora": dict(LORA),
        "epochs": 3.0,
    },
}

_NUMBER = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "output_dir": (str,),
    "deepspeed": (str, dict),
    "mix": (str, dict),
    "data": (str, list, dict),
    "task": (str,),
    "split": (str,),
    "chat_template": (str,),
    "lr_scheduler": (str,),
    "precision": (str,),
    "cache_dir": (str,),
    "guard_data_dir": (str,),
    "exclude_ids": (str, list),
    "lora": (dict,),
    "quantize": (str,),
    "max_steps": (int,),
    "epochs": _NUMBER,
    "learning_rate": _NUMBER,
    "weight_decay": _NUMBER,
    "adam_beta1": _NUMBER,
    "adam_beta2": _NUMBER,
    "adam_epsilon": _NUMBER,
    "warmup_ratio": _NUMBER,
    "max_grad_norm": _NUMBER,
    "held_out": _NUMBER,
}
_POSITIVE_INTS = ("batch_size", "gradient_accumulation", "eval_every", "save_every", "log_every", "num_proc")
_POSITIVE_INTS += ("block_size", "max_length", "guard_ngram", "save_total_limit")
# Keys that may change between a run and its resume without changing what is trained.
VOLATILE = (
    "output_dir",
    "eval_every",
    "save_every",
    "log_every",
    "save_total_limit",
    "num_proc",
    "cache_dir",
)
VOLATILE += ("merge", "allow_contamination")


def _near(key: str, allowed: Any) -> str:
    match = difflib.get_close_matches(key, sorted(allowed), n=1)
    return f"did you mean '{match[0]}'?" if match else f"known keys: {', '.join(sorted(allowed))}"


def shipped_dir() -> Path:
    return resources.shipped("training")


def shipped_recipe(kind: str) -> Path:
    return shipped_dir() / f"{kind}.yaml"


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MibeError(f"{path}: {what} not found; check the path") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise MibeError(
            f"{path}: YAML error{where}: {getattr(exc, 'problem', exc)}; fix the syntax"
        ) from None
    if not isinstance(raw, dict):
        raise MibeError(f"{path}: a {what} must be a YAML mapping of keys")
    return raw


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Text for a key that wants a number or a flag becomes one (YAML reads 1e-4 as a string)."""
    wanted = _TYPES.get(key) or (type(default),)
    if not isinstance(value, str) or str in wanted:
        return value
    text = value.strip()
    if text.lower() in ("null", "none", "~", ""):
        return None
    try:
        if bool in wanted:
            parsed = yaml.safe_load(text)
            return parsed if isinstance(parsed, bool) else value
        if int in wanted and float not in wanted:
            return int(text)
        if float in wanted:
            number = float(text)
            return (
                int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
            )
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        raise MibeError(f"recipe key {key}: {value!r} is not a valid value") from None


def _apply(recipe: dict[str, Any], key: str, value: Any, where: str) -> None:
    if "." in key:
        head, _, leaf = key.partition(".")
        if head != "lora":
            raise MibeError(f"{where}: {key}: only lora.* keys are nested")
        if leaf not in LORA:
            raise MibeError(f"{where}: unknown key '{key}'; {_near(leaf, LORA)}")
        if recipe.get("lora") is None:
            recipe["lora"] = dict(LORA)
        if leaf == "target_modules" and isinstance(value, str) and value != "all-linear":
            value = [v.strip() for v in value.split(",") if v.strip()]
        recipe["lora"][leaf] = _coerce(leaf, value, LORA[leaf]) if leaf != "target_modules" else value
        return
    if key not in recipe:
        raise MibeError(f"{where}: unknown key '{key}'; {_near(key, recipe)}")
    recipe[key] = _coerce(key, value, recipe[key])


def load(
    kind: str, path: str | None, overrides: dict[str, Any] | None = None, sets: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The resolved recipe and a description of its file (path and sha256, or None)."""
    recipe = copy.deepcopy(DEFAULTS[kind])
    file_info: dict[str, Any] = {"path": None, "sha256": None}
    if path:
        file = Path(path).expanduser().resolve()
        raw = read_yaml(file, "training recipe")
        file_info = {"path": str(file), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
        named = raw.pop("kind", kind)
        if named != kind:
            raise MibeError(f"{file}: a '{named}' recipe; run it with `mibe train {named}`")
        for key, value in raw.items():
            if key == "lora" and isinstance(value, dict):
                unknown = [k for k in value if k not in LORA]
                if unknown:
                    raise MibeError(f"{file}: lora.{unknown[0]}: unknown key; {_near(unknown[0], LORA)}")
                value = {**LORA, **value}
            _apply(recipe, str(key), value, str(file))
        for key in ("mix", "deepspeed", "data", "guard_data_dir", "chat_template"):
            recipe[key] = _relative_to(file.parent, recipe.get(key))
        if isinstance(recipe.get("exclude_ids"), str):  # a list holds ids, never paths
            recipe["exclude_ids"] = _relative_to(file.parent, recipe["exclude_ids"])
    for key, value in (overrides or {}).items():
        if value is not None:
            _apply(recipe, key, value, "command line")
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MibeError(f"--set {item}: expected KEY=VALUE, e.g. --set learning_rate=1e-4")
        _apply(recipe, key.strip(), value.strip(), "--set")
    validate(kind, recipe)
    return recipe, file_info


def _relative_to(folder: Path, value: Any) -> Any:
    """Paths written in a recipe file are relative to that file (shipped names stay names)."""
    if isinstance(value, list):
        return [_relative_to(folder, v) for v in value]
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return {**value, "path": _relative_to(folder, value["path"])}
    if not isinstance(value, str) or "\n" in value or "{{" in value or value in ("auto", "none"):
        return value
    candidate = folder / Path(value).expanduser()
    return str(candidate.resolve()) if candidate.exists() else value


def validate(kind: str, recipe: dict[str, Any]) -> None:
    for key, value in recipe.items():
        if value is None:
            continue
        allowed = _TYPES.get(key) or (type(DEFAULTS[kind][key]),)
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            names = " or ".join(t.__name__ for t in allowed)
            raise MibeError(f"recipe key {key}: expected {names}, got {value!r}")
    for key in ("model", "output_dir"):
        if not recipe.get(key):
            raise MibeError(
                f"recipe key {key}: required; set it in the recipe or pass --{key.replace('_', '-')}"
            )
    needs = {"pretrain": "mix", "sft": "data", "task": "task"}[kind]
    if recipe.get(needs) is None:
        raise MibeError(f"recipe key {needs}: required for `mibe train {kind}`")
    for key in _POSITIVE_INTS:
        if key in recipe and (recipe[key] is None or recipe[key] < 1):
            raise MibeError(f"recipe key {key}: must be a positive integer, got {recipe[key]!r}")
    if recipe["max_steps"] is not None and recipe["max_steps"] < 1:
        raise MibeError(f"recipe key max_steps: must be a positive integer, got {recipe['max_steps']}")
    if recipe["precision"] not in PRECISIONS:
        raise MibeError(f"recipe key precision: one of {', '.join(PRECISIONS)}, got {recipe['precision']!r}")
    if recipe["lr_scheduler"] not in SCHEDULERS:
        raise MibeError(f"recipe key lr_scheduler: one of {', '.join(SCHEDULERS)}")
    if not 0 <= recipe["warmup_ratio"] < 1:
        raise MibeError(f"recipe key warmup_ratio: a fraction in [0, 1), got {recipe['warmup_ratio']}")
    if recipe["held_out"] < 0 or (recipe["held_out"] >= 1 and recipe["held_out"] != int(recipe["held_out"])):
        raise MibeError("recipe key held_out: a fraction below 1, or a whole number of examples")
    if recipe["epochs"] <= 0:
        raise MibeError("recipe key epochs: must be positive")
    lora = recipe.get("lora")
    if lora is not None:
        if not isinstance(lora.get("r"), int) or lora["r"] < 1:
            raise MibeError(f"recipe key lora.r: a positive integer, got {lora.get('r')!r}")
        if not isinstance(lora.get("target_modules"), (str, list)):
            raise MibeError("recipe key lora.target_modules: 'all-linear' or a list of module names")
    if recipe.get("quantize") is not None:
        if recipe["quantize"] not in ("4bit", "8bit"):
            raise MibeError(f"recipe key quantize: 4bit or 8bit, got {recipe['quantize']!r}")
        if lora is None or recipe["deepspeed"]:
            raise MibeError(
                f"recipe key quantize: {recipe['quantize']}: QLoRA trains LoRA adapters over a quantised "
                "base; set lora (e.g. --lora) and leave deepspeed out, or drop quantize"
            )
    if recipe["merge"] and lora is None:
        raise MibeError("--merge: only a LoRA run has an adapter to merge; this recipe trains full weights")


def identity(recipe: dict[str, Any]) -> dict[str, Any]:
    """What must match for a rerun to resume the same training."""
    found = {k: v for k, v in recipe.items() if k not in VOLATILE}
    if found.get("quantize") is None:  # absent, so runs trained before QLoRA existed still resume
        found.pop("quantize", None)
    return found
