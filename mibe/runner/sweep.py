"""`mibe run --model A --model B ...` (or `--models FILE`): one command scores several models or
checkpoints with the same settings, each into its own run folder `D/<label>/` under `--output-dir D`
(each resumes on its own). With general-domain tasks in `--tasks`, `mibe leaderboard D/* --delta-vs-base`
then shows the medical and general averages of each checkpoint against its base (docs/statistics.md).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mibe.log import logger
from mibe.types import MibeError, RunConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def label_of(model: str) -> str:
    """A model's folder name in the sweep: its folder's (or hub id's) last part, filename-safe."""
    name = _UNSAFE.sub("-", Path(model.rstrip("/")).name).strip("-.")
    return name or "model"


def _from_file(path: str) -> list[str]:
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MibeError(f"--models {path}: cannot read it ({type(exc).__name__}); give a text file") from None
    found = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not found:
        raise MibeError(f"--models {path}: names no model; write one model (or LABEL=MODEL) a line")
    return found


def models(named: Sequence[str], file: str | None) -> list[tuple[str, str]]:
    """(label, model) for each `--model` and each line of `--models FILE` (`MODEL` or `LABEL=MODEL`)."""
    entries = [*named, *(_from_file(file) if file else [])]
    if not entries:
        raise MibeError("mibe run: give --model MODEL (repeatable) or --models FILE")
    out: list[tuple[str, str]] = []
    for entry in entries:
        label, sep, model = entry.partition("=")
        if sep and label_of(label) == label and model and not Path(entry).exists():
            out.append((label, model))
        else:
            out.append((label_of(entry), entry))
    seen: dict[str, str] = {}
    for label, model in out:
        if label in seen:
            raise MibeError(
                f"--model: {seen[label]} and {model} would both be scored into '{label}/'; name them in "
                f"--models FILE as LABEL=MODEL lines (e.g. {label}-2={model})"
            )
        seen[label] = model
    return out


def run(
    config: RunConfig,
    chosen: Sequence[tuple[str, str]],
    command: Sequence[str],
    score: Callable[..., dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Score every model in turn with `config`'s settings; {label: results.json's content}."""
    if config.adapter or config.adapters:
        raise MibeError("--adapter/--adapters name one base model's adapters; sweep checkpoints with --model")
    done: dict[str, dict[str, Any]] = {}
    for number, (label, model) in enumerate(chosen, 1):
        out = str(Path(config.output_dir) / label) if config.output_dir else None
        logger.info(f"mibe: sweep {number}/{len(chosen)}: {model}" + (f" into {out}" if out else ""))
        done[label] = score(dataclasses.replace(config, model=model, output_dir=out), command=list(command))
    if config.output_dir:
        logger.info(
            f"mibe: {len(done)} runs in {config.output_dir}; compare: mibe leaderboard {config.output_dir}/*"
        )
    return done
