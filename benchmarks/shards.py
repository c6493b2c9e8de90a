"""Document shards: the overhead of N shards plus the merge against one run, on the tiny LLaMA.

    python benchmarks/shards.py --docs 100 --shards 4

Builds the tests' tiny LLaMA and a data folder of `--docs` documents per task (the demo rows under
new ids), then times, each command as its own process (Python and model start-up included): one
`mibe run`, then `--shards` runs with `--shard I/N` one after another, then `mibe merge`, then the
one run again (a busy machine's load drifts). The figure is (sum of the shard runs + the merge) / the
faster one run (goal <= 1.15x). It also checks that the merged
results equal the one run's (at --batch-size 1). Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import tinymodel  # noqa: E402

DEMO = REPO / "tasks" / "demo"
ID_FIELD = {"pubmedqa": "pmid", "medqa": "realidx"}
FLAGS = ("--batch-size", "1", "--bootstrap", "1000", "--max-new-tokens", "16")


def make_data(root: Path, docs: int) -> None:
    root.mkdir(parents=True)
    for task, key in ID_FIELD.items():
        rows = [json.loads(line) for line in (DEMO / f"{task}.jsonl").read_text().splitlines()]
        out = [{**rows[i % len(rows)], key: f"{rows[i % len(rows)][key]}-{i}"} for i in range(docs)]
        (root / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "mibe", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: mibe {' '.join(args)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100, help="documents per task")
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = tinymodel.build(root / "model", REPO)
        make_data(root / "data", args.docs)
        common = ["--model", str(model), "--data-dir", str(root / "data"), "--tasks", ",".join(ID_FIELD)]
        common += [*FLAGS]
        one = timed(["run", *common, "--output-dir", str(root / "one")])
        parts, shard_times = [], []
        for i in range(args.shards):
            parts.append(str(root / f"shard{i}"))
            shard_times.append(
                timed(["run", *common, "--shard", f"{i}/{args.shards}", "--output-dir", parts[-1]])
            )
        merge = timed(["merge", *parts, "--output-dir", str(root / "merged")])
        # The one run again, after the shards: a busy machine's load drifts, so both sides are bracketed.
        again = timed(["run", *common, "--output-dir", str(root / "again")])
        same = (
            json.loads((root / "one" / "results.json").read_text())["tasks"]
            == json.loads((root / "merged" / "results.json").read_text())["tasks"]
        )
        total = sum(shard_times) + merge
        print(
            f"documents per task: {args.docs} ({', '.join(ID_FIELD)}); load average {os.getloadavg()[0]:.1f}"
        )
        print(f"one run: {one:.1f} s before the shards, {again:.1f} s after")
        one = min(one, again)
        print(
            f"{args.shards} shards: "
            + " + ".join(f"{t:.1f}" for t in shard_times)
            + f" s; merge {merge:.1f} s"
        )
        print(f"shards + merge / one run: {total:.1f} / {one:.1f} = {total / one:.2f}x (goal <= 1.15x)")
        print(f"merged results equal the one run's: {same}")


if __name__ == "__main__":
    main()
