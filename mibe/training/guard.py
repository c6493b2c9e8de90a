"""Contamination guard: every training row checked against the evaluation documents of the MIBE tasks
found on this machine, through the one matcher (mibe/matcher.py: exact fields, question + answer,
13-word runs), before anything is written. Rows that repeat an evaluation document stop the run,
are dropped (`--drop-contaminated`) or are kept and recorded (`--allow-contamination`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mibe import matcher
from mibe.log import logger
from mibe.types import MibeError

MODES = ("refuse", "drop", "allow")

RowHits = tuple[int, list[matcher.Hit]]  # (row number, the evaluation documents it touches)


class Contaminated(MibeError):
    """Training rows repeat evaluation documents and the recipe refuses them (a suite skips the task)."""


def mode(recipe: dict[str, Any]) -> str:
    if recipe.get("allow_contamination") and recipe.get("drop_contaminated"):
        raise MibeError("--allow-contamination and --drop-contaminated: choose one")
    if recipe.get("drop_contaminated"):
        return "drop"
    return "allow" if recipe.get("allow_contamination") else "refuse"


def build_index(tasks: Iterable[Any], locations: dict[str, list[Any]], n: int) -> matcher.Index:
    """The matcher's index of each task's evaluation documents found at its locations."""
    from mibe import data

    entries = []
    sources: dict[str, list[str]] = {}
    for task in tasks:
        seen: dict[str, Any] = {}
        hook = data.load_hook(task)
        for location in locations.get(task.name, []):
            try:
                docs = data.load_docs(task, location).docs
            except (data.NoData, MibeError):
                continue  # no usable evaluation split there: nothing to guard against
            sources.setdefault(task.name, []).append(location.where)
            for doc in docs:
                seen.setdefault(str(doc.id), matcher.eval_doc(task, doc, hook))
        if seen:
            entries.append((task.name, task.credentialed, task.template, list(seen.values())))
    index = matcher.build(entries, n=n)
    index.sources = sources
    return index


def row_hits(texts: Sequence[str], index: matcher.Index) -> list[matcher.Hit]:
    """The evaluation documents one training row (its turns or texts, in order) touches."""
    return matcher.match(list(texts), index) if index.docs else []


def _example(number: int, hit: matcher.Hit, ident: str | None) -> str:
    row = f"row {number + 1}" + (f" (id {ident})" if ident else "")
    return f"{row} ~ {hit.task}/{hit.doc} ({hit.how}, field {hit.field})"


def report(
    hits: Iterable[RowHits], rows: int, index: matcher.Index, ids: Sequence[str | None] = ()
) -> dict[str, Any]:
    """Counts per task from the rows that touch evaluation documents."""
    per_task: dict[str, dict[str, Any]] = {}
    how_rows = dict.fromkeys(matcher.HOWS, 0)
    flagged: list[int] = []
    examples: list[str] = []
    for number, found in hits:
        if not found:
            continue
        flagged.append(number)
        how_rows[min((h.how for h in found), key=matcher.HOWS.index)] += 1
        for task in sorted({h.task for h in found}):
            entry = per_task.setdefault(task, {"rows": 0, "documents": set()})
            entry["rows"] += 1
            entry["documents"] |= {h.doc for h in found if h.task == task}
        if len(examples) < 3:
            ident = ids[number] if number < len(ids) else None
            examples.append(_example(number, found[0], ident))
    return {
        **index.settings(),
        "rows_checked": rows,
        "evaluation_documents": dict(index.docs),
        "evaluation_sources": dict(index.sources),
        "index": index.fingerprint(),
        "contaminated_rows": len(flagged),
        "rows_by_evidence": how_rows,
        "leaks": {
            t: {"rows": e["rows"], "documents": len(e["documents"])} for t, e in sorted(per_task.items())
        },
        "examples": examples,
        "flagged_rows": [n + 1 for n in sorted(flagged)],
        "flagged_ids": [ids[n] for n in sorted(flagged) if n < len(ids) and ids[n] is not None],
    }


def enforce(result: dict[str, Any], how: str) -> None:
    checked = ", ".join(f"{t} ({n})" for t, n in result["evaluation_documents"].items()) or "none found"
    if not result["leaks"]:
        logger.info(f"mibe: contamination guard: {result['rows_checked']} rows clean against {checked}")
        return
    evidence = ", ".join(f"{n} by {h}" for h, n in result["rows_by_evidence"].items() if n)
    leaks = "; ".join(
        f"{task}: {e['rows']} rows touch {e['documents']} documents" for task, e in result["leaks"].items()
    )
    line = (
        f"contamination guard: {result['contaminated_rows']} of {result['rows_checked']} rows repeat "
        f"evaluation documents ({evidence}; {leaks}; e.g. {result['examples'][0]})"
    )
    if how == "refuse":
        raise Contaminated(
            f"{line}; remove those rows, pass --drop-contaminated to train on the clean rows, "
            "or --allow-contamination to train anyway"
        )
    if how == "drop":
        logger.info(f"mibe: {line}; dropped them (--drop-contaminated, recorded in mibe_training.json)")
        return
    logger.warning(
        f"mibe: warning: {line}; training anyway (--allow-contamination, recorded in mibe_training.json)"
    )


def outcome(result: dict[str, Any], how: str) -> dict[str, Any]:
    """What mibe_training.json records: the report, what was done, and the rows dropped or kept."""
    acted = bool(result["leaks"])
    return {
        **result,
        "mode": how,
        "allowed": acted and how == "allow",
        "dropped_rows": result["flagged_rows"] if acted and how == "drop" else [],
        "dropped_ids": result["flagged_ids"] if acted and how == "drop" else [],
    }


def _trained_locations(task: Any, sources: Sequence[dict[str, Any]]) -> list[Any]:
    """A task's evaluation split when a training source is its own data (its hub id or local path)."""
    from mibe import data

    out = []
    for source in sources:
        where = source.get("hub") or source.get("path")
        if not where or not task.source:
            continue
        if where == task.source:
            out.append(data.Location("hub" if source.get("hub") else "local", where))
        elif source.get("path") and Path(task.source).exists():
            with contextlib.suppress(OSError):
                if Path(where).resolve() == Path(task.source).resolve():
                    out.append(data.Location("local", str(Path(where).resolve())))
    return out


