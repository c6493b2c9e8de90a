"""Trainer callbacks: a progress bar (loss, tokens/s, ETA), `metrics.jsonl`, and the provenance file
copied into every checkpoint folder."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from mibe.training import provenance

METRICS_FILE = "metrics.jsonl"


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))  # exp overflows a float past ~709


class Progress(TrainerCallback):
    """Owns the terminal bar and the JSONL log (the Trainer's own bar and printer are removed)."""

    def __init__(self, folder: Path, tokens_per_step: int | None, main: bool) -> None:
        self.folder, self.tokens_per_step, self.main = folder, tokens_per_step, main
        self.bar: Any = None
        self.started = 0.0
        self.first_step = 0
        self.first_tokens = 0
        self.last_loss: float | None = None

    def _tokens(self, state: Any) -> int:
        if getattr(state, "num_input_tokens_seen", 0):
            return int(state.num_input_tokens_seen)
        return state.global_step * (self.tokens_per_step or 0)

    def append(self, row: dict[str, Any]) -> None:
        if not self.main:
            return
        with (self.folder / METRICS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started, self.first_step, self.first_tokens = time.time(), state.global_step, self._tokens(state)
        if self.main:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            rate = self._rate(state)
            postfix = {"loss": f"{self.last_loss:.4f}" if self.last_loss is not None else "-"}
            postfix["tok/s"] = f"{rate:,.0f}"
            self.bar.set_postfix(postfix, refresh=False)

    def _rate(self, state: Any) -> float:
        elapsed = max(time.time() - self.started, 1e-9)
        return (self._tokens(state) - self.first_tokens) / elapsed

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        logs = dict(logs or {})
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
        row: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        row["tokens"] = self._tokens(state)
        if self.started:
            row["tokens_per_s"] = round(self._rate(state), 1)
            row["elapsed_s"] = round(time.time() - self.started, 2)
        for key, value in logs.items():
            row[key] = value
        if "eval_loss" in logs:
            row["perplexity"] = perplexity(float(logs["eval_loss"]))
            if self.bar is not None:
                self.bar.write(
                    f"step {state.global_step}: held-out loss {logs['eval_loss']:.4f}, "
                    f"perplexity {row['perplexity']:.2f}"
                )
        self.append(row)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ProvenanceOnSave(TrainerCallback):
    """Each checkpoint-N folder is a model `mibe run` can score: give it its lineage too."""

    def __init__(self, folder: Path, document: Callable[[Any], dict[str, Any]], main: bool) -> None:
        self.folder, self.document, self.main = folder, document, main

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        checkpoint = self.folder / f"checkpoint-{state.global_step}"
        if self.main and checkpoint.is_dir():
            provenance.write(checkpoint, self.document(state))
