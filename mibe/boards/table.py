"""Run folders (and the paper's published rows) -> one leaderboard: the table model every format renders.

A column is (task, metric, protocol key): numbers scored two ways never share one. Rows that share
no column are never ranked against each other, so the board falls into sections: each a group of
rows linked by shared columns, with its own averages, ranks and best cells. Invented-data results
always sit in sections of their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibe import lineage
from mibe.runfolder import saved, sharding
from mibe.runfolder.saved import SavedRun as Run
from mibe.scoring import judge_scoring, kinds
from mibe.types import MibeError

# The paper's Table 3 order, and the metrics it reports per task (leaderboards/README.md); other
# metrics of a run are shown with --all-metrics but never averaged.
PAPER_METRICS: dict[str, tuple[str, ...]] = {
    "pubmedqa": ("accuracy", "macro_f1"),
    "medqa": ("accuracy", "macro_f1"),
    "medmcqa": ("accuracy", "macro_f1"),
    "emrqa": ("exact_match", "f1"),
    "i2b2_2010": ("entity_f1",),
    "ddi2013": ("macro_f1",),
    "hoc": ("macro_f1",),
    "mtsample": ("accuracy", "macro_f1"),
    "pubmed_sum": ("rouge_l", "bertscore_f1"),
    "mimic_cxr": ("rouge_l", "bertscore_f1"),
    "bionli": ("accuracy", "macro_f1"),
    "mednli": ("accuracy", "macro_f1"),
}
METRIC_ORDER = kinds.METRICS  # the task files' metric vocabulary, in the paper's order
LOWER_IS_BETTER = kinds.LOWER_IS_BETTER
# The protocol key (docs/run-folder.md): what must match for two numbers to share a column.
KEY_FIELDS = (
    "task",
    "task_version",
    "data",
    "split",
    "limit",
    "shots",
    "shot_source",  # where the shots came from (absent at 0 shots: the published zero-shot tables match)
    "fewshot_seeds",
    "scoring",
    "parser",
    "scorer_version",
    "chat_template",
    "system_prompt",
    "max_new_tokens",
    "stop",
    "jury",  # judge_* columns only: the jury's id (judges, prompt, rubric, order); null elsewhere
    "chat_template_kwargs",
    "reasoning",
    "extractor",
    "choice_permutations",  # --choice-permutations K (absent: the options in their own order)
)
Key = tuple[tuple[str, str], ...]  # (field, canonical JSON value) pairs: hashable, comparable
# A reference row (a published table's) joins a run's column when every key field matches but these:
# where the documents came from (the paper's hub copy, a local copy of a public release, a
# credentialed release) and how many were scored. What differs is said in the cell, never hidden.
REFERENCE_RELAXED = ("data", "limit")
# Fields a board compares across only when asked (`--compare-across NAME`): a hosted model's chat
# template is the server's, a local model's its own, and the same task and prompt otherwise.
ACROSS: dict[str, tuple[str, ...]] = {"template": ("chat_template",), "system-prompt": ("system_prompt",)}
RELAXED = json.dumps("(compared across)")


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    key: Key

    @property
    def protocol(self) -> dict[str, Any]:
        return {name: json.loads(value) for name, value in self.key}


@dataclass(frozen=True)
class Cell:
    value: float | None
    ci95: tuple[float, float] | None = None
    n: int | None = None
    note: str | None = None  # why a value is absent, or what to know about it
    sd: float | None = None  # over few-shot draws (--fewshot-seeds); the value is then their mean
    # Clusters the intervals resampled ((count, key), docs/statistics.md); None: documents one by one
    clusters: tuple[int, str] | None = None
    parse_failures: int | None = None  # the task's, as results.json counts them (every surface agrees)


@dataclass
class Row:
    label: str
    published: bool
    invented: bool
    lineage: dict[str, Any]
    run_dir: Path | None
    cells: dict[Column, Cell] = field(default_factory=dict)
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> results' calibration
    general: set[str] = field(default_factory=set)  # tasks whose task file says `domain: general`
    reference: bool = False  # a published row shown beside runs: never ranked, marked, never tested
    task_runs: dict[str, Path] = field(default_factory=dict)  # --group: the run folder of each task


def protocol_key(task: str, protocol: dict[str, Any], metric: str | None = None) -> Key:
    data = protocol.get("data")
    values = {**protocol, "task": task, "data": data.get("fingerprint") if isinstance(data, dict) else data}
    # Runs written before scorers were versioned were all scored by the version-1 rules.
    values.setdefault("scorer_version", 1)
    # Two juries never share a column; a task's other metrics do not depend on its jury.
    jury = judge_scoring.jury_of(protocol, metric) if metric and is_judge(metric) else None
    values["jury"] = jury.get("id") if isinstance(jury, dict) else None
    return tuple((name, json.dumps(values.get(name), sort_keys=True)) for name in KEY_FIELDS)


def relaxed(column: Column, fields: Sequence[str]) -> Column:
    """The one rule for columns that share across a protocol difference: the named key fields stop
    counting (a reference row's data source and limit; `--compare-across` fields when asked)."""
    key = tuple((name, RELAXED if name in fields else value) for name, value in column.key)
    return Column(column.task, column.metric, key)


def reference_key(column: Column) -> tuple[str, str, Key]:
    """What a reference row's column must share with a run's column (docs/leaderboard.md)."""
    return column.task, column.metric, relaxed(column, REFERENCE_RELAXED).key


def across_fields(names: Sequence[str]) -> tuple[str, ...]:
    """`--compare-across NAME,...` -> the protocol key fields it relaxes; an unknown name is one line."""
    fields: list[str] = []
    for name in names:
        if name not in ACROSS:
            raise MibeError(f"--compare-across {name}: not a declared field; use one of {', '.join(ACROSS)}")
        fields += ACROSS[name]
    return tuple(fields)


def relax_rows(rows: Sequence[Row], fields: Sequence[str]) -> list[str]:
    """Rewrite every row's columns with `fields` relaxed; the lines that say so above the table (each
    row's own values of the fields), or none when no two rows differed in them."""
    seen: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        cells = {}
        for column, cell in row.cells.items():
            for name, value in column.key:
                if name in fields:
                    seen.setdefault(name, {}).setdefault(row.label, set()).add(value)
            cells[relaxed(column, fields)] = cell
        row.cells = cells
    lines = []
    for name, per_row in seen.items():
        if len({v for values in per_row.values() for v in values}) > 1:
            said = "; ".join(f"{label}: {', '.join(sorted(v))}" for label, v in per_row.items())
            lines.append(
                f"Compared across {name} (--compare-across): rows whose {name} differs share columns ({said})"
            )
    return lines


def is_judge(metric: str | None) -> bool:
    """A jury's column (`mibe judge`, docs/judges.md): not a task-file metric, on the rubric's scale."""
    return bool(metric) and metric.startswith(judge_scoring.METRIC_PREFIX)


def load_run(path: str | Path, command: str = "leaderboard") -> Run:
    """A run folder (or its results.json), read through the run-folder owner; a shard's folder (a part
    of a run, `mibe run --shard`) is refused in one line: boards compare whole runs."""
    run = saved.read_run(path)
    sharding.refuse(path, run.results, command)
    return run


def run_label(run: Run) -> str:
    return saved.label(run)


def _provenance(model: dict[str, Any]) -> dict[str, Any] | None:
    # `mibe train` leaves mibe_training.json beside a checkpoint; results.json carries its summary.
    if isinstance(model.get("provenance"), dict):
        return model["provenance"]
    for folder in (model.get("adapter"), model.get("path")):
        found = lineage.training_provenance(str(folder) if folder else None)
        if found:
            return found
    return None


def _contaminated(provenance: dict[str, Any] | None) -> str | None:
    """Tasks whose evaluation documents the checkpoint's lineage trained on (mibe_training.json)."""
    tasks = (provenance or {}).get("contaminated")
    if isinstance(tasks, list) and tasks:
        return ", ".join(str(t) for t in tasks)
    return "unknown tasks" if (provenance or {}).get("contamination_allowed") else None


def _per_task_adapters(model: dict[str, Any]) -> dict[str, Any]:
    """`mibe run --adapters`: the lineage names every task's adapter and what trained it."""
    found = model.get("adapters")
    if not isinstance(found, dict) or not found:
        return {}
    entries = {t: a for t, a in found.items() if isinstance(a, dict)}
    provenances = {
        t: a.get("provenance") for t, a in entries.items() if isinstance(a.get("provenance"), dict)
    }
    contaminated = sorted({c for p in provenances.values() for c in p.get("contaminated") or []})
    allowed = any(p.get("contamination_allowed") for p in provenances.values())
    return {
        "base": model.get("path"),
        "adapter": ", ".join(f"{t}={a.get('path')}" for t, a in entries.items()),
        "training": "; ".join(f"{t}: {lineage.summary(p)}" for t, p in provenances.items()) or None,
        "contaminated": ", ".join(contaminated) or ("unknown tasks" if allowed else None),
    }


def run_lineage(run: Run) -> dict[str, Any]:
    model = run.results.get("model") or {}
    provenance = _provenance(model)
    base = (provenance or {}).get("base_model") or (provenance or {}).get("base")
    rescored = {saved.rescored_text(e) for e in run.results["tasks"].values()} - {None}
    return {
        "run": str(run.path),
        "model": model.get("path"),
        "base": base or (model.get("path") if model.get("adapter") else None),
        "adapter": model.get("adapter"),
        "training": lineage.summary(provenance) if provenance else None,
        "contaminated": _contaminated(provenance),
        **_per_task_adapters(model),
        "backend": " ".join(str(x) for x in (model.get("backend"), model.get("backend_version")) if x),
        "dtype": model.get("dtype"),
        "rescored_from": ", ".join(sorted(map(str, rescored))) or None,
    }


def run_rows(run: Run) -> list[Row]:
    """One row per kind of data the run holds: real and invented results never share a row."""
    rows: dict[bool, Row] = {}
    for task, entry in run.results["tasks"].items():
        invented = bool(entry.get("invented"))
        row = rows.setdefault(invented, Row(run_label(run), False, invented, run_lineage(run), run.path))
        for metric, value in entry["metrics"].items():
            key = protocol_key(task, entry["protocol"], metric)
            number, ci = _number(value, run.path, f"tasks.{task}.metrics.{metric}")
            unavailable = value.get("unavailable") if isinstance(value, dict) else None
            if number is None and _non_finite(value):
                unavailable = f"results.json holds {_raw(value)}, not a number"
            note = unavailable or ("partial: --limit" if entry.get("partial") else None)
            sd = value.get("sd") if isinstance(value, dict) else None
            sd = float(sd) if isinstance(sd, int | float) and not isinstance(sd, bool) else None
            n = value.get("n") if is_judge(metric) and isinstance(value, dict) else entry.get("n")
            failures = entry.get("parse_failures")
            row.cells[Column(task, metric, key)] = Cell(
                number, ci, n, note, sd, _clusters(entry), failures if isinstance(failures, int) else None
            )
        if isinstance(entry.get("calibration"), dict):
            row.calibration[task] = entry["calibration"]
        if entry.get("domain") == "general":
            row.general.add(task)
    return [rows[k] for k in sorted(rows)]


def _clusters(entry: dict[str, Any]) -> tuple[int, str] | None:
    count, key = entry.get("n_clusters"), entry.get("cluster_key")
    ok = isinstance(count, int) and not isinstance(count, bool) and isinstance(key, str)
    return (count, key) if ok else None  # runs scored before clusters: documents resampled


def _raw(value: Any) -> Any:
    return value.get("value") if isinstance(value, dict) else value


def _non_finite(value: Any) -> bool:
    x = _raw(value)
    return isinstance(x, float) and not math.isfinite(x)


def _number(value: Any, folder: Path, where: str) -> tuple[float | None, tuple[float, float] | None]:
    def real(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    ci = value.get("ci95") if isinstance(value, dict) else None
    number = value.get("value") if isinstance(value, dict) else value
    ok_ci = ci is None or (isinstance(ci, list) and len(ci) == 2 and all(real(x) for x in ci))
    if not (number is None or real(number)) or not ok_ci:
        raise MibeError(
            f"{folder / 'results.json'}: {where} should be {{'value': number, 'ci95': [low, high]}}; "
            "rerun that task with `mibe run`"
        )
    if number is not None and not math.isfinite(number):
        return None, None  # NaN or inf: no value to rank or draw (run_rows says why)
    if ci and not all(math.isfinite(x) for x in ci):
        ci = None
    return (None if number is None else float(number)), (tuple(ci) if ci else None)  # type: ignore[return-value]


def disambiguate(rows: Sequence[Row]) -> None:
    """Two run folders of one model (say zero-shot and 1-shot) get their folder names in the label."""
    runs_per_label: dict[str, set[Path]] = {}
    for row in rows:
        if row.run_dir is not None:
            runs_per_label.setdefault(row.label, set()).add(row.run_dir)
    for row in rows:
        if row.run_dir is not None and len(runs_per_label[row.label]) > 1:
            row.label = f"{row.label} ({row.run_dir.name})"


def column_order(column: Column) -> tuple:
    tasks = list(PAPER_METRICS)
    task_rank = tasks.index(column.task) if column.task in PAPER_METRICS else len(tasks)
    metric_rank = METRIC_ORDER.index(column.metric) if column.metric in METRIC_ORDER else len(METRIC_ORDER)
    return (task_rank, column.task, metric_rank, column.metric)


def shown(column: Column, all_metrics: bool) -> bool:
    paper = column.task not in PAPER_METRICS or column.metric in PAPER_METRICS[column.task]
    return all_metrics or paper or is_judge(column.metric)


def averaged(column: Column) -> bool:
    """The average covers the paper's metrics (all metrics of a user's own task), higher-is-better."""
    if column.metric in LOWER_IS_BETTER or is_judge(column.metric):  # a 1-5 scale, not a share
        return False
    return column.task not in PAPER_METRICS or column.metric in PAPER_METRICS[column.task]


@dataclass
class Board:
    sections: list[Any]  # ranking.Section
    protocol_ids: dict[Key, str]  # "P1", "P2", ... in the order columns appear
    column_ids: dict[tuple[int, Column], str]  # (section index, column) -> "c1", ... (HTML sort hooks)
    notes: list[str] = field(default_factory=list)  # said once, under every section
    heading: list[str] = field(default_factory=list)  # said once, above every section
