"""Pre-training corpora: named domains of text sources, tokenised and packed once into fixed-length
blocks cached on disk, then mixed by ratio (Me-LLaMA: biomedical:clinical:general = 15:1:4) and split
into training and held-out blocks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import socket
from collections.abc import Mapping
from itertools import chain
from pathlib import Path
from typing import Any

from mibe.log import logger
from mibe.training import recipe as recipes
from mibe.training import sources
from mibe.types import MibeError

PACKING_VERSION = 1  # raise when tokenising or packing changes, so old caches are not reused
BALANCES = ("downsample", "upsample")


def load_mix(spec: str | Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A data-mix spec (a YAML file or an inline mapping), validated; its file path or None."""
    where: str | None = None
    folder = Path.cwd()
    if isinstance(spec, str):
        file = Path(spec).expanduser()
        if not file.is_file():
            shipped = recipes.shipped_dir() / "mixes" / f"{spec}.yaml"
            if not shipped.is_file():
                raise MibeError(f"mix {spec}: no such file (nor a shipped mix in {shipped.parent})")
            file = shipped
        file = file.resolve()
        where, folder = str(file), file.parent
        spec = recipes.read_yaml(file, "data-mix spec")
    name = where or "recipe key mix"
    unknown = set(spec) - {"domains", "balance", "description", "target_tokens"}
    if unknown:
        raise MibeError(
            f"{name}: unknown key '{sorted(unknown)[0]}'; use domains, balance, target_tokens, description"
        )
    target = spec.get("target_tokens")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 1):
        raise MibeError(f"{name}: target_tokens: a positive whole number of training tokens, got {target!r}")
    balance = spec.get("balance", "downsample")
    if balance not in BALANCES:
        raise MibeError(f"{name}: balance: one of {', '.join(BALANCES)}, got {balance!r}")
    domains = spec.get("domains")
    if not isinstance(domains, dict) or not domains:
        raise MibeError(f"{name}: domains: a mapping of domain name -> {{ratio, sources}}")
    out = {}
    for domain, body in domains.items():
        if not isinstance(body, dict) or set(body) - {"ratio", "sources"}:
            raise MibeError(f"{name}: domains.{domain}: a mapping with ratio and sources only")
        ratio = body.get("ratio")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0:
            raise MibeError(f"{name}: domains.{domain}.ratio: a positive number, got {ratio!r}")
        listed = body.get("sources")
        if not isinstance(listed, list) or not listed:
            raise MibeError(f"{name}: domains.{domain}.sources: a list of {{path: ...}} or {{hub: ...}}")
        checked = [
            sources.check(s, folder, f"{name}: domains.{domain}.sources[{i}]") for i, s in enumerate(listed)
        ]
        out[str(domain)] = {"ratio": float(ratio), "sources": checked}
    return {"balance": balance, "domains": out, "file": where, "target_tokens": target}, where


def blocks_per_domain(
    available: Mapping[str, int], ratios: Mapping[str, float], balance: str
) -> dict[str, int]:
    """How many packed blocks each domain contributes so that their shares follow the ratios.

    downsample: no block repeats; the scarcest domain (relative to its ratio) sets the total.
    upsample: every block is used; the richest domain sets the total and scarcer ones repeat.
    """
    total_ratio = sum(ratios.values())
    shares = {d: ratios[d] / total_ratio for d in ratios}
    if any(available.get(d, 0) == 0 for d in ratios):
        empty = next(d for d in ratios if available.get(d, 0) == 0)
        raise MibeError(
            f"mix domain {empty}: no text long enough for one block; add sources or lower block_size"
        )
    scale = (min if balance == "downsample" else max)(available[d] / shares[d] for d in ratios)
    counts = {d: max(1, math.floor(scale * shares[d] + 1e-9)) for d in ratios}
    if balance == "downsample":
        counts = {d: min(c, available[d]) for d, c in counts.items()}
    return counts


def target_blocks(target_tokens: int, block_size: int, ratios: Mapping[str, float]) -> dict[str, int]:
    """Training blocks per domain that meet a token target at the ratio's shares (scarce domains repeat)."""
    total = max(1, round(target_tokens / block_size))
    share = sum(ratios.values())
    return {d: max(1, round(total * r / share)) for d, r in ratios.items()}


