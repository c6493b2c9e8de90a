"""A task's juries (docs/judges.md): what each was scored under (its `id`), its columns beside the
others a folder holds (never replacing one), and the refusal of a changed jury under the same judge
specs. Items and settings are mibe.runner.judge_run's (`Item`, `Settings`); nothing here loads a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from mibe.runfolder import folder, writer
from mibe.scoring import judge_scoring, jury_stats
from mibe.scoring.judge_scoring import Rubric
from mibe.types import MibeError


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def jury_protocol(rubric: Rubric, records: Sequence[dict[str, Any]], settings: Any) -> dict[str, Any]:
    """What a judge column was scored under; its `id` differs whenever the numbers could (another
    judge, prompt, rubric, order or document limit), so two juries never share a board column."""
    keys = ("backend", "model", "adapter", "config_hash", "chat", "max_new_tokens")
    body = {
        "prompt_version": judge_scoring.JUDGE_PROMPT_VERSION,
        "prompt_hash": judge_scoring.prompt_hash(rubric, settings.order),
        "order": settings.order,
        "limit": settings.limit,
        "judges": sorted(
            ({k: r.get(k) for k in keys} for r in records), key=lambda j: json.dumps(j, default=str)
        ),
    }
    return {
        "id": digest(body),
        **body,
        "specs": [r["spec"] for r in records],
        "seed": settings.seed,
        "bootstrap": settings.n_boot,
        "rubric": rubric.as_dict(),
    }


def _human(item: Any, path: str, means: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    rubric = item.task.judge
    ratings = jury_stats.read_human_ratings(path, rubric)
    ids = {str(r["id"]) for r in item.rows}
    if not any(doc in ids for per in ratings.values() for doc in per):
        return None  # the file rates another task's documents
    return {"file": str(path), "criteria": jury_stats.human_agreement(means, ratings, rubric.scale)}


def check_human_ratings(items: Sequence[Any], settings: Any) -> None:
    """`--human-ratings`: readable against each task's rubric, and rating documents of these tasks; said
    before any judge is built or called (it used to be found after every judge's calls)."""
    if not settings.human_ratings:
        return
    rated = set()
    for item in items:
        ratings = jury_stats.read_human_ratings(settings.human_ratings, item.task.judge)
        ids = {str(r["id"]) for r in item.rows}
        rated |= {doc for per in ratings.values() for doc in per if doc in ids}
    if not rated:
        raise MibeError(
            f"--human-ratings {settings.human_ratings}: no id in it is a document of "
            f"{', '.join(i.name for i in items)}; give the ids of the judged samples"
        )


def juries(protocol: dict[str, Any]) -> list[dict[str, Any]]:
    """The juries a task's protocol records: the first (`jury`), then the later ones (`juries`)."""
    found = [protocol["jury"]] if isinstance(protocol.get("jury"), dict) else []
    later = protocol.get("juries") if isinstance(protocol.get("juries"), dict) else {}
    return found + [j for j in later.values() if isinstance(j, dict)]


def refuse_changed_jury(name: str, protocol: dict[str, Any], jury: dict[str, Any]) -> None:
    """A jury of the same judge specs already in the folder whose judges, prompt, rubric, order or limit
    changed: refused (the folder's numbers were scored by the earlier one), unless --overwrite."""
    for old in juries(protocol):
        if old.get("specs") == jury["specs"] and old.get("id") != jury["id"]:
            changed = writer.first_difference(
                {k: v for k, v in old.items() if k not in ("id", "seed", "bootstrap")},
                {k: v for k, v in jury.items() if k not in ("id", "seed", "bootstrap")},
            )
            raise MibeError(
                f"{name}: the folder holds jury {old.get('id')} of the same judges "
                f"({', '.join(jury['specs'])}), "
                f"scored differently ({changed}); use another --output-dir, or --overwrite to replace it"
            )


def slot(protocol: dict[str, Any], jury_id: str) -> str:
    """The suffix of a jury's columns: '' for the folder's first jury (or that same jury again),
    '@<id>' for another; no jury ever takes another's columns."""
    first = protocol.get("jury")
    if not isinstance(first, dict) or first.get("id") == jury_id:
        return ""
    return judge_scoring.JURY_MARK + jury_id


def judged(
    item: Any, scores: dict[str, dict], records: Sequence[dict[str, Any]], settings: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The task's results entry with this jury's judge_* metrics, and its samples with each judged
    document's jury scores (`judge`: criterion -> mean over the judges whose score parsed); another
    jury's columns stay as they are (`slot`)."""
    rubric, protocol = item.task.judge, item.entry["protocol"]
    jury = jury_protocol(rubric, records, settings)
    refuse_changed_jury(item.name, protocol, jury)
    suffix = slot(protocol, jury["id"])
    key = folder.JUDGED_KEY + suffix
    metrics = jury_stats.jury_scores(scores, rubric, settings.n_boot, settings.seed)
    means = jury_stats.document_means(scores, rubric)
    done = set(next(iter(scores.values()), {}))
    rows = []
    for row in item.rows:
        row = {k: v for k, v in row.items() if k != key}
        if str(row["id"]) in done:
            row[key] = {n: means[n].get(str(row["id"])) for n in rubric.names}
        rows.append(row)
    kept = {
        k: v
        for k, v in item.entry["metrics"].items()
        if not (k.startswith(judge_scoring.METRIC_PREFIX) and judge_scoring.jury_suffix(k) == suffix)
    }
    judging = {
        "judges": [
            {"spec": r["spec"], "self_preference": r["self_preference"], **r["calls"][item.name]}
            for r in records
        ],
        "human": _human(item, settings.human_ratings, means) if settings.human_ratings else None,
    }
    entry = {**item.entry, "metrics": {**kept, **{m + suffix: v for m, v in metrics.items()}}}
    if suffix:
        entry["protocol"] = {**protocol, "juries": {**(protocol.get("juries") or {}), jury["id"]: jury}}
        entry["judgings"] = {**(item.entry.get("judgings") or {}), jury["id"]: judging}
    else:
        entry["protocol"], entry["judging"] = {**protocol, "jury": jury}, judging
    return entry, rows
