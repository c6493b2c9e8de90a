"""How two runs' documents are paired: the one pairing `mibe compare` and `mibe view` share.

A document is paired with the document of the other run that has the same id (and, in runs of
several shot draws or option orderings, the same draw or ordering), provided both hold the same gold:
a shared id with another gold is different data and is left out (and counted). The paired tests are
compare's (compare.paired_metric); the viewer shows them and lists the paired documents the runs
disagree on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mibe.boards.table import Run, protocol_key
from mibe.runfolder import saved
from mibe.scoring import positions, stats


def gold_of(row: Mapping[str, Any]) -> Any:
    """A row's gold as two runs' golds are compared (the option's own letter under
    --choice-permutations); None for a row that keeps none (redacted samples)."""
    return saved.value(positions.in_own_order(row, "gold")) if "gold" in row else None


def pair_rows(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    key: Callable[[Mapping[str, Any]], Any] = lambda r: r["id"],
) -> tuple[list[tuple[Mapping[str, Any], Mapping[str, Any]]], int]:
    """(row of A, row of B) of each key both runs hold with the same gold, in A's order; and how many
    shared keys had different golds (different data: left out)."""
    by_key = {key(r): r for r in rows_b}
    pairs, mismatched = [], 0
    for ra in rows_a:
        rb = by_key.get(key(ra))
        if rb is None:
            continue
        if gold_of(ra) != gold_of(rb):
            mismatched += 1
            continue
        pairs.append((ra, rb))
    return pairs, mismatched


def drawn(rows: Any) -> bool:
    # A document appears once per draw (or ordering of its options): pairing by id alone would mix them.
    return any("draw" in r or "permutation" in r for r in rows)


def draw_groups(rows: Any) -> dict[Any, list[dict[str, Any]]]:
    """A run's rows by shot draw (`draw`), or by ordering of the options (`permutation`, compared as
    draws are: the value is the mean over orderings), in file order; a run of one is one group."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        key = r.get("draw") if r.get("permutation") is None else ("ordering", r["permutation"])
        groups.setdefault(key, []).append(r)
    return groups


def drawn_docs(groups_a: dict[Any, list], groups_b: dict[Any, list]) -> tuple[list[str], int]:
    """Ids that every draw of both runs scored, each with one gold, in A's first draw's order; and
    how many such ids had different golds (different data: left out)."""
    golds: dict[str, set[Any]] = {}
    present: set[str] | None = None
    for rows in (*groups_a.values(), *groups_b.values()):
        for r in rows:  # under --choice-permutations the gold's letter moves with its option
            golds.setdefault(r["id"], set()).add(saved.value(positions.in_own_order(r, "gold")))
        ids = {r["id"] for r in rows}
        present = ids if present is None else present & ids
    first = next(iter(groups_a.values()), [])
    shared = [r["id"] for r in first if r["id"] in (present or set())]
    same = [i for i in shared if len(golds[i]) == 1]
    return same, len(shared) - len(same)


def cluster_map(*runs_rows: Any) -> dict[str, Any]:
    """Each document's cluster (the short hash its samples row carries), the first run's first; a
    document of a run scored before clusters has none (a cluster of its own)."""
    out: dict[str, Any] = {}
    for rows in runs_rows:
        for r in rows:
            if r.get("cluster") is not None:
                out.setdefault(r["id"], r["cluster"])
    return out


def clusters_for(ids: list[str], clusters: dict[str, Any]) -> list[Any] | None:
    found = [clusters.get(i) for i in ids]
    return found if stats.clustered(found) else None


def draw_pairs(groups_a: dict[Any, list], groups_b: dict[Any, list]) -> list[tuple[Any, Any]]:
    """The draws set side by side for agreement: draw for draw when both runs drew the same seeds,
    else every draw of A against every draw of B (a one-draw run is one group)."""
    if list(groups_a) == list(groups_b):
        return [(d, d) for d in groups_a]
    return [(x, y) for x in groups_a for y in groups_b]


def shared_docs(rows_a: Any, rows_b: Any) -> tuple[list[tuple[Any, Any, Any, Any, Any, str]], int]:
    """(gold, pred A, pred B, raw A, raw B, id) of documents both scored with the same gold, in A's
    order; and how many shared ids had different golds (different data: left out)."""
    pairs, mismatched = pair_rows(rows_a, rows_b)
    out = [
        (
            saved.value(a["gold"]),
            saved.value(a["prediction"]),
            saved.value(b["prediction"]),
            a.get("raw_output"),
            b.get("raw_output"),
            a["id"],
        )
        for a, b in pairs
    ]
    return out, mismatched


def drawn_agreement(groups: tuple[dict, dict], ids: list[str]) -> tuple[float, float]:
    """How often the two runs predicted (and wrote) the same thing, over the paired draws."""
    same = written = total = 0
    for da, db in draw_pairs(*groups):
        a = {r["id"]: r for r in groups[0][da]}
        b = {r["id"]: r for r in groups[1][db]}
        for i in ids:
            own = [saved.value(positions.in_own_order(x[i], "prediction")) for x in (a, b)]
            same += own[0] == own[1]
            written += a[i].get("raw_output") == b[i].get("raw_output")
            total += 1
    return same / total, written / total


def same_data(run_a: Run, run_b: Run, task: str) -> bool:
    """Whether both runs read the same documents of a task (its data fingerprint): documents can be
    matched by id where predictions are unknown (redacted samples, jury scores)."""
    keys = [dict(protocol_key(task, r.results["tasks"][task]["protocol"]))["data"] for r in (run_a, run_b)]
    return keys[0] == keys[1]


def shared_of(run_a: Run, run_b: Run, task: str, rows_a: Any, rows_b: Any) -> dict[str, Any]:
    """The documents both runs scored, and how alike the runs answered them (None when redacted)."""
    if drawn(rows_a) or drawn(rows_b):  # a document once per draw: ids counted once
        groups = draw_groups(rows_a), draw_groups(rows_b)
        ids, mismatched = drawn_docs(*groups)
        alike = drawn_agreement(groups, ids) if ids and not saved.redacted(rows_a + rows_b) else None
        counts = [len({r["id"] for r in rows}) for rows in (rows_a, rows_b)]
        named = [
            [f"ordering {d[1]}" if isinstance(d, tuple) else d for d in g if d is not None] for g in groups
        ]
        draws = {"a": named[0], "b": named[1]}
        return {"n": len(ids), "mismatched": mismatched, "alike": alike, "counts": counts, "draws": draws,
                "ids": ids}  # fmt: skip
    hidden = saved.redacted(rows_a) or saved.redacted(rows_b)
    if hidden:  # redacted: documents matched by id on their scores, predictions unknown
        ids = {r["id"] for r in rows_b} if same_data(run_a, run_b, task) else set()
        docs, mismatched = [r for r in rows_a if r["id"] in ids], 0
    else:
        docs, mismatched = shared_docs(rows_a, rows_b)
    alike = None
    if docs and not hidden:
        alike = (sum(d[1] == d[2] for d in docs) / len(docs), sum(d[3] == d[4] for d in docs) / len(docs))
    counts = [len(rows_a), len(rows_b)]
    ids = [d[5] if isinstance(d, tuple) else d["id"] for d in docs]
    return {"n": len(docs), "mismatched": mismatched, "alike": alike, "counts": counts, "draws": None,
            "ids": ids}  # fmt: skip