def without_rows(texts: Mapping[str, tuple[Any, Any]], rows: Mapping[str, set[int]]) -> dict[str, Any]:
    """Each domain's documents less the rows named (the guard's dropped rows, per domain)."""
    out = {}
    for domain, (text, infos) in texts.items():
        gone = rows.get(domain, set())
        kept = text.select([i for i in range(len(text)) if i not in gone]) if gone else text
        # Recorded on the domain's first source, so the packed-block cache key changes with it.
        mark = {
            "dropped_by_guard": len(gone),
            "dropped_rows": hashlib.sha256(str(sorted(gone)).encode()).hexdigest()[:16],
        }
        out[domain] = (kept, [{**infos[0], **mark}, *infos[1:]] if gone else infos)
    return out


def held_out_counts(counts: Mapping[str, int], held_out: float) -> dict[str, int]:
    """Held-out blocks per domain: a fraction of each, or a count shared by ratio (at most a tenth)."""
    total = sum(counts.values())
    if held_out <= 0:
        return dict.fromkeys(counts, 0)
    if held_out < 1:
        wanted = {d: max(1, round(held_out * c)) for d, c in counts.items()}
    else:
        budget = min(int(held_out), max(1, total // 10))
        wanted = {d: max(1, round(budget * c / total)) for d, c in counts.items()}
    for domain, c in counts.items():
        if wanted[domain] >= c:
            raise MibeError(
                f"mix domain {domain}: {c} block(s) cannot give {wanted[domain]} held-out block(s) and still "
                "train; add text, lower block_size or set held_out 0"
            )
    return wanted


def tokenizer_fingerprint(tokenizer: Any) -> str:
    parts = [type(tokenizer).__name__, str(tokenizer.bos_token_id), str(tokenizer.eos_token_id)]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts.append(
        backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    return "sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _tokenise(batch: dict[str, list], tokenizer: Any, bos: int | None, eos: int | None) -> dict[str, list]:
    ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
    head, tail = [bos] if bos is not None else [], [eos] if eos is not None else []
    rows = [head + row + tail for row in ids]
    return {"input_ids": rows, "length": [len(row) for row in rows]}


def _pack(batch: dict[str, list], block_size: int) -> dict[str, list]:
    # Documents are joined end to end (each opens with BOS and closes with EOS) and cut into blocks;
    # the tail of each map batch that does not fill a block is dropped, as run_clm does.
    flat = list(chain.from_iterable(batch["input_ids"]))
    usable = len(flat) // block_size * block_size
    return {"input_ids": [flat[i : i + block_size] for i in range(0, usable, block_size)]}


def load_domains(
    mix: Mapping[str, Any], cache: Path, exclude: frozenset[str] = frozenset()
) -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    """Each domain's documents (one `text` column) and its sources' manifest entries; rows of a
    source with an `id:` column whose id is in `exclude` are left out."""
    import datasets

    out = {}
    for domain, body in mix["domains"].items():
        loaded = [sources.load_text(s, cache / "datasets", exclude) for s in body["sources"]]
        text = datasets.concatenate_datasets([d for d, _ in loaded]) if len(loaded) > 1 else loaded[0][0]
        infos = [
            {**info, "text_column": s.get("text", "text")}
            for (_, info), s in zip(loaded, body["sources"], strict=True)
        ]
        out[domain] = (text, infos)
    return out


def _domain_blocks(
    domain: str,
    text: Any,
    infos: list[dict],
    tokenizer: Any,
    block_size: int,
    cache: Path,
    num_proc: int,
) -> tuple[Any, dict[str, Any]]:
    import datasets

    key_text = json.dumps(
        [[i["fingerprint"], i["text_column"], i.get("dropped_rows"), i.get("exclusion_list")] for i in infos]
        + [tokenizer_fingerprint(tokenizer), block_size, PACKING_VERSION]
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    folder = cache / "blocks" / f"{domain}-{key}"
    manifest = {"sources": infos, "cache": str(folder)}
    if (folder / "mibe_blocks.json").is_file():
        logger.info(f"mibe: {domain}: packed blocks from the cache {folder}")
        blocks = datasets.load_from_disk(str(folder))
        return blocks, {**manifest, **json.loads((folder / "mibe_blocks.json").read_text())}
    logger.info(f"mibe: {domain}: tokenising and packing {len(text)} documents (once; cached in {folder})")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    procs = num_proc if num_proc > 1 else None
    ids = text.map(
        _tokenise, batched=True, remove_columns=text.column_names, num_proc=procs,
        fn_kwargs={"tokenizer": tokenizer, "bos": bos, "eos": eos}, desc=f"tokenising {domain}",
    )  # fmt: skip
    tokens = int(sum(ids["length"]))
    blocks = ids.map(
        _pack, batched=True, batch_size=10_000, num_proc=procs, remove_columns=["length"],
        fn_kwargs={"block_size": block_size}, desc=f"packing {domain}",
    )  # fmt: skip
    stats = {"documents": len(text), "tokens": tokens, "blocks": len(blocks), "block_size": block_size}
    # Several nodes may build one shared cache at once: each writes its own copy, the first rename wins.
    partial = folder.with_name(f"{folder.name}.partial-{socket.gethostname()}-{os.getpid()}")
    blocks.save_to_disk(str(partial))
    (partial / "mibe_blocks.json").write_text(json.dumps(stats, indent=2))
    try:
        partial.rename(folder)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    return datasets.load_from_disk(str(folder)), {**manifest, **stats}


def build(
    recipe: Mapping[str, Any],
    mix: Mapping[str, Any],
    texts: Mapping[str, Any],
    tokenizer: Any,
    cache: Path,
) -> tuple[Any, Any, dict[str, Any]]:
    """Training blocks, held-out blocks (or None) and the data manifest for the provenance file."""
    import datasets

    block_size = recipe["block_size"]
    limit = getattr(tokenizer, "model_max_length", None)
    per_domain, manifest = {}, {}
    for domain in mix["domains"]:
        text, infos = texts[domain]
        per_domain[domain], manifest[domain] = _domain_blocks(
            domain, text, infos, tokenizer, block_size, cache, recipe["num_proc"]
        )
    ratios = {d: body["ratio"] for d, body in mix["domains"].items()}
    counts = blocks_per_domain({d: len(b) for d, b in per_domain.items()}, ratios, mix["balance"])
    target = mix.get("target_tokens")
    if target:  # every block is available; the target and the ratio set how many train
        counts = {d: len(b) for d, b in per_domain.items()}
    held = held_out_counts(counts, recipe["held_out"])
    wanted_train = target_blocks(target, block_size, ratios) if target else None
    rng = random.Random(recipe["seed"])
    train_parts, held_parts = [], []
    for domain, blocks in per_domain.items():
        order = list(range(len(blocks)))
        rng.shuffle(order)
        unique = order[: min(counts[domain], len(blocks))]
        held_parts.append(blocks.select(unique[: held[domain]]))
        pool = unique[held[domain] :]
        wanted = wanted_train[domain] if wanted_train else counts[domain] - held[domain]
        train_parts.append(blocks.select([pool[i % len(pool)] for i in range(wanted)]))
        manifest[domain].update(
            ratio=ratios[domain], train_blocks=wanted, held_out_blocks=held[domain],
            train_tokens=wanted * block_size, repeats=round(wanted / len(pool), 3),
        )  # fmt: skip
    train = datasets.concatenate_datasets(train_parts).shuffle(seed=recipe["seed"]).flatten_indices()
    held_out = datasets.concatenate_datasets(held_parts) if sum(held.values()) else None
    shares = {d: round(manifest[d]["train_blocks"] / len(train), 4) for d in per_domain}
    summary = {
        "mix_file": mix.get("file"),
        "balance": mix["balance"],
        "block_size": block_size,
        "train_blocks": len(train),
        "train_tokens": len(train) * block_size,
        "target_tokens": target,
        "held_out_blocks": 0 if held_out is None else len(held_out),
        "shares": shares,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "domains": manifest,
    }
    if limit and block_size > limit and limit < 10**7:
        logger.warning(
            f"mibe: warning: block_size {block_size} exceeds the tokenizer's model_max_length {limit}"
        )
    return train, held_out, summary
