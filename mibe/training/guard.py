"""Contamination guard: training text checked against the evaluation documents of the MIBE tasks
available locally, by exact prompt match and by long n-gram overlap (13 words, as GPT-3's audit).

An n-gram counts as evidence only when it occurs in one evaluation document of its task: the
instruction text every prompt of a task shares is boilerplate, not a leak.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibe.types import MibeError

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _key(items: Sequence[str]) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(items).encode(), digest_size=8).digest(), "big")


def ngrams(text: str, n: int) -> set[int]:
    tokens = words(text)
    return {_key(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


@dataclass
class EvalIndex:
    """What the guard looks for: n-gram keys and whole normalised prompts, each -> 'task/doc id'."""

    n: int
    grams: dict[int, str] = field(default_factory=dict)
    prompts: dict[int, str] = field(default_factory=dict)
    docs: dict[str, int] = field(default_factory=dict)  # task -> evaluation documents indexed
    sources: dict[str, list[str]] = field(default_factory=dict)  # task -> where its documents came from

    def fingerprint(self) -> str:
        digest = hashlib.sha256(
            repr((self.n, sorted(self.grams.items()), sorted(self.prompts.items()))).encode()
        )
        return "sha256:" + digest.hexdigest()[:16]


def build_index(tasks: Iterable[Any], locations: dict[str, list[Any]], n: int) -> EvalIndex:
    """Index each task's evaluation documents found at its locations (mibe.data.Location)."""
    from mibe import data, prompts

    index = EvalIndex(n)
    for task in tasks:
        seen: dict[str, Any] = {}
        for location in locations.get(task.name, []):
            try:
                docs = data.load_docs(task, location).docs
            except (data.NoData, MibeError):
                continue  # no usable evaluation split there: nothing to guard against
            index.sources.setdefault(task.name, []).append(location.where)
            for doc in docs:
                seen.setdefault(f"{location.where}#{doc.id}", doc)
        per_doc: dict[str, set[int]] = {}
        for where_id, doc in seen.items():
            prompt = prompts.doc_prompt(task.template, doc)
            tag = f"{task.name}/{doc.id}"
            index.prompts[_key(words(prompt))] = tag
            per_doc[where_id] = ngrams(prompt + "\n" + prompts.gold_text(doc.gold), n)
        counts = Counter(g for grams in per_doc.values() for g in grams)
        shared = counts.keys() & ngrams(task.template, n)
        for where_id, grams in per_doc.items():
            tag = f"{task.name}/{seen[where_id].id}"
            for g in grams:
                if counts[g] == 1 and g not in shared:
                    index.grams[g] = tag
        if seen:
            index.docs[task.name] = len(seen)
    return index


def row_hits(texts: Sequence[str], prompt: str | None, index: EvalIndex) -> tuple[str | None, set[str]]:
    """(the evaluation document a row's prompt equals, the documents it shares an n-gram with)."""
    exact = index.prompts.get(_key(words(prompt))) if prompt is not None else None
    found: set[str] = set()
    for text in texts:
        for g in ngrams(text, index.n):
            tag = index.grams.get(g)
            if tag is not None:
                found.add(tag)
    return exact, found


def report(hits: Iterable[tuple[int, str | None, set[str]]], rows: int, index: EvalIndex) -> dict[str, Any]:
    """Counts per task from the rows that touch evaluation documents: (row number, exact, n-gram hits)."""
    exact_rows = ngram_rows = 0
    per_task: dict[str, dict[str, Any]] = {}
    examples: list[str] = []
    for number, exact, found in hits:
        exact_rows += exact is not None
        ngram_rows += bool(found)
        tags = ({exact} if exact else set()) | found
        for tag in sorted(tags):
            task, _, doc_id = tag.partition("/")
            entry = per_task.setdefault(task, {"rows": 0, "documents": set()})
            entry["rows"] += 1
            entry["documents"].add(doc_id)
        if tags and len(examples) < 3:
            examples.append(f"row {number + 1} ~ {sorted(tags)[0]}" + (" (exact prompt)" if exact else ""))
    return {
        "ngram": index.n,
        "rows_checked": rows,
        "evaluation_documents": dict(index.docs),
        "evaluation_sources": dict(index.sources),
        "index": index.fingerprint(),
        "exact_rows": exact_rows,
        "ngram_rows": ngram_rows,
        "leaks": {
            t: {"rows": e["rows"], "documents": len(e["documents"])} for t, e in sorted(per_task.items())
        },
        "examples": examples,
    }


def enforce(result: dict[str, Any], allow: bool, say) -> None:
    checked = ", ".join(f"{t} ({n})" for t, n in result["evaluation_documents"].items()) or "none found"
    if not result["leaks"]:
        say(f"mibe: contamination guard: {result['rows_checked']} rows clean against {checked}")
        return
    leaks = "; ".join(
        f"{task}: {e['rows']} rows touch {e['documents']} documents" for task, e in result["leaks"].items()
    )
    line = (
        f"contamination guard: {result['exact_rows']} rows repeat an evaluation prompt and "
        f"{result['ngram_rows']} share a {result['ngram']}-word run with one ({leaks}; e.g. "
        f"{result['examples'][0]})"
    )
    if not allow:
        raise MibeError(f"{line}; remove those rows, or pass --allow-contamination to train anyway")
    say(f"mibe: warning: {line}; training anyway (--allow-contamination, recorded in mibe_training.json)")


def locations(
    recipe: dict[str, Any], also: Sequence[Any] = (), extra: dict[str, list[Any]] | None = None
) -> tuple[list, dict]:
    """The built-in tasks and where their evaluation documents are on this machine.

    Looked for: `guard_data_dir` (as `mibe run --data-dir`), each task file's own local source, and
    the bundled demo documents. The hub is never queried.
    """
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
    for name, places in (extra or {}).items():
        found.setdefault(name, []).extend(places)
    return chosen, found


def _flag_batch(batch: dict[str, list], indices: list[int], index: EvalIndex) -> dict[str, list]:
    exact, found = [], []
    for text in batch["text"]:
        hit, grams = row_hits([text], text, index)
        exact.append(hit or "")
        found.append(sorted(grams))
    return {"row": indices, "exact": exact, "found": found}


def scan_texts(dataset: Any, index: EvalIndex, num_proc: int) -> list[tuple[int, str | None, set[str]]]:
    """Rows of a `text` dataset that touch an evaluation document: (row, exact, n-gram documents)."""
    if not index.docs:
        return []
    marked = dataset.map(
        _flag_batch, batched=True, with_indices=True, remove_columns=dataset.column_names,
        num_proc=num_proc if num_proc > 1 else None, fn_kwargs={"index": index}, desc="contamination guard",
    )  # fmt: skip
    marked = marked.filter(lambda row: bool(row["exact"] or row["found"]))
    return [(r["row"], r["exact"] or None, set(r["found"])) for r in marked]
