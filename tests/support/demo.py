"""The bundled demo documents: a run of a model over them (in process, or the `mibe run` arguments),
and the same documents repeated under new ids, enough to split into shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mibe.runner import api
from mibe.types import Backend, RunConfig
from tests.support.paths import REPO

DEMO = REPO / "tasks" / "demo"


ID_FIELD = {"pubmedqa": "pmid", "medqa": "realidx", "pubmed_sum": "id"}


def run(
    model: Path | str,
    out: Path,
    tasks: tuple[str, ...] = ("all",),
    backend: Backend | None = None,
    **options: Any,
) -> dict:
    """`model` scored on the demo documents of `tasks` into `out`; results.json's content."""
    config = RunConfig(model=str(model), tasks=tasks, demo=True, output_dir=str(out), **options)
    return api.run(config, backend=backend)


def run_argv(model: Path | str, out: Path | str, *flags: str, tasks: str = "pubmedqa") -> list[str]:
    """`mibe run`'s arguments for the same run: `model` on the demo documents of `tasks` into `out`."""
    return ["run", "--model", str(model), "--tasks", tasks, "--demo", *flags, "--output-dir", str(out)]


def make_data(root: Path, copies: int = 4) -> Path:
    """Each demo task's rows repeated under new ids: enough documents to split three ways."""
    root.mkdir(parents=True, exist_ok=True)
    for task, key in ID_FIELD.items():
        rows = [json.loads(line) for line in (DEMO / f"{task}.jsonl").read_text().splitlines()]
        out = [{**r, key: f"{r[key]}-{c}"} for c in range(copies) for r in rows]
        (root / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
    return root
