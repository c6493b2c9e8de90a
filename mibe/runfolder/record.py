"""The run record: run.json, results.json, samples rows and cache rows as typed models (pydantic v2).

A run folder is data that may come from anyone. Every command reads its files through `check` (the
JSON files) and `read_lines` (samples and caches), which validate them against the models below: a
field of the wrong type is one line naming the file (and line) and the field, never a TypeError deep
inside a board or a page. Readers keep receiving the dicts they read, unchanged (numbers keep their
form, so a rescored folder is written as the run wrote it); validation guarantees the types their key
lookups assume. Keys the models do not declare are accepted, and no reader uses them.

`python -m mibe.runfolder.schemas` writes the JSON Schema of each file into docs/schemas/; the tests check
docs/ matches these models.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from mibe.runfolder import validation
from mibe.types import TASK_NAME, MibeError

# 2: protocols carry `scorer_version`, task entries `answer_type` and `domain`; few-shot draws (a `draw`
# key on samples rows, `draws` and `fewshot_seeds` in task entries); `calibration`; `warnings`.
# 3: "no answer" is `prediction: null` (never the string "missing"); protocols record `credentialed`.
SCHEMA_VERSION = 3
NO_ANSWER_BEFORE_3 = "missing"  # what schema 1 and 2 wrote for "no answer" (label kinds, parse failures)
LABEL_KINDS = ("choice", "letter", "multi_label")


def _metric_value(x: float) -> float:
    # Every metric mibe writes is a share, a mean score or a count-based rate: far below 1e6.
    if not math.isnan(x) and abs(x) >= 1e6:
        raise ValueError("a number below 1e6 in size, or null")
    return x


def _interval(x: list[float | None]) -> list[float | None]:
    low, high = x
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high) and low > high:
        raise ValueError("[low, high] with low <= high, or null")
    return x


def _task_name(x: str) -> str:
    if not re.fullmatch(TASK_NAME, x):  # it names samples/<name>.jsonl: never a path
        raise ValueError(f"holds {x!r}: not a task name (lower-case letters, digits and _ only)")
    return x


Count = Annotated[int, Field(ge=0, lt=10**15)]
MetricValue = Annotated[float, AfterValidator(_metric_value)]
Interval = Annotated[list[float | None], Field(min_length=2, max_length=2), AfterValidator(_interval)]
TaskName = Annotated[str, AfterValidator(_task_name)]
DocId = str | int
Label = str | list[Any]  # a label, a list of labels (HoC) or of accepted texts, or a text


class Part(BaseModel):
    """Strict (no coercion: "3" is not a number) and open (undeclared keys are kept, never read)."""

    model_config = ConfigDict(strict=True, extra="allow")


class ModelInfo(Part):
    """The backend's description of the model (docs/run-folder.md, `run.json`)."""

    name: str | None = None
    path: str | None = None
    adapter: str | None = None
    adapters: dict[str, Any] | None = Field(
        None, description="mibe run --adapters: {task: {path, provenance}}, each task's own adapter"
    )
    provenance: dict[str, Any] | None = None
    backend: str | None = None
    backend_version: str | None = None
    max_context: int | None = None
    config_hash: str | None = None
    dtype: str | None = None


class Protocol(Part):
    """How a task's numbers were made; the leaderboard column key is a subset (boards/table.py)."""

    task: str
    task_version: int | None = None
    task_file_hash: str | None = None
    template_hash: str | None = None
    data: dict[str, Any] | str | None = None
    split: str | None = None
    limit: Count | None = None
    shots: Count | None = None
    shot_source: str | None = Field(
        None, description="few-shot runs: the split shots came from, or 'evaluation' (the scored split)"
    )
    fewshot_seed: int | None = None
    fewshot_seeds: list[int] | None = None
    choice_permutations: Count | None = None
    scoring: str
    parser: str | None = None
    scorer_version: int | None = None
    chat_template: str | None = None
    system_prompt: str | None = None
    max_new_tokens: int | None = None
    stop: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    extractor: str | None = None
    jury: dict[str, Any] | None = None
    imported: dict[str, Any] | None = None
    credentialed: bool | None = Field(
        None, description="from schema 3; absent: unknown (shown as credentialed)"
    )


class Metric(Part):
    value: MetricValue | None = None
    ci95: Interval | None = None
    sd: float | None = None
    values: list[float | None] = []
    n_draws: Count = 0
    n: Count | None = Field(None, description="judge metrics: the documents judged")
    unavailable: str | None = None


