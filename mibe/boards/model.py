"""Run folders (and the paper's published rows) -> one leaderboard: the table model every format renders.

A column is (task, metric, protocol key): numbers scored two ways never share one. Rows that share
no column are never ranked against each other, so the board falls into sections: each a group of
rows linked by shared columns, with its own averages, ranks and best cells. Invented-data results
always sit in sections of their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibe import lineage
from mibe.runs import saved
from mibe.runs.saved import SavedRun as Run
from mibe.scoring import kinds
from mibe.types import MibeError

# The paper's Table 3 order, and the metrics it reports per task (MIBE.md); other metrics of a run
# are shown with --all-metrics but never averaged.
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
# CONTRACTS.md "Protocols": what must match for two numbers to share a column.
KEY_FIELDS = (
    "task",
    "task_version",
    "data",
    "split",
    "limit",
    "shots",
    "scoring",
    "parser",
    "chat_template",
    "system_prompt",
    "max_new_tokens",
    "stop",
    "chat_template_kwargs",
    "reasoning",
    "extractor",
)
Key = tuple[tuple[str, str], ...]  # (field, canonical JSON value) pairs: hashable, comparable


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


@dataclass
class Row:
    label: str
    published: bool
    invented: bool
    lineage: dict[str, Any]
    run_dir: Path | None
    cells: dict[Column, Cell] = field(default_factory=dict)


def protocol_key(task: str, protocol: dict[str, Any]) -> Key:
    data = protocol.get("data")
    values = {**protocol, "task": task, "data": data.get("fingerprint") if isinstance(data, dict) else data}
    return tuple((name, json.dumps(values.get(name), sort_keys=True)) for name in KEY_FIELDS)


def load_run(path: str | Path) -> Run:
    """A run folder (or its results.json), read through the run-folder owner."""
    return saved.read_run(path)


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
        key = protocol_key(task, entry["protocol"])
        for metric, value in entry["metrics"].items():
            number, ci = _number(value, run.path, f"tasks.{task}.metrics.{metric}")
            unavailable = value.get("unavailable") if isinstance(value, dict) else None
            note = unavailable or ("partial: --limit" if entry.get("partial") else None)
            row.cells[Column(task, metric, key)] = Cell(number, ci, entry.get("n"), note)
    return [rows[k] for k in sorted(rows)]


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
    return all_metrics or column.task not in PAPER_METRICS or column.metric in PAPER_METRICS[column.task]


def averaged(column: Column) -> bool:
    """The average covers the paper's metrics (all metrics of a user's own task), higher-is-better."""
    if column.metric in LOWER_IS_BETTER:
        return False
    return column.task not in PAPER_METRICS or column.metric in PAPER_METRICS[column.task]


@dataclass
class Board:
    sections: list[Any]  # ranking.Section
    protocol_ids: dict[Key, str]  # "P1", "P2", ... in the order columns appear
    column_ids: dict[tuple[int, Column], str]  # (section index, column) -> "c1", ... (HTML sort hooks)
