"""Stream a training corpus of any size through the matcher (mibe/matcher.py), in parts.

A corpus is files (JSONL, Parquet, plain text; the text formats plain, .gz or .zst) or a hub dataset
streamed through `datasets`. A plain file is cut into byte ranges (a part owns the lines that start in
its range), so N processes share one big file; a compressed file or a Parquet file is one part (its
rows), a hub dataset one part. Each finished part is a small JSON result (documents, bytes, lines,
hits); with a state folder each is saved as it finishes, and a rerun reads the saved ones instead of
scanning them again. Results never hold corpus text: a hit is a line number and an evaluation id.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mibe import matcher
from mibe.types import MibeError

PLAIN = {".jsonl": "jsonl", ".json": "jsonl", ".txt": "text", ".text": "text", ".md": "text"}
COMPRESSED = (".gz", ".zst", ".zstd")
PART_BYTES = 64 << 20
_INDEX: matcher.Index | None = None  # set before the worker processes fork; never changed after


@dataclass(frozen=True)
class Part:
    source: str  # a file path, or "hub:<id>"
    kind: str  # jsonl | text | parquet | hub
    start: int = 0  # byte range of a plain file; (0, -1): the whole file
    end: int = -1
    number: int = 0  # its place among the source's parts (line numbers add up in this order)

    def key(self, fingerprint: str) -> str:
        return hashlib.sha256(f"{fingerprint}|{self}".encode()).hexdigest()[:24]


def _kind(path: Path) -> tuple[str | None, str | None]:
    """(jsonl | text | parquet, compression) from a file's suffixes."""
    suffixes = [s.lower() for s in path.suffixes]
    squeeze = suffixes[-1] if suffixes and suffixes[-1] in COMPRESSED else None
    inner = suffixes[-2] if squeeze and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if inner == ".parquet" and not squeeze:
        return "parquet", None
    return PLAIN.get(inner), squeeze


def files_of(corpus: str) -> list[Path]:
    path = Path(corpus).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in sorted(path.rglob("*")) if p.is_file() and _kind(p)[0]]
    return [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]


def plan(corpora: list[str], part_bytes: int = PART_BYTES) -> list[Part]:
    """The parts of every corpus, in a stable order; one line naming the corpus when it cannot be read."""
    parts: list[Part] = []
    for corpus in corpora:
        if corpus.startswith("hub:"):
            parts.append(Part(corpus, "hub"))
            continue
        files = files_of(corpus)
        if not files:
            raise MibeError(
                f"{corpus}: no such file, folder or glob; give JSONL, Parquet or text files "
                "(plain, .gz or .zst), or hub:<dataset id>"
            )
        for file in files:
            kind, squeeze = _kind(file)
            if kind is None:
                raise MibeError(
                    f"{file}: not a corpus format mibe reads; use .jsonl, .parquet or .txt (.gz/.zst)"
                )
            size = file.stat().st_size
            if squeeze or kind == "parquet" or size <= part_bytes:
                parts.append(Part(str(file.resolve()), kind))
                continue
            starts = range(0, size, part_bytes)
            parts += [
                Part(str(file.resolve()), kind, s, min(s + part_bytes, size), n) for n, s in enumerate(starts)
            ]
    return parts


def _lines(part: Part) -> Iterator[tuple[int, bytes]]:
    """(bytes consumed, line) for the lines a part owns: those that start inside its byte range."""
    path = Path(part.source)
    if path.suffix.lower() in COMPRESSED:
        with _open_compressed(path) as handle:
            yield from ((len(line), line) for line in handle)
        return
    with path.open("rb") as handle:
        if part.start > 0:
            handle.seek(part.start - 1)
            if handle.read(1) != b"\n":
                handle.readline()  # the line that started before this range belongs to the previous part
        position = handle.tell()
        end = part.end if part.end >= 0 else float("inf")
        while position < end:
            line = handle.readline()
            if not line:
                break
            position += len(line)
            yield len(line), line


def _open_compressed(path: Path) -> io.BufferedReader | Any:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    try:
        import zstandard
    except ImportError:
        raise MibeError(f"{path}: zstd files need the zstandard package (pip install 'mibe[zstd]')") from None
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(path.open("rb")))


def record_parts(record: Any) -> list[str]:
    """A corpus record's texts in order: conversation turns, then every other string value."""
    if isinstance(record, str):
        return [record]
    if not isinstance(record, dict):
        return []
    out: list[str] = []
    for value in record.values():
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            for turn in value:
                if isinstance(turn, dict):
                    text = turn.get("value", turn.get("content"))
                    out += [text] if isinstance(text, str) else []
                elif isinstance(turn, str):
                    out.append(turn)
    return out


