"""Where training text comes from: local JSONL/JSON/CSV/TSV/text/parquet files, plain or compressed
with gzip or zstd (a file, a folder or a glob), or a Hugging Face dataset id, each with a fingerprint
for the provenance file. `datasets` reads them into memory-mapped Arrow tables a batch at a time, so a
corpus larger than memory (MIMIC-III's NOTEEVENTS.csv.gz) trains as released."""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path
from typing import Any

from mibe.types import MibeError

_BUILDERS = {
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".parquet": "parquet",
}
COMPRESSED = (".gz", ".zst", ".zstd")  # zstd needs the `zstandard` package (pip install "mibe[zstd]")
SUFFIXES = tuple(_BUILDERS) + tuple(f"{s}{c}" for s in _BUILDERS if s != ".parquet" for c in COMPRESSED)
FORMATS = ".jsonl, .json, .csv, .tsv, .txt, .md, .parquet (the text formats also as .gz or .zst)"
_KEYS = {"path", "hub", "split", "name", "revision", "text", "sample_by", "weight", "id"}


def base_suffix(path: Path) -> str:
    """`.csv` for notes.csv.gz; "" for a compressed file whose inner format mibe does not read."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    inner = suffixes[-1] if suffixes else ""
    return (
        inner
        if inner in _BUILDERS and not (inner == ".parquet" and path.suffix.lower() in COMPRESSED)
        else ""
    )


def check(spec: Any, folder: Path, where: str) -> dict[str, Any]:
    """A source as written in a mix or recipe: a path or hub id string, or a mapping."""
    if isinstance(spec, str):
        spec = {"path": spec} if _looks_local(spec, folder) else {"hub": spec}
    if not isinstance(spec, dict):
        raise MibeError(f"{where}: a path, a hub id, or a mapping with path: or hub:")
    unknown = set(spec) - _KEYS
    if unknown:
        raise MibeError(f"{where}: unknown key '{sorted(unknown)[0]}'; known: {', '.join(sorted(_KEYS))}")
    if ("path" in spec) == ("hub" in spec):
        raise MibeError(f"{where}: give exactly one of path: (local files) or hub: (a dataset id)")
    if spec.get("sample_by", "document") not in ("document", "paragraph", "line"):
        raise MibeError(f"{where}: sample_by: document, paragraph or line")
    weight = spec.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise MibeError(f"{where}: weight: a positive number (1 = every row once), got {weight!r}")
    spec = dict(spec)
    if "path" in spec:
        relative = folder / Path(str(spec["path"])).expanduser()
        spec["path"] = (
            str(relative) if matching_files(str(relative)) else str(Path(spec["path"]).expanduser())
        )
        if not matching_files(spec["path"]):
            raise MibeError(f"{where}: path {spec['path']}: no readable files ({FORMATS})")
    return spec


def _looks_local(text: str, folder: Path) -> bool:
    if text.startswith((".", "/", "~")) or any(c in text for c in "*?["):
        return True
    return (folder / text).exists() or Path(text).exists() or bool(base_suffix(Path(text)))


def matching_files(pattern: str) -> list[Path]:
    """A file, a folder (every readable file inside) or a glob, sorted for a stable fingerprint."""
    path = Path(pattern).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in sorted(path.rglob("*")) if p.is_file() and base_suffix(p)]
    return [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(files: list[Path]) -> tuple[str, list[dict[str, Any]]]:
    listed = [{"file": str(p.resolve()), "bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files]
    whole = hashlib.sha256("".join(f["sha256"] for f in listed).encode()).hexdigest()
    return "sha256:" + whole[:16], listed


def load_rows(spec: dict[str, Any], cache: Path) -> tuple[Any, dict[str, Any]]:
    """A `datasets.Dataset` of the source's rows and its manifest entry (where, fingerprint, rows)."""
    import datasets

    if "hub" in spec:
        from mibe import names

        try:  # a hub id only ever loads from the hub, never a local folder of that name (mibe/names.py)
            loaded = datasets.load_dataset(
                names.hub_load_path(spec["hub"]), spec.get("name"), split=spec.get("split", "train"),
                revision=spec.get("revision"), cache_dir=str(cache),
            )  # fmt: skip
        except Exception as exc:  # the hub client raises many kinds; all mean "no data here"
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            shadow = names.hub_shadow(spec["hub"], fix=f"give it as path: ./{spec['hub']}")
            fix = f"; {shadow}" if shadow else ""
            raise MibeError(
                f"training data {spec['hub']}: cannot load from the HF hub ({first}){fix}"
            ) from None
        revision = spec.get("revision") or loaded._fingerprint
        info = {
            "hub": spec["hub"],
            "split": spec.get("split", "train"),
            "fingerprint": f"hub:{spec['hub']}@{revision}",
        }
        return loaded, {**info, "rows": len(loaded)}
    files = matching_files(spec["path"])
    fingerprint, listed = _fingerprint(files)
    parts = []
    unknown = [p for p in files if not base_suffix(p)]
    if unknown:
        raise MibeError(f"training data {unknown[0]}: unsupported format; use {FORMATS}")
    if any(p.suffix.lower() in (".zst", ".zstd") for p in files):
        _need_zstandard(files)
    for suffix, builder in sorted(set(_BUILDERS.items())):
        chosen = [str(p) for p in files if base_suffix(p) == suffix]
        if not chosen:
            continue
        extra = {"sample_by": spec.get("sample_by", "document")} if builder == "text" else {}
        extra = {"sep": "\t"} if suffix == ".tsv" else extra
        try:
            parts.append(
                datasets.load_dataset(
                    builder, data_files=chosen, split="train", cache_dir=str(cache), **extra
                )
            )
        except Exception as exc:  # pyarrow and json raise many kinds; the message names the file
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise MibeError(f"training data {spec['path']}: cannot read {suffix} files ({first})") from None
    loaded = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    info = {"path": spec["path"], "fingerprint": fingerprint, "files": listed}
    return loaded, {**info, "rows": len(loaded)}


def _need_zstandard(files: list[Path]) -> None:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        zst = next(p for p in files if p.suffix.lower() in (".zst", ".zstd"))
        raise MibeError(
            f"training data {zst}: zstd files need the zstandard package (pip install 'mibe[zstd]')"
        ) from None


def load_text(
    spec: dict[str, Any], cache: Path, exclude: frozenset[str] = frozenset()
) -> tuple[Any, dict[str, Any]]:
    """Rows of one text column named `text`, empty ones dropped (for pre-training); rows whose `id:`
    column holds an id of `exclude` (the recipe's exclusion list) left out and counted."""
    loaded, info = load_rows(spec, cache)
    column, ident = spec.get("text", "text"), spec.get("id")
    where = spec.get("path") or spec.get("hub")
    for name, key in ((column, "text"), (ident, "id")):
        if name is not None and name not in loaded.column_names:
            have = ", ".join(loaded.column_names)
            raise MibeError(f"training data {where}: no column '{name}' (has {have}); set {key}: COLUMN")
    if ident is not None and exclude:
        before = len(loaded)
        loaded = loaded.filter(lambda row: str(row[ident]).strip() not in exclude)
        listed = hashlib.sha256("\n".join(sorted(exclude)).encode()).hexdigest()[:16]
        info = {**info, "excluded_by_id": before - len(loaded), "exclusion_list": listed}
    loaded = loaded.select_columns([column])
    if column != "text":
        loaded = loaded.rename_column(column, "text")
    loaded = loaded.filter(lambda row: isinstance(row["text"], str) and bool(row["text"].strip()))
    return loaded, info
