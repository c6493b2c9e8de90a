"""`mibe merge SHARD_RUN... --output-dir RUN`: the folders of `mibe run --shard I/N` into one ordinary
run folder (docs/scale-out.md).

Checks first (same model, config, protocols, rule and N; every shard given once; each document held
exactly once), then writes the merged samples in document order and computes every statistic over
them with the scoring `mibe run` uses (mibe/runner/pipeline.py, shot_draws.py,
permutations.py): at --batch-size 1 the merged
metrics and intervals equal a one-process run's. `--status` lists what each shard still lacks, from
the shards' run.json and samples alone (no data, no model).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mibe import data
from mibe.runfolder import folder, saved, sharding, writer
from mibe.runner import permutations, pipeline, shot_draws, task_plan
from mibe.types import Doc, MibeError, RunConfig
from mibe.version import __version__


@dataclasses.dataclass(frozen=True)
class Shard:
    path: Path
    run_json: dict[str, Any]
    results: dict[str, Any] | None  # None until a task finished
    index: int
    of: int

    @property
    def name(self) -> str:
        return f"shard {self.index}/{self.of} ({self.path})"

    def held(self, task: str) -> dict[tuple, int]:
        """(draw, permutation, id) -> how many rows the shard's samples hold for it."""
        found: dict[tuple, int] = {}
        path = folder.samples_path(self.path, task)
        for row in folder.read_samples(path) if path.is_file() else ():
            key = (row.get("draw"), row.get("permutation"), row["id"])
            found[key] = found.get(key, 0) + 1
        return found

    def draws(self) -> list[int | None]:
        return list(self.run_json["config"].get("fewshot_seeds") or [None])

    def orderings(self, task: str) -> list[int | None]:
        return permutations.orderings(self.run_json["protocols"][task])


def read(path: str | Path) -> Shard:
    where = Path(path)
    if not (where / "run.json").is_file():
        raise MibeError(f"{path}: no run.json; give the folder a `mibe run --shard I/N` wrote")
    run_json = saved._json(where / "run.json")
    shard = sharding.of(run_json)
    if shard is None:
        raise MibeError(
            f"{path}: an ordinary run, not a shard (no `shard` in run.json); merge shard folders only"
        )
    results = saved._json(where / "results.json") if (where / "results.json").is_file() else None
    return Shard(where, run_json, results, shard["index"], shard["of"])


def _same(shards: Sequence[Shard]) -> None:
    """One run cut into parts: the same rule, N, model, config and protocols; each index once."""
    first = shards[0]
    for other in shards[1:]:
        for key, what in (("rule", "rule"), ("of", "number of shards")):
            a, b = first.run_json["shard"][key], other.run_json["shard"][key]
            if a != b:
                raise MibeError(f"{other.path}: a different {what} ({b!r}) than {first.path} ({a!r}); "
                                "merge the shards of one run")  # fmt: skip
        for key, what in (("model", "model"), ("config", "config"), ("protocols", "protocols")):
            a, b = _comparable(first.run_json, key), _comparable(other.run_json, key)
            if a != b:
                raise MibeError(
                    f"{other.path}: a different {what} than {first.path} "
                    f"({writer.first_difference(a, b)}); merge the shards of one run"
                )
    seen: dict[int, Shard] = {}
    for s in shards:
        if s.index in seen:
            raise MibeError(
                f"{seen[s.index].path} and {s.path}: both are shard {s.index}/{s.of}; give each once"
            )
        seen[s.index] = s
    absent = [i for i in range(first.of) if i not in seen]
    if absent:
        raise MibeError(f"shard {absent[0]}/{first.of} is missing: give its run folder (mibe merge --status)")


def _comparable(run_json: dict[str, Any], key: str) -> Any:
    value = run_json.get(key)
    if key == "config" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "shard"}
    return value


def lacking(s: Shard) -> dict[str, list[tuple]]:
    """Per task, the (draw, permutation, id) the shard must hold and does not, in the data's order."""
    out = {}
    for task, ids in s.run_json["shard"]["expected"].items():
        held = s.held(task)
        keys = [(d, k, i) for d in s.draws() for k in s.orderings(task) for i in ids]
        out[task] = [key for key in keys if key not in held]
    return out


