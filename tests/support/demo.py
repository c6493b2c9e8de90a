"""The bundled demo documents, repeated under new ids: enough documents to split into shards."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.paths import REPO

DEMO = REPO / "tasks" / "demo"


ID_FIELD = {"pubmedqa": "pmid", "medqa": "realidx", "pubmed_sum": "id"}


def make_data(root: Path, copies: int = 4) -> Path:
    """Each demo task's rows repeated under new ids: enough documents to split three ways."""
    root.mkdir(parents=True, exist_ok=True)
    for task, key in ID_FIELD.items():
        rows = [json.loads(line) for line in (DEMO / f"{task}.jsonl").read_text().splitlines()]
        out = [{**r, key: f"{r[key]}-{c}"} for c in range(copies) for r in rows]
        (root / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
    return root
