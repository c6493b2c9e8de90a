"""Start-up: `mibe --help` and `mibe tasks list`, against a bare `python -c pass` in the same run.

python benchmarks/startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    python = median_seconds([sys.executable, "-c", "pass"], args.repeat)
    for label, extra in (("mibe --help", ["--help"]), ("mibe tasks list", ["tasks", "list"])):
        seconds = median_seconds([sys.executable, "-m", "mibe.cli", *extra], args.repeat)
        ratio = seconds / python
        print(f"{label}: {seconds:.3f} s (median of {args.repeat}); bare python {python:.3f} s; {ratio:.1f}x")


if __name__ == "__main__":
    main()
