"""The lineage a `mibe train` checkpoint carries (mibe_training.json; docs/training.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FILE = "mibe_training.json"


def training_record(folder: str | None) -> dict[str, Any] | None:
    """A checkpoint folder's whole mibe_training.json: None when it has none, {"unreadable": path}
    when it cannot be read (callers must not guess then)."""
    path = Path(folder).expanduser() / FILE if folder else None
    if path is None or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {"unreadable": str(path)}
    return doc if isinstance(doc, dict) else {"unreadable": str(path)}


def training_provenance(folder: str | None) -> dict[str, Any] | None:
    """What results.json and leaderboards show of a checkpoint's training, or None for others."""
    doc = training_record(folder)
    if doc is None or "unreadable" in doc:
        return doc
    keep = ("kind", "complete", "base_model", "lineage", "progress", "mibe_version", "git_commit")
    out = {key: doc.get(key) for key in keep}
    out["recipe"] = {key: (doc.get("recipe") or {}).get(key) for key in ("file", "sha256")}
    out["contamination_allowed"] = bool((doc.get("contamination") or {}).get("allowed"))
    out["contaminated"] = contaminated_tasks(doc)
    return out


def contaminated_tasks(doc: dict[str, Any]) -> list[str]:
    """Tasks whose evaluation documents some step of the lineage trained on (kept with
    --allow-contamination): a leaderboard marks the checkpoint's scores on them."""
    found: set[str] = set()
    for step in doc.get("lineage") or []:
        if isinstance(step, dict) and isinstance(step.get("contaminated"), list):
            found |= {str(t) for t in step["contaminated"]}
    record = doc.get("contamination")
    if isinstance(record, dict) and record.get("allowed") and isinstance(record.get("leaks"), dict):
        found |= {str(t) for t in record["leaks"]}
    return sorted(found)


def summary(provenance: dict[str, Any]) -> str:
    """One line: base -> stage -> stage (steps, tokens, recipe, data)."""
    chain = provenance.get("lineage")
    if isinstance(chain, list) and chain and isinstance(chain[-1], dict):
        names = [Path(str(chain[0].get("base_model", "?")).rstrip("/")).name]
        names += [str(step.get("kind")) for step in chain]
        last = chain[-1]
        line = " -> ".join(names) + f" ({last.get('steps')} steps, {last.get('tokens')} tokens"
        line += f", recipe {str(last.get('recipe_sha256') or 'built-in')[:12]}, data {last.get('data')})"
        if provenance.get("contaminated"):
            line += f"; trained on evaluation documents of {', '.join(provenance['contaminated'])}"
        elif provenance.get("contamination_allowed"):
            line += "; trained with --allow-contamination"
        return line
    keys = ("recipe", "stage", "steps", "tokens", "data_manifest", "mibe_commit")
    picked = {k: provenance[k] for k in keys if k in provenance} or provenance
    return json.dumps(picked, sort_keys=True, default=str)[:300]


def identity(model_name: str, config: Any, adapter: str | None) -> dict[str, Any]:
    """What names a local checkpoint in results.json: its path, config hash, adapter, the fingerprints
    of its weights and the adapter's, and training provenance (the same keys from every backend that
    loads one). Resume compares them: other weights under the same config.json are another model."""
    config_json = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return {
        "path": model_name,
        "name": Path(model_name.rstrip("/")).name,
        "config_hash": hashlib.sha256(config_json.encode()).hexdigest()[:16],
        "adapter": adapter,
        "weights": fingerprint(model_name),
        "adapter_weights": fingerprint(adapter),
        "provenance": training_provenance(adapter or model_name),
    }


# Files whose bytes change a model's outputs: weights (and their index), tokenizer, chat template.
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".index.json")
_TOKENIZER = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
    "adapter_config.json",
)
_SAMPLES, _BLOCK, _SMALL = 8, 64 * 1024, 4 * 1024 * 1024


def fingerprint(folder: str | None) -> str | None:
    """A cheap fingerprint of a local model folder (None for a hub id or no folder): per file its name
    and size, a safetensors file's header (names, dtypes, shapes, offsets), and 8 blocks of 64 KiB
    spread over each large file (a fine-tune changes every block); small files are hashed whole. A
    140 GB checkpoint costs a few MiB of reads, never a full hash."""
    root = Path(folder).expanduser() if folder else None
    if root is None or not root.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(root.iterdir()):
        if not path.is_file() or not (path.name.endswith(_WEIGHTS) or path.name in _TOKENIZER):
            continue
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as handle:
            if size <= _SMALL:
                digest.update(handle.read())
                continue
            if path.suffix == ".safetensors":
                head = handle.read(8)
                digest.update(handle.read(min(int.from_bytes(head, "little"), _SMALL)))
            for i in range(_SAMPLES):
                handle.seek((size - _BLOCK) * i // (_SAMPLES - 1))
                digest.update(handle.read(_BLOCK))
    return digest.hexdigest()[:16]
