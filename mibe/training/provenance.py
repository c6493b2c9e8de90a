"""`mibe_training.json`: what a checkpoint folder was trained from, so results and leaderboards can
show its lineage (base model -> pre-training -> instruction tuning -> task fine-tuning)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from mibe.runfolder import folder as run_files
from mibe.runfolder import writer
from mibe.version import __version__

FILE = "mibe_training.json"
SCHEMA_VERSION = 1


def read(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def config_hash(model_folder: str | Path) -> str | None:
    path = Path(model_folder) / "config.json"
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def start(
    kind: str,
    recipe: dict[str, Any],
    recipe_file: dict[str, Any],
    command: list[str],
    identity: dict[str, Any],
) -> dict[str, Any]:
    """The document written before training starts (`complete: false`), filled in as it goes."""
    base = recipe["model"]
    parent = read(base) if Path(base).is_dir() else None
    step = {"kind": kind, "base_model": base, "output": str(Path(recipe["output_dir"]).resolve())}
    return {
        "schema_version": SCHEMA_VERSION,
        "mibe_version": __version__,
        "git_commit": run_files.git_commit(),
        "command": command,
        "kind": kind,
        "complete": False,
        "base_model": base,
        "base_config_hash": config_hash(base) if Path(base).is_dir() else None,
        "lineage": [*(parent or {}).get("lineage", []), step],
        "recipe": {"file": recipe_file["path"], "sha256": recipe_file["sha256"], "resolved": recipe},
        "identity": identity,
        "hyperparameters": {},
        "data": {},
        "contamination": None,
        "deepspeed": None,
        "chat_template": None,
        "output": {},
        "progress": {},
        "timing": {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }


def lineage_line(doc: dict[str, Any]) -> str:
    """One line a leaderboard can show: `Llama-2-13b -> pretrain -> sft`."""
    chain = doc.get("lineage") or []
    if not chain:
        return ""
    names = [Path(str(chain[0]["base_model"]).rstrip("/")).name] + [s["kind"] for s in chain]
    return " -> ".join(names)


def write(folder: str | Path, doc: dict[str, Any]) -> None:
    writer.write_json_atomic(Path(folder) / FILE, doc)
