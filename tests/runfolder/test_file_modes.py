"""Run files follow the umask unless the task is credentialed, and the lock goes when the run ends."""

from __future__ import annotations

import os
from pathlib import Path


def test_run_files_follow_umask_unless_credentialed_and_lock_goes(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.runner import api
    from mibe.types import RunConfig

    old = os.umask(0o022)
    try:
        for tasks, mode in (("ddi2013", 0o644), ("ddi2013,mednli", 0o600)):
            out = tmp_path / tasks.replace(",", "-")
            config = RunConfig(model=str(tiny_llama), tasks=(tasks,), demo=True, limit=1, output_dir=str(out),
                               bootstrap=10, max_new_tokens=2)  # fmt: skip
            api.run(config)
            for name in ("results.json", "run.json"):
                assert (out / name).stat().st_mode & 0o777 == mode, (tasks, name)
            assert not (out / ".lock").exists()
    finally:
        os.umask(old)