class Bin(Part):
    lo: float
    hi: float
    count: Count
    confidence: float | None = None
    accuracy: float | None = None


class Calibration(Part):
    """Log-likelihood scoring's ECE, Brier and reliability bins (docs/statistics.md)."""

    ece: Metric | None = None
    brier: Metric | None = None
    reliability: list[Bin] = []


class PerClass(Part):
    labels: list[str] = []
    precision: dict[str, float] = {}
    recall: dict[str, float] = {}
    f1: dict[str, float] = {}
    support: dict[str, Count] = {}
    confusion: dict[str, Any] | None = None


class TaskEntry(Part):
    protocol: Protocol
    metrics: dict[str, Metric]
    answer_type: str | None = None
    domain: str | None = None
    n: Count  # required, as the protocol's `scoring`: every mibe wrote them, and readers index them
    n_skipped_rows: Count = 0
    first_skipped_row: str | None = None
    parse_failures: Count = 0
    truncated: Count = 0
    invented: bool = False
    partial: bool = False
    rescored_from: dict[str, Any] | str | None = None
    task_file: str | None = None
    data_source: str | None = None
    per_class: PerClass | None = None
    calibration: Calibration | None = None
    warnings: list[str] = []
    reasoning: dict[str, Any] | None = None
    extraction: dict[str, Any] | None = None
    fewshot_seeds: list[int] | None = None
    draw_interval: str | None = None
    draws: dict[str, dict[str, Any]] | None = None
    choice_permutations: Count | None = None
    permutation_interval: str | None = None
    permutations: dict[str, dict[str, Any]] | None = None
    consistency: float | None = Field(
        None, description="--choice-permutations: the share of documents answered alike under every ordering"
    )
    position_bias: dict[str, Any] | None = None
    n_clusters: Count | None = None
    cluster_key: str | None = None
    judging: dict[str, Any] | None = None


class Config(Part):
    """The run's configuration (RunConfig less its volatile fields): the keys readers take numbers from."""

    model: str | None = None
    seed: int | None = None
    bootstrap: Count | None = None
    bertscore_model: str | None = None
    parser: str | None = None
    limit: Count | None = None
    num_fewshot: Count | None = None
    fewshot_seeds: list[int] | None = None


class Shard(Part):
    """`mibe run --shard I/N`: a part of a run, merged by `mibe merge` (mibe/runfolder/sharding.py)."""

    index: Count
    of: Count
    rule: str
    expected: dict[TaskName, list[str]] = Field(description="each task's document ids this shard holds")


class Header(Part):
    """What run.json and results.json share."""

    schema_version: Count = 1
    mibe_version: str | None = None
    model: ModelInfo = ModelInfo()
    config: Config = Config()
    rescored_from: dict[str, Any] | str | None = None
    judged_from: dict[str, Any] | None = None
    shard: Shard | None = None
    merged_from: list[str] | None = None


class RunJson(Header):
    protocols: dict[TaskName, Protocol] = {}


class EndpointEntry(Part):
    """A model that received text for this folder (mibe/backends/policy.py records it; never a key)."""

    role: str = Field(description="model, judge or extractor")
    spec: str | None = None
    backend: str | None = None
    url: str | None = Field(None, description="null for a model run in this process")
    model: str | None = None
    where: str | None = Field(None, description="local, loopback or remote")
    credentialed: list[str] = Field([], description="credentialed tasks whose text it received")
    authorisation: str | None = Field(None, description="the --allow-remote-credentialed reason")
    key_env: str | None = Field(None, description="the variable its API key came from")


class Results(Header):
    tasks: dict[TaskName, TaskEntry]
    git_commit: str | None = None
    command: list[str] = []
    skipped: dict[str, str] = {}
    timing: dict[str, Any] = {}
    extractor: dict[str, Any] | None = None
    protocols: dict[str, Any] | None = None
    endpoints: list[EndpointEntry] = []


