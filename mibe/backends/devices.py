"""Where a local model runs: the device a user names is checked against this machine before any
model loads (torch's own refusal is an AssertionError with a traceback), and data-parallel ranks
get their own GPUs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from mibe.log import logger

_DEVICE = re.compile(r"(cpu|mps|cuda)(?::(\d+))?")
AUTO = "auto"  # the default of every command that loads a model: CUDA, else MPS, else CPU


def resolve(device: str, per_rank: int = 1) -> tuple[str, str | None]:
    """The device `--device auto` means here (CUDA when present, else MPS, else CPU) and the line
    that says so; another value is returned as given, with no line. This rank's GPUs are pinned
    first (data-parallel ranks each get their own), so `cuda` is this rank's GPU."""
    if device.strip() != AUTO:
        return device, None
    pin_devices(per_rank)
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return "cuda", f"mibe: --device auto: cuda ({name}; {torch.cuda.device_count()} visible)"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", "mibe: --device auto: mps (Apple GPU)"
    return "cpu", "mibe: --device auto: cpu (this machine has no CUDA or MPS device)"


def missing(device: str) -> str | None:
    """Why this machine cannot run on `device` (None when it can). Imports torch only for an
    accelerator: `cpu` is always there."""
    if device.strip() == AUTO:
        return None
    found = _DEVICE.fullmatch(device.strip())
    if not found:
        return "not a device name; use auto, cpu, cuda, cuda:N or mps"
    kind, index = found.group(1), found.group(2)
    if kind == "cpu":
        return None if index is None else "cpu takes no index; use cpu"
    import torch

    if kind == "mps":
        return None if torch.backends.mps.is_available() else "this machine has no MPS (Apple GPU) device"
    if not torch.cuda.is_available():
        return "this machine has no CUDA device (torch.cuda.is_available() is False)"
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        return f"this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}"
    return None


def check(device: str, flag: str = "--device") -> None:
    """One line naming the flag and the fix when `device` is not on this machine."""
    from mibe.types import MibeError

    why = missing(device)
    if why:
        raise MibeError(f"{flag} {device}: {why}; use --device cpu or a device this machine has")


def usable(device: str | None) -> bool:
    """A recorded device this machine has (a run scored on cuda, rescored on a laptop: not)."""
    return bool(device) and missing(str(device)) is None


def pin_devices(per_rank: int) -> None:
    """Give this rank its own `per_rank` GPUs (so `--device cuda` and vLLM's engine use them);
    must run before anything touches CUDA. No launcher, or no GPUs named: nothing to do."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 or "LOCAL_RANK" not in os.environ:
        return
    local = int(os.environ["LOCAL_RANK"])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range((local + 1) * per_rank)]
    mine = devices[local * per_rank : (local + 1) * per_rank]
    if len(mine) == per_rank:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)


def for_rerun(given: str | None, recorded: Mapping[str, Any] | None) -> str:
    """The device of a command that reruns part of a finished run (rescore --parser model, judge):
    --device when given (checked), else the run's recorded one when this machine has it, else cpu,
    said in one line (a run scored on a GPU server, rescored on a laptop)."""
    if given is not None:
        check(given)
        found, line = resolve(given)
        if line:
            logger.info(line)
        return found
    device = (recorded or {}).get("device")
    if not isinstance(device, str) or device == "cpu":
        return "cpu"
    if device != AUTO and usable(device):
        return device
    found, _ = resolve(AUTO)
    logger.info(
        f"mibe: the run was scored on {device}, which this machine lacks; using {found} (--device to choose)"
    )
    return found
