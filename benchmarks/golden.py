"""Golden runs: the same six run folders made by two versions of mibe must be byte-identical.

A refactor that promises "no behaviour change" proves it here. `make DIR` writes, with the tiny random
LLaMA the tests build (built once into DIR/model and reused, so both versions see the same weights):

  zero_shot    mibe run --demo, every task, generation
  fewshot      mibe run --demo --num-fewshot 1 --fewshot-seeds 1,2 (two shot draws)
  loglik       mibe run --demo --scoring loglikelihood
  judged       mibe judge zero_shot --judge hf:MODEL (a jury of one)
  imported     mibe import lm-eval (the lm-eval fixture of tests/fixtures/imports)
  rescored     mibe rescore zero_shot --parser paper

`check BASE NEW` compares every file of every folder. JSON and JSONL are compared after removing the
fields that are about the moment and machine of the run (timestamps, durations, versions, paths of the
temporary folders), everything else byte for byte. Exit 1 and a list of differences when they differ.

    python benchmarks/golden.py make /work/golden/base          # on the version before
    python benchmarks/golden.py make /work/golden/new --model /work/golden/base/model
    python benchmarks/golden.py check /work/golden/base /work/golden/new
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Fields that say when, where and by which build a run was made: never part of a behaviour change.
VOLATILE = {
    "mibe_version",
    "git_commit",
    "command",  # the argv, with this machine's paths
    "timing",  # wall times and tokens/s
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "wall_s",
    "tokens_per_s",
}


def _tiny_model(target: Path) -> Path:
    try:
        from tests.support import tinymodel  # the tests' layout after issue 25
    except ImportError:
        from tests import tinymodel
    return tinymodel.build(target, REPO, context=4096)


def _mibe(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "mibe", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"golden: mibe {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def make(out: Path, model: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model = out / "model"
        if not (model / "config.json").is_file():
            _tiny_model(model)
    m = str(model.resolve())
    (out / "model-path.txt").write_text(m)
    (out / "repo-path.txt").write_text(str(REPO))
    common = ["--model", m, "--tasks", "all", "--demo", "--bootstrap", "200", "--max-new-tokens", "16"]
    _mibe("run", *common, "--output-dir", str(out / "zero_shot"))
    _mibe(
        "run", *common, "--num-fewshot", "1", "--fewshot-seeds", "1,2", "--output-dir", str(out / "fewshot")
    )
    _mibe("run", *common, "--scoring", "loglikelihood", "--output-dir", str(out / "loglik"))
    _mibe("judge", str(out / "zero_shot"), "--judge", f"hf:{m}", "--judge-max-new-tokens", "16",
          "--output-dir", str(out / "judged"))  # fmt: skip
    fixture = REPO / "tests" / "fixtures" / "imports" / "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl"
    _mibe("import", "lm-eval", str(fixture), "--task", "pubmedqa", "--output-dir", str(out / "imported"))
    _mibe("rescore", str(out / "zero_shot"), "--parser", "paper", "--output-dir", str(out / "rescored"))
    print(f"golden: six run folders in {out}")


def _clean(value: Any, roots: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v, roots) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_clean(v, roots) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<ROOT>")
    return value


def _text(path: Path, root: Path) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace")
    # The model's path first (a folder may reuse another's model), the checkout's, the folder's own.
    roots = (*((root / f).read_text() for f in ("model-path.txt", "repo-path.txt")), str(root))
    if path.suffix == ".json":
        return json.dumps(_clean(json.loads(raw), roots), sort_keys=True, indent=1)
    if path.suffix == ".jsonl":
        rows = [
            json.dumps(_clean(json.loads(x), roots), sort_keys=True) for x in raw.splitlines() if x.strip()
        ]
        return "\n".join(rows)
    if path.suffix in {".lock", ".log"}:
        return ""
    for r in roots:
        raw = raw.replace(r, "<ROOT>")
    return raw


def check(base: Path, new: Path) -> int:
    diffs: list[str] = []
    for folder in ("zero_shot", "fewshot", "loglik", "judged", "imported", "rescored"):
        a, b = base / folder, new / folder
        files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
        files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
        for only in sorted(files_a ^ files_b):
            diffs.append(f"{folder}/{only}: only in {'base' if only in files_a else 'new'}")
        for rel in sorted(files_a & files_b):
            ta, tb = _text(a / rel, base), _text(b / rel, new)
            if ta != tb:
                la, lb = ta.splitlines(), tb.splitlines()
                first = next(
                    (i for i, (x, y) in enumerate(zip(la, lb, strict=False)) if x != y), min(len(la), len(lb))
                )
                at_a = la[first][:400] if first < len(la) else "<end>"
                at_b = lb[first][:400] if first < len(lb) else "<end>"
                diffs.append(f"{folder}/{rel}: differs at line {first + 1}:\n  base: {at_a}\n  new:  {at_b}")
    for d in diffs:
        print(d)
    print(f"golden: {len(diffs)} difference(s)" if diffs else "golden: identical")
    return 1 if diffs else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("out", type=Path)
    m.add_argument("--model", type=Path, help="reuse this tiny model (the base's), so weights are equal")
    c = sub.add_parser("check")
    c.add_argument("base", type=Path)
    c.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        make(args.out, args.model)
        return 0
    return check(args.base, args.new)


if __name__ == "__main__":
    sys.exit(main())
