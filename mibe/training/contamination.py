"""`mibe data contamination CORPUS...`: which evaluation documents a training corpus repeats.

The evaluation side is read as `mibe run` reads it (`--data-dir`, else each task's own source); the
corpus is streamed in parts through mibe/corpusscan.py with the one matcher (mibe/matcher.py), the
same rule the training guard applies. The report (docs/contamination.md) names evaluation ids, how
each was matched, and corpus file and line numbers; never text. A report covering a credentialed task
is written owner-only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from mibe import corpusscan, matcher
from mibe.log import logger
from mibe.runfolder import writer
from mibe.textout import md_escape, md_table
from mibe.types import MibeError

FORMATS = {".md": "md", ".csv": "csv", ".json": "json"}
SHOWN = 50  # hits listed per task in the Markdown report; the JSON and CSV reports list every one


def load_index(specs: str, data_dir: str | None, ngram: int) -> tuple[matcher.Index, dict[str, str]]:
    """The matcher's index of each task's evaluation split; tasks without data are skipped, with why."""
    from mibe import data, tasks

    chosen, explicit = tasks.resolve([specs])
    entries, skipped, sources = [], {}, {}
    for task in chosen:
        try:
            location = data.locate(task, data_dir, {})
            docs = data.load_docs(task, location).docs
        except data.NoData as exc:
            if task.name in explicit:
                raise MibeError(str(exc)) from None
            skipped[task.name] = str(exc)
            continue
        hook = data.load_hook(task)
        entries.append(
            (task.name, task.credentialed, task.template, [matcher.eval_doc(task, d, hook) for d in docs])
        )
        sources[task.name] = [location.where]
    if not entries:
        raise MibeError("no task has evaluation data here; pass --data-dir DIR (or --demo)")
    index = matcher.build(entries, n=ngram)
    index.sources = sources
    return index, skipped


def _planned(part: dict[str, Any]) -> int:
    """A part's bytes on disk (compressed files and Parquet count as stored), for the progress bar."""
    if part["kind"] == "hub":
        return 0
    return part["end"] - part["start"] if part["end"] >= 0 else Path(part["source"]).stat().st_size


def _progress(total_bytes: int) -> Any:
    from tqdm.auto import tqdm

    bar = tqdm(total=round(total_bytes / 1e6, 1), unit="MB", desc="scanning", file=sys.stderr, leave=True)
    counts = {"documents": 0, "resumed": 0}

    def update(result: dict[str, Any], resumed: bool) -> None:
        counts["documents"] += result["documents"]
        counts["resumed"] += resumed
        bar.update(round(_planned(result["part"]) / 1e6, 1))
        bar.set_postfix(documents=counts["documents"], resumed_parts=counts["resumed"])

    update.close = bar.close  # type: ignore[attr-defined]
    return update


def _located(results: list[dict[str, Any]]) -> list[list[Any]]:
    """Every hit with its corpus file and line: a part's line numbers follow the source's earlier parts."""
    offsets: dict[str, int] = defaultdict(int)
    out = []
    for result in sorted(results, key=lambda r: (r["part"]["source"], r["part"]["number"])):
        source = result["part"]["source"]
        out += [[source, offsets[source] + line, *rest] for line, *rest in result["hits"]]
        offsets[source] += result["lines"]
    return out