def _documents(part: Part) -> Iterator[tuple[int, list[str], int]]:
    """(line or row number within the part, the document's texts, bytes) for every document."""
    if part.kind == "parquet":
        yield from _parquet_rows(Path(part.source))
        return
    if part.kind == "hub":
        yield from _hub_rows(part.source[4:])
        return
    for number, (size, raw) in enumerate(_lines(part), 1):
        text = raw.decode("utf-8", errors="replace")
        if part.kind == "text":
            yield number, [text.rstrip("\n")], size
            continue
        try:
            record = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            record = text  # a line that is not JSON is still text that may repeat a document
        yield number, record_parts(record), size


def _parquet_rows(path: Path) -> Iterator[tuple[int, list[str], int]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several kinds for a broken file
        raise MibeError(f"{path}: not a readable Parquet file ({str(exc)[:120]})") from None
    number = 0
    for batch in table.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            number += 1
            parts = record_parts(row)
            yield number, parts, sum(len(p.encode()) for p in parts)


def _hub_rows(name: str) -> Iterator[tuple[int, list[str], int]]:
    import datasets

    try:
        stream = datasets.load_dataset(name, split="train", streaming=True)
    except Exception as exc:  # the hub client raises many kinds
        raise MibeError(f"hub:{name}: cannot stream it from the HF hub ({str(exc)[:160]})") from None
    for number, row in enumerate(stream, 1):
        parts = record_parts(dict(row))
        yield number, parts, sum(len(p.encode()) for p in parts)


def scan_part(part: Part, index: matcher.Index | None = None) -> dict[str, Any]:
    """One part's result: documents, bytes, lines and its hits [line, task, doc, field, how, published]."""
    index = index or _INDEX
    assert index is not None, "scan_part needs an index (or the worker's, set before the fork)"
    documents = size = lines = 0
    hits: list[list[Any]] = []
    for number, texts, used in _documents(part):
        lines, size = number, size + used
        if not texts:
            continue
        documents += 1
        for hit in matcher.match(texts, index):
            hits.append([number, hit.task, hit.doc, hit.field, hit.how, hit.published])
    return {"part": asdict(part), "documents": documents, "bytes": size, "lines": lines, "hits": hits}


def _worker(job: tuple[int, Part]) -> tuple[int, dict[str, Any]]:
    return job[0], scan_part(job[1])


def save_part(state: Path, key: str, result: dict[str, Any]) -> None:
    """Atomically: a part killed while it is saved leaves a .tmp file a rerun ignores."""
    path = state / "parts" / f"{key}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, path)


def load_part(state: Path, key: str) -> dict[str, Any] | None:
    path = state / "parts" / f"{key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def open_state(state: Path, identity: dict[str, Any]) -> None:
    """A state folder belongs to one scan: the same corpora, tasks and matcher settings."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "parts").mkdir(exist_ok=True)
    os.chmod(state, 0o700)  # hit lists name evaluation ids of credentialed tasks
    marker = state / "scan.json"
    if marker.is_file():
        try:
            before = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            before = None
        if before != identity:
            raise MibeError(
                f"--state {state}: holds a scan of other corpora, tasks or settings; "
                "use a new folder (or delete this one)"
            )
        return
    marker.write_text(json.dumps(identity, indent=1), encoding="utf-8")


def run(
    parts: list[Part], index: matcher.Index, num_proc: int, state: Path | None, progress: Any
) -> list[dict[str, Any]]:
    """Every part's result, in plan order: saved ones from `state`, the rest scanned (in parallel)."""
    global _INDEX
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for number, part in enumerate(parts):
        saved = load_part(state, part.key(index.fingerprint())) if state else None
        if saved is not None:
            results[number] = saved
            progress(saved, resumed=True)
        else:
            todo.append(number)
    _INDEX = index
    try:
        for number, result in _map(parts, todo, num_proc):
            if state:
                save_part(state, parts[number].key(index.fingerprint()), result)
            results[number] = result
            progress(result, resumed=False)
    finally:
        _INDEX = None
    return [results[n] for n in range(len(parts))]


def _map(parts: list[Part], todo: list[int], num_proc: int) -> Iterator[tuple[int, dict[str, Any]]]:
    if num_proc <= 1 or len(todo) <= 1:
        yield from ((n, scan_part(parts[n])) for n in todo)
        return
    import multiprocessing

    # fork: the workers share the index the parent built, read-only, without pickling it.
    with multiprocessing.get_context("fork").Pool(min(num_proc, len(todo))) as pool:
        yield from pool.imap_unordered(_worker, [(n, parts[n]) for n in todo])