def status(shards: Sequence[Shard]) -> tuple[list[str], bool]:
    """One line per shard (and per shard not given); True when every shard is complete."""
    lines, complete = [], True
    of = shards[0].of if shards else 0
    given = {s.index: s for s in shards}
    for i in range(of):
        if i not in given:
            lines.append(f"shard {i}/{of}: no folder given")
            complete = False
            continue
        missing = {t: keys for t, keys in lacking(given[i]).items() if keys}
        unscored = [t for t in given[i].run_json["protocols"] if t not in _tasks(given[i])]
        if not missing and not unscored:
            lines.append(f"{given[i].name}: complete")
            continue
        complete = False
        for task, keys in missing.items():
            expected = given[i].run_json["shard"]["expected"][task]
            total = len(expected) * len(given[i].draws()) * len(given[i].orderings(task))
            shown = ", ".join(_key(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
            lines.append(f"{given[i].name}: {task} lacks {len(keys)} of {total} documents ({shown})")
        if not missing:
            lines.append(f"{given[i].name}: samples complete; rerun its command to finish {unscored[0]}")
    return lines, complete


def _key(key: tuple) -> str:
    draw, k, doc_id = key
    where = ([] if draw is None else [f"draw {draw}"]) + ([] if k is None else [f"ordering {k}"])
    return f"{doc_id} ({', '.join(where)})" if where else doc_id


def _tasks(s: Shard) -> dict[str, Any]:
    return (s.results or {}).get("tasks") or {}


def _complete(shards: Sequence[Shard]) -> None:
    """Each document exactly once: duplicates and missing documents named with their shard."""
    for s in shards:
        for task, keys in lacking(s).items():
            if keys:
                raise MibeError(
                    f"{s.name}: lacks {len(keys)} documents of {task} (first {_key(keys[0])}); rerun that "
                    "shard's `mibe run ... --shard` command to resume it (mibe merge --status)"
                )
            if task not in _tasks(s):
                raise MibeError(f"{s.name}: {task} not finished; rerun that shard's command to finish it")
    owner: dict[tuple, Shard] = {}
    for s in shards:
        for task in s.run_json["protocols"]:
            for key, count in s.held(task).items():
                where = owner.get((task, *key))
                if count > 1 or where is not None:
                    other = f"{where.name} and " if where is not None else ""
                    raise MibeError(
                        f"{other}{s.name}: document {_key(key)} of {task} is held twice; the shards "
                        "overlap, so rerun the shard that should not hold it with --overwrite"
                    )
                owner[(task, *key)] = s


def _config(recorded: dict[str, Any], bertscore_model: str | None) -> RunConfig:
    """What scoring reads from the shards' recorded config (RunConfig's defaults for the rest)."""
    return RunConfig(
        model=str(recorded.get("model") or ""),
        limit=recorded.get("limit"),
        num_fewshot=recorded.get("num_fewshot") or 0,
        seed=recorded.get("seed", 1234),
        protocol=recorded.get("protocol") or "mibe",
        bootstrap=recorded.get("bootstrap", 1000),
        bertscore_model=bertscore_model or recorded.get("bertscore_model") or RunConfig.bertscore_model,
        fewshot_seeds=tuple(recorded.get("fewshot_seeds") or ()),
    )


def _merged_rows(shards: Sequence[Shard], task: str) -> list[dict[str, Any]]:
    """Every shard's rows of `task`, in document order within each draw and ordering of the options
    (draws, then orderings, in their order), as one process writes them."""
    seeds = shards[0].draws()
    rows = [r for s in shards for r in folder.read_samples(folder.samples_path(s.path, task))]
    return sorted(rows, key=lambda r: (seeds.index(r.get("draw")), r.get("permutation") or 0, r["index"]))


def _score(task_name: str, entry: dict, rows: list[dict], config: RunConfig, path: Path) -> dict:
    """The task's results.json entry over the merged samples, by `mibe run`'s own scoring."""
    task = saved.task_file(task_name, entry)
    if task is None:
        raise MibeError(f"{task_name}: its task file ({entry.get('task_file')}) is not found here; merge "
                        "where the shards' task files are")  # fmt: skip
    seeds = config.fewshot_seeds
    ks = permutations.orderings(entry["protocol"])
    first = [
        r for r in rows if r.get("draw") == (seeds[0] if seeds else None) and r.get("permutation") == ks[0]
    ]
    docs = [Doc(r["id"], {}, None, invented=bool(r.get("invented"))) for r in first]
    skipped = (entry.get("n_skipped_rows") or 0, entry.get("first_skipped_row"))
    docset = data.DocSet(docs, skipped[0], skipped[1], entry["protocol"]["data"]["fingerprint"], "")
    p = task_plan.Plan(task, docset, docs, entry["protocol"])
    if p.protocol.get("choice_permutations"):
        ks = permutations.orderings(p.protocol)
        entries = {k: pipeline.score(dataclasses.replace(p, permutation=k), config, path).entry for k in ks}
        scored = permutations.combine(p, config, path, entries)
    elif seeds:
        entries = {s: pipeline.score(dataclasses.replace(p, draw=s), config, path) for s in seeds}
        scored = shot_draws.combine(p, config, path, entries)
    else:
        scored = pipeline.score(p, config, path).entry
    scored.update(partial=entry.get("partial", False), invented=entry.get("invented", False))
    scored["data_source"] = entry.get("data_source")
    return scored


def merge(shards: Sequence[Shard], out_dir: Path, overwrite: bool, bertscore_model: str | None,
          command: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    _same(shards)
    _complete(shards)
    shards = sorted(shards, key=lambda s: s.index)
    if any(out_dir.resolve() == s.path.resolve() for s in shards):
        raise MibeError(f"--output-dir {out_dir}: is one of the shards; merge into a new folder")
    first = shards[0]
    run_json = {k: v for k, v in first.run_json.items() if k != "shard"}
    run_json["config"] = _comparable(first.run_json, "config")
    config = _config(run_json["config"], bertscore_model)
    entries = _tasks(first)
    private = any(e["protocol"].get("credentialed") for e in entries.values())
    # Through the one run-folder writer: checked, locked, the same merge again resumes (rewrites).
    with writer.open_folder(out_dir, run_json, overwrite, private) as (into, _):
        tasks = {}
        for name in run_json["protocols"]:
            into.replace_samples(name, _merged_rows(shards, name))
            path = into.samples(name)
            tasks[name] = _score(name, entries[name], folder.read_samples(path), config, path)
        out = _results(shards, run_json, tasks, command)
        into.write_json("results.json", out)
    return out


def _results(shards: Sequence[Shard], run_json: dict, tasks: dict, command: Sequence[str]) -> dict[str, Any]:
    first = shards[0].results or {}
    endpoints = [e for s in shards for e in (s.results or {}).get("endpoints") or []]
    out = {
        "schema_version": folder.SCHEMA_VERSION,
        "mibe_version": __version__,
        "git_commit": folder.git_commit(),
        "command": list(command),
        "model": first.get("model") or run_json.get("model"),
        "config": run_json["config"],
        "tasks": tasks,
        "skipped": first.get("skipped") or {},
        "timing": {
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "shards": {str(s.index): (s.results or {}).get("timing") for s in shards},
        },
        "endpoints": [e for i, e in enumerate(endpoints) if e not in endpoints[:i]],
        "merged_from": [str(s.path) for s in shards],
    }
    if first.get("extractor"):
        out["extractor"] = first["extractor"]
    return out


def same_cut(shards: Sequence[Shard]) -> None:
    """--status reads shards of one run only (a full check of each is the merge's)."""
    for s in shards[1:]:
        if s.of != shards[0].of or s.run_json["shard"]["rule"] != shards[0].run_json["shard"]["rule"]:
            raise MibeError(
                f"{s.path}: cut into other shards than {shards[0].path}; give the shards of one run"
            )
