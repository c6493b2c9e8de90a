"""Rows from local files, the HF hub or a task hook, normalised to `Doc`; few-shot sampling.

A task hook (`tasks/<name>.py`) may define `read(path, split) -> list[dict] | None` for release
layouts that are not one table (a folder of notes, a tree of reports, nested JSON): it returns the
rows of `split` under `path` (every row when `path` does not divide its data into splits), `[]` when
`path` holds no such split, and None when `path` is not in a layout it reads (mibe then reads it as
usual). A row may carry `__where__` (e.g. "test_data/0001.txt line 12"), named when it is unusable.

The hook's `to_doc(row)` gets each row with its place among the split's rows in `row[POSITION]`, so a
hook whose rows carry no id (the hub's BoolQ, MMLU) need not walk the rows itself; mibe adds it to the
hook's copy only, never to the rows it hashes or hands a task without a hook.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from mibe import prompts
from mibe.datafiles import SUFFIXES, read_rows
from mibe.types import Doc, MibeError, Task

INVENTED_MARKER = "INVENTED"  # a file of this name beside the data marks every document invented
POSITION = "__position__"  # the row's place (0, 1, ...) in what mibe read, in the row a hook's to_doc gets


@dataclass(frozen=True)
class Location:
    kind: str  # "local" or "hub"
    where: str  # a path, or a hub id


@dataclass(frozen=True)
class DocSet:
    docs: list[Doc]
    n_skipped: int  # rows the task cannot use
    first_problem: str | None  # the first skipped row and why
    fingerprint: str
    source: str


class NoData(Exception):
    """The task has no data here; the message says where it comes from and how to point at it."""


def _how_to_point(task: Task) -> str:
    return (
        f"{task.name}: no data found ({task.access}); "
        f"point mibe at it with --data {task.name}=PATH or --data-dir DIR"
    )


def locate(task: Task, data_dir: str | None, data: Mapping[str, str]) -> Location:
    """Data resolution (docs/run-folder.md): --data, else --data-dir, else the task file's source."""
    if task.name in data:
        path = Path(data[task.name]).expanduser()
        if not path.exists():
            raise MibeError(f"--data {task.name}={path}: no such file or folder")
        return Location("local", str(path.resolve()))
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise MibeError(f"--data-dir {folder}: no such folder")
        found = [folder / f"{task.name}{s}" for s in SUFFIXES] + [folder / task.name]
        found = [p for p in found if p.exists()]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise MibeError(f"--data-dir {folder}: {names} all match task {task.name}; keep one")
        if not found:
            # Never fall back to the hub behind the user's back when they named a folder.
            raise NoData(_how_to_point(task) + f" (nothing named {task.name}.* in {folder})")
        return Location("local", str(found[0].resolve()))
    # The task loader made local sources absolute; anything else is a hub id.
    local = Path(task.source).is_absolute()
    if local and Path(task.source).exists():
        return Location("local", task.source)
    if task.credentialed or not task.source or local:
        raise NoData(_how_to_point(task))
    return Location("hub", task.source)


def _split_file(folder: Path, split: str) -> Path | None:
    exact = [folder / f"{split}{s}" for s in SUFFIXES if (folder / f"{split}{s}").is_file()]
    if exact:
        return exact[0]
    near = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and split in p.stem)
    return near[0] if len(near) == 1 else None