def report(
    results: list[dict[str, Any]], index: matcher.Index, skipped: dict[str, str], corpora: list[str]
) -> dict[str, Any]:
    """Per task: documents touched, how (strongest evidence per document), share, corpus lines."""
    per_task: dict[str, dict[str, Any]] = {}
    for source, line, task, doc, field, how, published in _located(results):
        entry = per_task.setdefault(task, {"best": {}, "hits": []})
        entry["hits"].append(
            {
                "id": doc,
                "field": field,
                "how": how,
                "published_query": published,
                "file": source,
                "line": line,
            }
        )
        best = entry["best"].get(doc)
        entry["best"][doc] = (
            how if best is None or matcher.HOWS.index(how) < matcher.HOWS.index(best) else best
        )
    tasks = {}
    for task, n in sorted(index.docs.items()):
        entry = per_task.get(task, {"best": {}, "hits": []})
        by_how = {h: sum(1 for b in entry["best"].values() if b == h) for h in matcher.HOWS}
        tasks[task] = {
            "documents": n, "touched": len(entry["best"]), "share": round(len(entry["best"]) / n, 6),
            "by_evidence": by_how, "credentialed": task in index.credentialed,
            "published_query_hits": sum(1 for h in entry["hits"] if h["published_query"]),
            "evaluation_source": index.sources.get(task), "hits": entry["hits"],
        }  # fmt: skip
    return {
        **index.settings(), "index": index.fingerprint(), "corpora": corpora,
        "documents_scanned": sum(r["documents"] for r in results),
        "bytes_scanned": sum(r["bytes"] for r in results), "tasks": tasks, "skipped": skipped,
    }  # fmt: skip


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Contamination report",
        "",
        f"Corpora: {', '.join(doc['corpora'])}; {doc['documents_scanned']} documents, "
        f"{doc['bytes_scanned'] / 1e6:.1f} MB. Matcher version {doc['matcher_version']}: fields of at least "
        f"{doc['min_words']} words equal to a segment, {doc['ngram']}-word runs; runs in more than "
        f"{doc['share']:.0%} of a task's documents ignored.",
        "",
    ]
    rows = []
    for task, e in doc["tasks"].items():
        how = e["by_evidence"]
        name = task + (" (credentialed)" if e["credentialed"] else "")
        counts = [e["documents"], e["touched"], f"{e['share']:.2%}", *(how[k] for k in matcher.HOWS)]
        rows.append([name, *map(str, counts)])
    lines += md_table(["task", "test documents", "touched", "share", *matcher.HOWS], rows)
    for task, e in doc["tasks"].items():
        if not e["hits"]:
            continue
        lines += ["", f"## {md_escape(task)}", ""]
        if e["published_query_hits"]:
            lines.append(
                f"{e['published_query_hits']} hits are lines of Me-LLaMA's published `query` rows.\n"
            )
        for hit in e["hits"][:SHOWN]:
            said = f"{hit['id']} ({hit['how']}, field {hit['field']}): {hit['file']}:{hit['line']}"
            lines.append(f"- {md_escape(said)}")
        if len(e["hits"]) > SHOWN:
            lines.append(f"- ... {len(e['hits']) - SHOWN} more (write -o report.json or .csv for every one)")
    for task, why in doc["skipped"].items():
        lines.append(f"\nSkipped {md_escape(task)}: {md_escape(why)}")
    return "\n".join(lines) + "\n"


def csv_text(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    table = csv.writer(out, lineterminator="\n")
    table.writerow(["task", "id", "field", "how", "published_query", "file", "line"])
    for task, e in doc["tasks"].items():
        for h in e["hits"]:
            table.writerow([task, h["id"], h["field"], h["how"], h["published_query"], h["file"], h["line"]])
    return out.getvalue()


def _merged(files: list[str], index: matcher.Index) -> list[dict[str, Any]]:
    """Part results an engine wrote with `corpusscan.scan_part` (one JSON object a line)."""
    results = []
    for name in files:
        for number, line in enumerate(Path(name).read_text(encoding="utf-8").splitlines(), 1):
            try:
                result = json.loads(line)
                hits, part, scanned = result["hits"], result["part"], result["index"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise MibeError(
                    f"{name}:{number}: not a part result (write corpusscan.scan_part's dict with the "
                    "index fingerprint under 'index', one JSON object a line)"
                ) from None
            if scanned != index.fingerprint():
                raise MibeError(
                    f"{name}:{number}: scanned against another index ({scanned}); "
                    "rerun the engine's scan with these tasks and data"
                )
            results.append({**result, "hits": hits, "part": part})
    return results


def _write(doc: dict[str, Any], output: str | None, index: matcher.Index) -> None:
    if output is None:
        sys.stdout.write(markdown(doc))
        return
    path = Path(output).expanduser()
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise MibeError(f"-o {output}: write .md, .csv or .json")
    text = {"md": markdown, "csv": csv_text, "json": lambda d: json.dumps(d, indent=1) + "\n"}[kind](doc)
    private = bool(index.credentialed)  # evaluation ids of credentialed tasks: owner-only
    writer.write_text_atomic(path, text, mode=0o600 if private else None)
    logger.info(
        f"mibe: contamination report in {path}" + (" (owner-only: credentialed tasks)" if private else "")
    )


def main(args: argparse.Namespace) -> int:
    if args.ngram < 1 or args.num_proc < 1 or args.part_mb < 1:
        raise MibeError("--ngram, --num-proc and --part-mb: positive whole numbers")
    if not args.corpus and not args.merge:
        raise MibeError("name a corpus to scan (files, folders, globs or hub:ID), or --merge FILES")
    if args.output and Path(args.output).suffix.lower() not in FORMATS:
        raise MibeError(f"-o {args.output}: write .md, .csv or .json")
    index, skipped = load_index(args.tasks, args.data_dir, args.ngram)
    if args.merge:
        results = _merged(args.merge, index)
        corpora = sorted({r["part"]["source"] for r in results})
    else:
        parts = corpusscan.plan(args.corpus, args.part_mb << 20)
        state = Path(args.state).expanduser() if args.state else None
        if state:
            identity = {"corpora": [str(p) for p in parts], "index": index.fingerprint(), **index.settings()}
            corpusscan.open_state(state, identity)
        progress = _progress(sum(_planned(vars(p)) for p in parts))
        try:
            results = corpusscan.run(parts, index, args.num_proc, state, progress)
        finally:
            progress.close()
        corpora = list(args.corpus)
    _write(report(results, index, skipped, corpora), args.output, index)
    return 0
