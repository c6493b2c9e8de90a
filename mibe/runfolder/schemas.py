"""The JSON Schema of each run-folder file, generated from the typed run record (mibe/runfolder/record.py).

`python -m mibe.runfolder.schemas` writes them into docs/schemas/ of the source checkout (`--check`: only
compare, exit 1 when one differs); tests/runfolder/test_record_reading.py checks docs/ matches the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mibe.runfolder.record import FILES, SCHEMA_VERSION


def schemas() -> dict[str, dict[str, Any]]:
    """file name -> its JSON Schema, as docs/schemas/ holds it."""
    out = {}
    for name, model in FILES.items():
        schema = model.model_json_schema()
        schema["$id"] = f"mibe/{name}/schema-{SCHEMA_VERSION}"
        out[f"{name.removesuffix('.json')}.schema.json"] = schema
    return out


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write (or with --check, compare) docs/schemas/ of the source checkout."""
    target = Path(__file__).resolve().parents[2] / "docs" / "schemas"
    made = schemas()
    stale = [
        n for n, s in made.items() if not (target / n).is_file() or (target / n).read_text() != schema_text(s)
    ]
    if "--check" in argv:
        for name in stale:
            print(
                f"docs/schemas/{name}: differs from mibe/runfolder/record.py; "
                "run python -m mibe.runfolder.schemas"
            )
        return 1 if stale else 0
    target.mkdir(parents=True, exist_ok=True)
    for name, schema in made.items():
        (target / name).write_text(schema_text(schema), encoding="utf-8")
    print(f"wrote {len(made)} schemas into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