def _fingerprint(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()[:16]


def _fingerprint_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    # Rows a hook read from many files: hash what it read (locations are relative to the data path).
    text = json.dumps(list(rows), sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def docs_fingerprint(docs: Sequence[Doc]) -> str:
    """The documents as the task produced them (ids, fields, golds): a hook or split that changes them
    changes this; an edit that changes no document does not."""
    digest = hashlib.sha256()
    for d in docs:
        # An option list counts as the lines it prints: fingerprints from when hooks handed text hold.
        fields = {k: prompts.options_text(v) for k, v in d.fields.items()}
        record = [d.id, fields, d.gold, d.query, d.invented]
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n")
    return "sha256:" + digest.hexdigest()[:16]


def cluster_id(task: str, cluster: str) -> str:
    """A document's cluster as its samples row keeps it: a short hash, never the premise or note
    itself (it passes --redact-samples and the viewer's credentialed hiding)."""
    return hashlib.sha256(f"{task}\0{cluster}".encode()).hexdigest()[:12]


def _invented(path: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    return (folder / INVENTED_MARKER).is_file()


def _hub_rows(task: Task, split: str) -> tuple[list[dict[str, Any]], str]:
    from mibe import hub, names

    try:
        loaded = hub.dataset(task.source, split, task.revision, task.config)
    except Exception as exc:  # the hub client raises many kinds; all mean "no data here"
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        shadow = names.hub_shadow(task.source, task.path.parent)
        fix = f"; {shadow}" if shadow else ""
        raise NoData(
            f"{task.name}: could not load {task.source} (split {split}) from the HF hub: {reason}; "
            f"point mibe at a local copy with --data {task.name}=PATH or --data-dir DIR{fix}"
        ) from None
    revision = task.revision or getattr(loaded, "_fingerprint", "unknown")
    named = f"{task.source}:{task.config}" if task.config else task.source  # as before for config-less ids
    return [dict(row) for row in loaded], f"hub:{named}@{revision}"


def _rows(
    task: Task, location: Location, split: str, hook: ModuleType | None = None
) -> tuple[list[dict[str, Any]], str] | None:
    if location.kind == "hub":
        return _hub_rows(task, split)
    path = Path(location.where)
    read = getattr(hook, "read", None)
    if read is not None:
        rows = read(path, split)
        if rows is not None:
            return (rows, _fingerprint_rows(rows)) if rows else None
    if path.is_dir():
        file = _split_file(path, split)
        if file is None:
            return None
        return read_rows(file), _fingerprint([file])
    return read_rows(path), _fingerprint([path])


def load_hook(task: Task) -> ModuleType | None:
    # Only built-in tasks and task files the user named run code; never one a run folder named.
    if task.hook is None or not task.trusted:
        return None
    spec = importlib.util.spec_from_file_location(f"mibe_hook_{task.name}", task.hook)
    if spec is None or spec.loader is None:
        raise MibeError(f"{task.hook}: cannot import the task hook")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "to_doc") and not hasattr(module, "to_docs"):
        raise MibeError(f"{task.hook}: a task hook must define to_doc(row) or to_docs(rows)")
    return module


def row_id(row: Mapping[str, Any], column: str, fallback: str) -> str:
    """A hook's document id: the row's `column`, else its `fallback` (releases name the id differently);
    a ValueError naming both when the one it has is null or empty."""
    ident = row.get(column, row.get(fallback))
    if ident is None or str(ident) == "":
        raise ValueError(f"{column}: missing (and no {fallback})")
    return str(ident)


def _canonical_gold(task: Task, gold: Any) -> Any:
    if task.answer_type in ("choice", "letter"):
        lookup = {c.lower(): c for c in task.choices}
        label = str(gold).strip()
        if label.lower() not in lookup:
            raise ValueError(f"gold label {label!r} is not one of the task's choices")
        return lookup[label.lower()]
    if task.answer_type == "multi_label":
        lookup = {c.lower(): c for c in task.choices}
        if isinstance(gold, str):
            names = [gold]
        elif isinstance(gold, list | tuple):
            names = list(gold)
        else:  # a mapping's keys or a number's digits are not the labels that apply
            shown = {dict: "an object", type(None): "null", bool: "true/false"}.get(type(gold), "a number")
            raise ValueError(
                f"gold for a multi-label task must be a list of labels or a ';'-separated string, not {shown}"
            )
        names = [n.strip() for name in names for n in str(name).split(";") if n.strip()]
        unknown = [n for n in names if n.lower() not in lookup]
        if unknown:
            raise ValueError(f"gold label {unknown[0]!r} is not one of the task's choices")
        wanted = {n.lower() for n in names}
        return tuple(c for c in task.choices if c.lower() in wanted)
    return str(gold)


def _published_doc(task: Task, row: Mapping[str, Any], index: int) -> Doc:
    """Me-LLaMA's rows: `query` is the rendered prompt; `gold` indexes the row's `choices`."""
    choices, gold = row.get("choices") or [], row.get("gold")
    if task.answer_type == "multi_label" and isinstance(gold, list) and choices:
        label: Any = tuple(c for c, bit in zip(choices, gold, strict=False) if bit)
    elif task.answer_type in ("choice", "letter") and choices and isinstance(gold, int):
        if not 0 <= gold < len(choices):
            raise ValueError(f"gold index {gold} is outside choices (0..{len(choices) - 1})")
        label = choices[gold]
    else:
        label = row["answer"]
    fields = {"query": row["query"], "answer": row["answer"]}
    return Doc(id=str(row.get("id", index)), fields=fields, gold=label, query=str(row["query"]))


def _plain_doc(task: Task, row: Mapping[str, Any], index: int) -> Doc:
    if task.target not in row:
        columns = ", ".join(sorted(k for k in row if not k.startswith("__"))[:12])
        raise ValueError(
            f"no gold column '{task.target}' (set `target:` in the task file; the row has {columns})"
        )
    # A JSON file keyed by id keeps its keys as ids; else the row's place in the file.
    ident = row.get("id", row.get("__key__", index))
    if isinstance(ident, bool) or not isinstance(ident, str | int) or not str(ident).strip():
        raise ValueError(f"`id` is {json.dumps(ident)}; ids are non-empty strings or numbers")
    gold = row[task.target]
    if gold is None:
        raise ValueError(f"the gold column '{task.target}' is null")
    if task.answer_type in ("text", "span") and not isinstance(gold, str | int | float):
        raise ValueError(f"the gold column '{task.target}' is {type(gold).__name__}, not text")
    return Doc(id=str(ident), fields=dict(row), gold=gold)


def to_docs(task: Task, rows: Sequence[dict[str, Any]], hook: ModuleType | None):
    """Normalise rows; returns (docs, n_skipped, first problem)."""
    if hook is not None and hasattr(hook, "to_docs") and not any("query" in r for r in rows):
        return _grouped(task, rows, hook)
    docs: list[Doc] = []
    skipped, first = 0, None

    def reject(index: int, why: str, row: Any) -> None:
        nonlocal skipped, first
        skipped += 1
        where = row.get("__where__") if isinstance(row, Mapping) else None  # a hook's read may hand anything
        first = first or f"{where or f'row {index + 1}'}: {why}"

    for index, row in enumerate(rows):
        try:
            if "query" in row and "answer" in row:
                doc = _published_doc(task, row, index)
            elif hook is not None:
                doc = hook.to_doc({**row, POSITION: index})  # a copy: the rows stay as read
            else:
                doc = _plain_doc(task, row, index)
        except (ValueError, KeyError, TypeError) as exc:
            reject(index, f"{type(exc).__name__}: {exc}", row)
            continue
        if doc is None:
            reject(index, "the task hook found nothing usable in this row", row)
            continue
        if row.get("invented") is True:
            doc = replace(doc, invented=True)
        try:
            docs.append(_finished(task, doc, row))
        except ValueError as exc:
            reject(index, str(exc), row)
    return docs, skipped, first


def _finished(task: Task, doc: Doc, row: Mapping[str, Any]) -> Doc:
    """The document with its gold spelled as the task's labels are and its cluster; a ValueError when
    the gold is not one of them."""
    return replace(doc, gold=_canonical_gold(task, doc.gold), cluster=_cluster(task, doc, row))


def _grouped(
    task: Task, rows: Sequence[dict[str, Any]], hook: ModuleType
) -> tuple[list[Doc], int, str | None]:
    """A hook's `to_docs(rows)`: documents made from rows that belong together, so not one per row;
    a None, or a gold outside the task's labels, is a skipped document."""
    docs: list[Doc] = []
    skipped, first = 0, None
    for number, doc in enumerate(hook.to_docs(list(rows))):
        try:
            if doc is None:
                raise ValueError("the task hook found nothing usable")
            docs.append(_finished(task, doc, {}))
        except ValueError as exc:
            skipped += 1
            first = first or f"document {number + 1} of to_docs: {exc}"
    return docs, skipped, first


def _cluster(task: Task, doc: Doc, row: Mapping[str, Any]) -> str | None:
    """The document's cluster under the task's `cluster:` key: what the hook set, else that field of
    the document or of its row; None (a cluster of its own) when the task names none or it is empty."""
    if task.cluster is None:
        return None
    value = doc.cluster
    for source in (doc.fields, row):
        if value is None or value == "":
            value = source.get(task.cluster)
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    return str(value)


def load_docs(task: Task, location: Location, split: str | None = None) -> DocSet:
    split = split or task.split
    hook = load_hook(task)
    found = _rows(task, location, split, hook)
    if found is None:
        raise NoData(f"{task.name}: {location.where} holds no '{split}' split file")
    rows, fingerprint = found
    docs, skipped, first = to_docs(task, rows, hook)
    if location.kind == "local" and _invented(Path(location.where)):
        docs = [replace(d, invented=True) for d in docs]
    if not docs:
        why = f"; the first problem: {first}" if first else ""
        raise NoData(f"{task.name}: {location.where} has no usable documents ({len(rows)} rows{why})")
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise MibeError(f"{location.where}: duplicate document ids {dupes}; ids must be unique")
    return DocSet(docs, skipped, first, fingerprint, location.where)


def fewshot_pool(task: Task, location: Location) -> list[Doc] | None:
    """The task's few-shot split when one exists; None means 'draw from the scored split'."""
    if not task.fewshot_split:
        return None
    if location.kind == "local" and not Path(location.where).is_dir():
        return None  # a single file is the evaluation split only (docs/run-folder.md)
    try:
        return load_docs(task, location, task.fewshot_split).docs
    except NoData:
        return None


def draw_shots(
    doc: Doc, pool: Sequence[Doc], k: int, seed: int, rank: Callable[[Doc], str] = lambda d: d.id
) -> list[Doc]:
    """K shots for one document, seeded by (seed, document id) so resume and order don't matter."""
    if k <= 0:
        return []
    candidates = [d for d in pool if d.id != doc.id]
    if len(candidates) < k:
        raise MibeError(f"--num-fewshot {k}: only {len(candidates)} other documents to draw from")
    rng = random.Random(f"{seed}:{rank(doc)}")
    return rng.sample(candidates, k)
