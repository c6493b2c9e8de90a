"""`mibe leaderboard RUNS --delta-vs-base`: the forgetting view. Each checkpoint's run beside the run of
the model it was trained from, per task: checkpoint - base on the task's main metric, with the paired
test `mibe compare` uses, and the averages of those differences over the medical and the general
tasks apart (a task file says `domain: general`). A medical gain with a general loss is forgetting.

The base run is found among the given runs through the training lineage (results.json's
model.provenance, read from the checkpoint's mibe_training.json: its base_model is the base run's
model path), or named with `--base RUN=BASE_RUN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe.boards.compare import ALPHA, differences, paired_metric
from mibe.boards.table import PAPER_METRICS, Run, disambiguate, load_run, run_label, run_lineage
from mibe.boards.table import Row as _Row
from mibe.runfolder import saved
from mibe.scoring import stats
from mibe.types import MibeError

DOMAINS = ("medical", "general")


def main_metric(task: str, entry: dict[str, Any]) -> str | None:
    """The first of the paper's metrics for a MIBE task; the first listed metric of a user's task."""
    listed = [m for m in entry["metrics"] if m != "missing_rate"]
    if task in PAPER_METRICS:
        return next((m for m in PAPER_METRICS[task] if m in entry["metrics"]), None)
    return listed[0] if listed else None


def domain(run: Run, task: str) -> str:
    """The task file's `domain` (recorded in results.json since schema 2); medical when unknown."""
    entry = run.results["tasks"][task]
    if entry.get("domain") in DOMAINS:
        return entry["domain"]
    loaded = saved.task_file(task, entry, warn=False)
    return loaded.domain if loaded is not None else "medical"


def _same_model(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return a == b or (Path(a).exists() and Path(a).resolve() == Path(b).resolve())


def parse_bases(specs: Sequence[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for spec in specs:
        run, sep, base = spec.partition("=")
        if not sep or not run or not base:
            raise MibeError(f"--base {spec}: expected RUN=BASE_RUN (two run folders)")
        if Path(run).resolve() == Path(base).resolve():
            raise MibeError(f"--base {spec}: a run is not its own base; name the run it was trained from")
        if any(Path(run).resolve() == Path(r).resolve() for r, _ in pairs):
            raise MibeError(f"--base {spec}: {run} was already given a base; give each run one --base")
        pairs.append((run, base))
    return pairs


def pairs(runs: list[Run], named: Sequence[tuple[str, str]]) -> list[tuple[Run, Run, str]]:
    """(checkpoint run, base run, how it was found): `--base` first, then the lineage."""
    by_path = {run.path.resolve(): run for run in runs}
    out: list[tuple[Run, Run, str]] = []
    for spec_run, spec_base in named:
        found = []
        for folder in (spec_run, spec_base):
            run = load_run(folder)
            found.append(by_path.setdefault(run.path.resolve(), run))
        out.append((found[0], found[1], "--base"))
    done = {id(ckpt) for ckpt, _, _ in out}
    for run in runs:  # runs named only on --base's right are bases, never looked up themselves
        base = run_lineage(run)["base"]
        if id(run) in done or not base:
            continue
        for other in by_path.values():
            model = other.results.get("model") or {}
            if (
                other is not run
                and not model.get("adapter")
                and not model.get("adapters")
                and _same_model(str(model.get("path")), base)
            ):
                out.append((run, other, f"training lineage (base model {base})"))
                break
    if not out:
        raise MibeError(
            "--delta-vs-base: no run's base model has a run among those given; pass the base model's run "
            "folder too, or name it with --base RUN=BASE_RUN"
        )
    return out


def _task_delta(ckpt: Run, base: Run, task: str, n_boot: int, seed: int) -> tuple[dict[str, Any], Any]:
    entry = ckpt.results["tasks"][task]
    metric = main_metric(task, entry)
    row: dict[str, Any] = {"task": task, "domain": domain(ckpt, task), "metric": metric}
    row["protocol_differences"] = differences(
        entry["protocol"], base.results["tasks"][task]["protocol"], task
    )
    if metric is None or metric not in base.results["tasks"][task]["metrics"]:
        return {**row, "note": "no shared main metric"}, None
    values = [(r.results["tasks"][task]["metrics"][metric] or {}).get("value") for r in (ckpt, base)]
    row.update(checkpoint=values[0], base=values[1], diff=None, ci95=None, p=None, test=None, note=None)
    if None not in values:
        row["diff"] = values[0] - values[1]
    outcome = paired_metric(ckpt, base, task, metric, n_boot, seed)
    p, test, why = outcome.decisive()
    if outcome.paired is not None:
        pb = outcome.paired
        row.update(checkpoint=pb.a, base=pb.b, diff=pb.diff, ci95=list(pb.ci95), n=pb.n)
    row.update(p=p, test=test or None, note=why, significant=None if p is None else p < ALPHA)
    return row, outcome.paired


def _average(rows: list[dict[str, Any]], parts: list[Any]) -> dict[str, Any] | None:
    diffs = [r["diff"] for r in rows if r.get("diff") is not None]
    if not rows:
        return None
    out: dict[str, Any] = {"n_tasks": len(rows), "diff": None, "ci95": None, "p": None}
    if len(diffs) == len(rows):
        out["diff"] = sum(diffs) / len(diffs)
    if parts and len(parts) == len(rows) and all(p is not None for p in parts):
        joint = stats.mean_of(parts)  # tasks resampled independently, differences averaged per resample
        out.update(diff=joint.diff, ci95=list(joint.ci95), p=joint.p)
    return out


def delta(
    run_dirs: Sequence[str | Path], bases: Sequence[str] = (), n_boot: int = 1000, seed: int = 1234
) -> dict[str, Any]:
    """The forgetting view as plain data (what every format renders)."""
    runs: dict[Path, Run] = {}
    for folder in run_dirs:
        run = load_run(folder)
        runs.setdefault(run.path.resolve(), run)
    found = pairs(list(runs.values()), parse_bases(bases))
    labels = [_Row(run_label(r), False, False, {}, r.path) for c, b, _ in found for r in (c, b)]
    disambiguate(labels)
    report: dict[str, Any] = {"bootstrap": n_boot, "seed": seed, "alpha": ALPHA, "pairs": []}
    for k, (ckpt, base, how) in enumerate(found):
        shared = [t for t in ckpt.results["tasks"] if t in base.results["tasks"]]
        rows, parts = [], []
        for task in shared:
            row, paired = _task_delta(ckpt, base, task, n_boot, seed)
            rows.append(row)
            parts.append(paired)
        averages = {
            d: _average(
                [r for r in rows if r["domain"] == d],
                [p for r, p in zip(rows, parts, strict=True) if r["domain"] == d],
            )
            for d in DOMAINS
        }
        report["pairs"].append(
            {
                "checkpoint": {"label": labels[2 * k].label, "run": str(ckpt.path)},
                "base": {"label": labels[2 * k + 1].label, "run": str(base.path)},
                "found_by": how,
                "tasks": rows,
                "averages": averages,
                "only_in_one": sorted(set(ckpt.results["tasks"]) ^ set(base.results["tasks"])),
            }
        )
    return report
