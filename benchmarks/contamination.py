"""Speed of `mibe data contamination` (never run by pytest).

Generates a plain-JSONL corpus (default 512 MB) whose words are drawn from the evaluation documents'
own vocabulary (the matcher's worst case: every 13-word window is looked up, none is skipped as
holding an unknown word), plants known fields in it, then scans it with 1 and 2 processes and reports
MB/s per process, the speed-up, and the peak memory of a scan of a quarter of the corpus and of all
of it (flat memory: the same peak). Each scan runs in a fresh process, so its peak is its own.

    python benchmarks/contamination.py [--mb 512] [--data-dir DIR | (the bundled demo documents)] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLANTED = "Q: Does a daily walking reminder lower resting heart rate in office workers?"  # demo-pubmedqa-1
sys.path.insert(0, str(REPO))


def index_for(data_dir: str):
    from mibe.training.contamination import load_index

    return load_index("all", data_dir, 13)


def generate(path: Path, megabytes: int, data_dir: str) -> dict:
    """Random text over the evaluation vocabulary, plus one planted question per 10 MB."""
    index, _ = index_for(data_dir)
    vocabulary = sorted(index.vocab)
    rng = random.Random(0)
    target = megabytes * 1_000_000
    planted = 0
    with path.open("w", encoding="utf-8") as out:
        written = 0
        while written < target:
            words = rng.choices(vocabulary, k=rng.randint(40, 400))
            line = json.dumps({"text": " ".join(words)}) + "\n"
            if written // 10_000_000 != (written + len(line)) // 10_000_000:
                line += json.dumps({"text": PLANTED}) + "\n"
                planted += 1
            out.write(line)
            written += len(line.encode())
    return {"bytes": path.stat().st_size, "planted": planted, "vocabulary": len(vocabulary)}


def child(corpus: str, procs: int, data_dir: str, limit_bytes: int | None) -> None:
    from mibe import corpusscan

    index, _ = index_for(data_dir)
    parts = corpusscan.plan([corpus], 32 << 20)
    if limit_bytes:
        parts = [p for p in parts if p.start < limit_bytes]
    cpu_before = _cpu()
    start = time.perf_counter()
    results = corpusscan.run(parts, index, procs, None, lambda result, resumed: None)
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu_before  # every process's CPU time for the scan, whatever the machine's load
    hits = sum(len(r["hits"]) for r in results)
    size = sum(r["bytes"] for r in results)
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    row = {"procs": procs, "seconds": seconds, "cpu_seconds": cpu, "bytes": size, "hits": hits}
    print(json.dumps({**row, "peak_rss_mb": peak / 1024}))


def _cpu() -> float:
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in used)


def measure(corpus: Path, procs: int, data_dir: str, limit: int | None = None) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        str(corpus),
        "--procs",
        str(procs),
        "--data-dir",
        data_dir,
    ]
    command += ["--limit", str(limit)] if limit else []
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--data-dir", default=str(REPO / "tasks" / "demo"))
    parser.add_argument("--keep", help="a folder for the corpus (kept, reused when present)")
    parser.add_argument("--child")
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.procs, args.data_dir, args.limit)
        return
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mibe-contamination-"))
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.jsonl"
    if not corpus.is_file() or corpus.stat().st_size < args.mb * 1_000_000:
        made = generate(corpus, args.mb, args.data_dir)
        print(
            f"corpus: {made['bytes'] / 1e6:.0f} MB, {made['planted']} planted questions, "
            f"vocabulary {made['vocabulary']}"
        )
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    one = measure(corpus, 1, args.data_dir)
    two = measure(corpus, 2, args.data_dir)
    quarter = measure(corpus, 1, args.data_dir, limit=corpus.stat().st_size // 4)
    for run in (quarter, one, two):
        mb = run["bytes"] / 1e6
        print(
            f"{run['procs']} process(es), {mb:.0f} MB: {run['seconds']:.1f} s, "
            f"{mb / run['seconds']:.2f} MB/s "
            f"({mb / run['seconds'] / run['procs']:.2f} MB/s per process), hits {run['hits']}, "
            f"peak RSS {run['peak_rss_mb']:.0f} MB"
        )
    print(f"speed-up 1 -> 2 processes (wall): {one['seconds'] / two['seconds']:.2f}x")
    # On a shared machine the wall clock measures the other tenants too; CPU time does not. Two
    # processes over equal parts each do half the 2-process CPU time, so on two idle cores the wall
    # time would be about that half.
    per_cpu = one["bytes"] / 1e6 / one["cpu_seconds"]
    print(
        f"CPU: 1 process {one['cpu_seconds']:.1f} s ({per_cpu:.2f} MB per CPU-second); 2 processes "
        f"{two['cpu_seconds']:.1f} s in all; speed-up on two idle cores "
        f"{one['cpu_seconds'] / (two['cpu_seconds'] / 2):.2f}x"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