def locations(
    recipe: dict[str, Any],
    also: Sequence[Any] = (),
    extra: dict[str, list[Any]] | None = None,
    trained: Sequence[dict[str, Any]] = (),
) -> tuple[list, dict]:
    """The built-in tasks and where their evaluation documents are.

    Looked for: `guard_data_dir` (as `mibe run --data-dir`), each task file's own local source, the
    bundled demo documents, and always the evaluation split of a task whose own source (hub or
    local) is trained on (`extra`, and `trained` sources equal to a task's source)."""
    from mibe import data, resources, tasks

    chosen = [tasks.load_task(p) for p in tasks.builtin_paths().values()]
    chosen += [t for t in also if t.name not in {c.name for c in chosen}]
    found: dict[str, list[Any]] = {t.name: [] for t in chosen}
    folders = [recipe.get("guard_data_dir"), str(resources.demo_dir())]
    for task in chosen:
        for folder in folders:
            if folder and Path(folder).is_dir():
                with contextlib.suppress(data.NoData, MibeError):
                    found[task.name].append(data.locate(task, folder, {}))
        if task.source and Path(task.source).exists():
            found[task.name].append(data.Location("local", task.source))
        found[task.name] += _trained_locations(task, trained)
    for name, places in (extra or {}).items():
        found.setdefault(name, []).extend(places)
    return chosen, found


def exclusions(recipe: dict[str, Any]) -> set[str]:
    """`exclude_ids`: evaluation ids (e.g. MIMIC-CXR test study ids) no training row may carry."""
    value = recipe.get("exclude_ids")
    if value is None:
        return set()
    if isinstance(value, list):
        return {str(v).strip() for v in value if str(v).strip()}
    path = Path(str(value)).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MibeError(
            f"recipe key exclude_ids: cannot read {path} ({exc}); give a file of ids, one a line"
        ) from None
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _flag_batch(batch: dict[str, list], indices: list[int], index: matcher.Index) -> dict[str, list]:
    found = matcher.match_batch(batch["text"], index)
    return {"row": indices, "hits": [[[h.task, h.doc, h.field, h.how] for h in row] for row in found]}


def scan_texts(dataset: Any, index: matcher.Index, num_proc: int) -> list[RowHits]:
    """Rows of a `text` dataset that touch an evaluation document."""
    if not index.docs:
        return []
    marked = dataset.map(
        _flag_batch, batched=True, with_indices=True, remove_columns=dataset.column_names,
        num_proc=num_proc if num_proc > 1 else None, fn_kwargs={"index": index}, desc="contamination guard",
    )  # fmt: skip
    marked = marked.filter(lambda row: bool(row["hits"]))
    return [
        (r["row"], [matcher.Hit(t, d, f, h, (t, d) in index.published) for t, d, f, h in r["hits"]])
        for r in marked
    ]