class SampleRow(Part):
    """One line of samples/<task>.jsonl: one scored document (of one few-shot draw)."""

    id: DocId
    draw: int | None = None
    permutation: int | None = Field(None, description="--choice-permutations: the options' rotation")
    option_order: list[int] | None = None
    cluster: str | None = Field(None, description="a hash of the document's cluster (docs/statistics.md)")
    index: Count | None = None
    prompt: str | None = None
    raw_output: str | None = None
    parse_failed: bool = False
    prediction: Label | None = Field(None, description="null: no answer (from schema 3)")
    strict_prediction: Label | None = None
    gold: Label | None = None
    score: float | None = None
    logprobs: list[float] | None = None
    shots: list[DocId] = []
    truncated_tokens: Count = 0
    cut_at_limit: bool = False
    invented: bool = False
    source: str | None = None
    reasoning: str | None = None
    answer_text: str | None = None
    reasoning_truncated: bool = False
    reasoning_tokens: Count | None = None
    answer_tokens: Count | None = None
    redacted: bool = False
    stats: dict[str, float] | None = None
    unavailable: dict[str, str] | None = None
    judge: dict[str, float | None] | None = None
    endpoint: str | None = Field(None, description="an endpoint pool: the URL of the server that answered")


class JudgeCacheRow(Part):
    """One line of judges/<task>.<jury>.jsonl: one judge's reply to one prompt."""

    key: str
    id: DocId
    scores: dict[str, int | None] = {}
    reply: str | None = None


class ExtractionCacheRow(Part):
    """One line of extractions/<task>.jsonl: what the extractor read from one answer."""

    id: str = Field(description="the cache key: a hash of the extractor spec, prompt and answer")
    value: Label | None = None
    extractor: str | None = None


FILES: dict[str, type[Part]] = {
    "run.json": RunJson,
    "results.json": Results,
    "samples-row": SampleRow,
    "judge-cache-row": JudgeCacheRow,
    "extraction-cache-row": ExtractionCacheRow,
}

# --------------------------------------------------------------------------------------- validation

Problem = tuple[str, str] | None  # (field, what it must be)


def problem(model: type[Part], data: Any) -> Problem:
    """The first field of `data` that breaks `model`, as (field, what it must be); None when it keeps it."""
    if model is Results and not (isinstance(data, dict) and isinstance(data.get("tasks"), dict)):
        return "tasks", "must be an object of task name -> entry (no 'tasks' mapping: a mibe results.json?)"
    if not isinstance(data, dict):
        return "(the file)", "must be a JSON object"
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return validation.first_problem(exc, data)
    return None


def newer(path: Any, data: Any) -> None:
    """A file written by a later mibe is one line: its keys may mean what this mibe cannot know."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise MibeError(
            f"{path}: written by a newer mibe (schema {version}; this mibe reads up to {SCHEMA_VERSION}): "
            "upgrade mibe"
        )


def check(path: Any, data: Any) -> Any:
    """`data` read from `path` (a results.json or run.json), returned unchanged when it keeps its model."""
    newer(path, data)
    model = Results if str(path).endswith("results.json") else RunJson
    found = problem(model, data)
    if found:
        field, what = found
        raise MibeError(f"{path}: field '{field}' {what}; the run folder is damaged (rerun it)")
    return data


def read_lines(path: Path, model: type[Part] = SampleRow) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file of the run folder, each validated against `model`.

    A record ends at "\\n" only: text may hold U+2028, U+2029 or U+0085 (str.splitlines would cut a
    record there). Text after the last "\\n" (a line cut short by a kill) is left out."""
    data = path.read_bytes()
    rows = []
    for number, raw in enumerate(data[: data.rfind(b"\n") + 1].split(b"\n")[:-1], 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise MibeError(
                f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "delete the line to redo that document"
            ) from None
        except (ValueError, RecursionError):
            raise MibeError(
                f"{path}:{number}: corrupt sample line; delete it to redo that document"
            ) from None
        if not isinstance(row, dict):
            raise MibeError(f"{path}:{number}: not a JSON object; delete the line to redo that document")
        found = problem(model, row)
        if found:
            field, what = found
            raise MibeError(f"{path}:{number}: field '{field}' {what}; delete the line to redo that document")
        rows.append(row)
    return rows


def no_answer(rows: list[dict[str, Any]], schema: int, answer_type: str | None) -> list[dict[str, Any]]:
    """Rows with "no answer" as None, whatever the schema: before 3 the string "missing" meant it for
    label kinds or where `parse_failed` is true; elsewhere it is text a model wrote."""
    if schema >= 3:
        return rows
    out = []
    for row in rows:
        if row.get("prediction") == NO_ANSWER_BEFORE_3 and (
            answer_type in LABEL_KINDS or row.get("parse_failed") is True
        ):
            row = {**row, "prediction": None}
        out.append(row)
    return out
