"""Data-parallel runs under `accelerate launch` / `torchrun`: which share of the documents is ours.

Each process (rank) scores the documents at positions rank, rank + world, ... of a task's pending
documents, appends them to its own rank file (samples/<task>.rank<R>.part: never a .jsonl, so a
samples folder holds one .jsonl per task), and waits at a barrier; rank 0 then folds the rank files
into samples/<task>.jsonl, skipping ids already there, and alone writes run.json and results.json. A
run killed midway leaves rank files that rank 0 folds in before the next start, whatever the new world
size, so a resumed run scores each document once. With `--shard I/N` the ranks split that shard's
documents. Without a launcher this module does nothing.
"""

from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from mibe.runfolder import folder, writer

_TIMEOUT = timedelta(hours=12)  # ranks wait for the slowest share of the longest task


@dataclass
class World:
    rank: int = 0
    size: int = 1
    store: Any = None  # the launcher's key-value store: barriers and rank 0's choices
    step: int = 0  # every rank makes the same calls in the same order, so keys match

    @property
    def main(self) -> bool:
        return self.rank == 0

    def key(self, what: str) -> str:
        self.step += 1
        return f"mibe/{what}/{self.step}"


@functools.cache  # one connection to the store per process
def world() -> World:
    """This process's place, from the variables `accelerate launch` and `torchrun` set."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return World(int(os.environ.get("RANK", "0")), size, _store(size)) if size > 1 else World()


def _store(size: int) -> Any:
    # A bare TCPStore, not a process group: vLLM, started later in the same process, creates its
    # own torch.distributed world and must not find ours.
    from torch.distributed import TCPStore

    host, port = os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", "29500"))
    # torchrun (and so accelerate) already serves a store at MASTER_PORT; join it as a client.
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    master = not agent and os.environ.get("RANK", "0") == "0"
    return TCPStore(host, port, size, is_master=master, timeout=_TIMEOUT, wait_for_workers=False)


def barrier(w: World) -> None:
    if w.size > 1:
        key = w.key("barrier")
        if w.store.add(key, 1) == w.size:  # the last to arrive opens the gate
            w.store.set(f"{key}/open", b"1")
        w.store.wait([f"{key}/open"])


def agree(w: World, value: Any) -> Any:
    """Rank 0's value on every rank (e.g. the default run folder, whose name holds a timestamp)."""
    if w.size == 1:
        return value
    key = w.key("agree")
    if w.main:
        w.store.set(key, pickle.dumps(value))
        return value
    return pickle.loads(w.store.get(key))  # waits until rank 0 has set it


@dataclass
class Share:
    """This rank's part of one task: which pending documents it scores and where it writes them."""

    world: World
    run_dir: Path
    task: str

    def mine(self, pending: list[Any]) -> list[Any]:
        return pending[self.world.rank :: self.world.size]

    @property
    def target(self) -> Path:
        if self.world.size > 1:
            return folder.rank_path(self.run_dir, self.task, self.world.rank)
        return folder.samples_path(self.run_dir, self.task)

    def gather(self, private: bool) -> bool:
        """Wait for every rank; True on the one that then holds the whole task (rank 0)."""
        if self.world.size == 1:
            return True
        barrier(self.world)
        if not self.world.main:
            return False
        writer.fold_ranks(self.run_dir, self.task, private)
        return True


def share(run_dir: Path, task: str) -> Share:
    return Share(world(), run_dir, task)
