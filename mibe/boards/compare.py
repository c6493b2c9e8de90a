"""`mibe compare RUN_A RUN_B`: per task and metric, A - B over the documents both runs scored, with a
paired-bootstrap 95% interval and p-value, McNemar's exact test for per-document right/wrong metrics,
and how often the two runs predicted the same thing. Aggregates only: no sample text leaves here."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe.boards.pairing import (
    cluster_map,
    clusters_for,
    draw_groups,
    drawn,
    drawn_docs,
    same_data,
    shared_docs,
    shared_of,
)
from mibe.boards.table import KEY_FIELDS, Run, is_judge, load_run, protocol_key, run_label
from mibe.runfolder import folder as folder_keys
from mibe.runfolder import saved
from mibe.scoring import judge_scoring, kinds, multiplicity, stats

ALPHA = 0.05
N_BOOT, SEED = 1000, 1234  # the defaults of `mibe compare` and the tests `mibe view` shows
EXCLUDED = frozenset({"missing_rate"})  # left out of the Holm family


@dataclass(frozen=True)
class Outcome:
    paired: stats.Paired | None
    mcnemar: stats.McNemar | None
    reason: str | None  # why the difference can't be tested, when it can't

    def decisive(self) -> tuple[float | None, str, str | None]:
        """(p, test, why not) of the test a verdict rests on: exact McNemar where it applies."""
        if self.reason:
            return None, "", self.reason
        if self.mcnemar is not None:
            m = self.mcnemar
            if m.n_clusters is not None and m.n_clusters < stats.MIN_BOOTSTRAP_N:
                why = f"{m.n_clusters} clusters (a clustered test needs {stats.MIN_BOOTSTRAP_N})"
                return None, m.test, why
            return m.p, m.test, None
        assert self.paired is not None
        test = "paired bootstrap" + (" of clusters" if self.paired.n_clusters is not None else "")
        if self.paired.units < stats.MIN_BOOTSTRAP_N:
            what = "shared documents" if self.paired.n_clusters is None else "clusters"
            why = f"{self.paired.units} {what} (a bootstrap test needs {stats.MIN_BOOTSTRAP_N})"
            return None, test, why
        return self.paired.p, test, None


DRAWN_SCORES = "few-shot draws (--fewshot-seeds) with redacted samples or jury scores are not paired"


def _drawn_side(
    run: Run, task: str, kind: str, metric: str, groups: dict[Any, list], ids: list[str], labels: Any
) -> tuple[Any, Any] | None:
    """One run's statistics over its draws: the draws' matrices side by side, and the metric as the
    mean over draws of each draw's metric (what results.json reports for a run of several draws)."""
    import numpy as np

    parser = _parser(run, task)
    built = []
    for rows in groups.values():
        by_id = {r["id"]: r for r in rows}
        golds = [saved.value(by_id[i]["gold"]) for i in ids]
        preds = [saved.value(by_id[i]["prediction"]) for i in ids]
        one = _matrix(kind, metric, golds, preds, labels, parser)
        if one is None:
            return None
        built.append(one)
    edges = np.cumsum([0] + [x.shape[1] for x, _ in built])
    parts = [(stat, lo, hi) for (_, stat), lo, hi in zip(built, edges[:-1], edges[1:], strict=True)]

    def mean_over_draws(s: Any) -> Any:
        return np.mean([stat(s[..., lo:hi]) for stat, lo, hi in parts], axis=0)

    return np.hstack([x for x, _ in built]), mean_over_draws


def _drawn_metric(
    run_a: Run, run_b: Run, task: str, metric: str, rows: Any, n_boot: int, seed: int
) -> Outcome:
    """A run of several shot draws against another run: documents resampled once for every draw of
    both, each side's value the mean over its draws; no McNemar (a document is no longer one
    right/wrong answer)."""
    if is_judge(metric) or saved.redacted(rows[0]) or saved.redacted(rows[1]):
        return Outcome(None, None, DRAWN_SCORES)
    groups = draw_groups(rows[0]), draw_groups(rows[1])
    ids, _ = drawn_docs(*groups)
    if not ids:
        return Outcome(None, None, "no document scored by both runs in every draw")
    kind = saved.kind(run_a, task)
    labels: tuple[str, ...] = ()
    if kind == "multi_label":
        every = [r for g in groups for rs in g.values() for r in rs]
        seen = {
            x for r in every for k in ("gold", "prediction") for x in saved.value(r[k]) or () if x is not None
        }
        labels = task_labels(task, run_a, seen)
    sides = [
        _drawn_side(run, task, kind, metric, g, ids, labels)
        for run, g in zip((run_a, run_b), groups, strict=True)
    ]
    if sides[0] is None or sides[1] is None:
        return Outcome(None, None, f"{metric} has no per-document statistics in the samples")
    (x_a, stat_a), (x_b, stat_b) = sides
    clusters = clusters_for(ids, cluster_map(*rows))
    paired = stats.paired_bootstrap(x_a, x_b, stat_a, n_boot, task_seed(seed, task), stat_b, clusters)
    return Outcome(paired, None, None)


def task_labels(task: str, run: Run, seen: Any) -> tuple[str, ...]:
    """A multi-label task's label set (sklearn's macro average counts labels never seen as 0)."""
    loaded = saved.task_file(task, run.results["tasks"][task], warn=False)
    return loaded.choices if loaded is not None else tuple(sorted(seen))  # else the labels the samples show


def _matrix(kind: str, metric: str, golds: list, preds: list, labels: tuple[str, ...], parser: str) -> Any:
    import numpy as np

    from mibe.scoring import metrics

    if kind == "text":
        if metric != "rouge_l":
            return None  # per-document BERTScore is not kept in the samples
        x = np.array([[metrics.rouge_l(g, p)] for g, p in zip(golds, preds, strict=True)]).reshape(-1, 1)
        n = len(golds)
        return x, lambda s: s[..., 0] / n
    x, stat, _ = kinds.get(kind).stats(golds, preds, labels, parser, wanted=(metric,))
    return (x, stat[metric]) if metric in stat else None


def _correct(kind: str, metric: str, golds: list, preds: list, parser: str) -> list[bool]:
    from mibe.scoring import metrics

    if metric == "exact_match":
        return [metrics.span_scores(g, p, parser)[0] == 1.0 for g, p in zip(golds, preds, strict=True)]
    return [g == p for g, p in zip(golds, preds, strict=True)]


def task_seed(seed: int, task: str) -> int:
    # Every metric of one task resamples the same documents; different tasks draw independently.
    return seed + zlib.crc32(task.encode()) % 1_000_003


def _scores_only(
    run_a: Run, run_b: Run, task: str, metric: str, rows: Any, n_boot: int, seed: int
) -> Outcome:
    """Redacted samples: the per-document `score` (the task's main metric) is all there is to pair."""
    main = kinds.get(saved.kind(run_a, task)).main
    if main != metric:
        gives = main or "no metric"
        return Outcome(None, None, f"samples redacted (--redact-samples): their scores give {gives} only")
    if not same_data(run_a, run_b, task):
        return Outcome(
            None, None, "samples redacted and the runs read different data: documents can't be matched"
        )
    by_id = {r["id"]: r["score"] for r in rows[1]}
    ids = [r["id"] for r in rows[0] if r["id"] in by_id]
    if not ids:
        return Outcome(None, None, "no documents scored by both")
    mine = {r["id"]: r["score"] for r in rows[0]}
    a, b = [float(mine[i]) for i in ids], [float(by_id[i]) for i in ids]
    clusters = clusters_for(ids, cluster_map(*rows))
    paired = stats.paired_means(a, b, n_boot, task_seed(seed, task), clusters)
    right = [x == 1 for x in a], [y == 1 for y in b]
    return Outcome(paired, _right_wrong(metric, *right, clusters), None)


def _right_wrong(
    metric: str, a: list[bool], b: list[bool], clusters: list[Any] | None
) -> stats.McNemar | None:
    """McNemar's exact test on documents; Durkalski's clustered test where documents share clusters."""
    if metric not in kinds.BINARY:
        return None
    return stats.mcnemar_exact(a, b) if clusters is None else stats.mcnemar_clustered(a, b, clusters)


def _jury_pairs(run_a: Run, run_b: Run, task: str, metric: str, rows: Any, n_boot: int, seed: int) -> Outcome:
    """A judge column: the per-document jury scores the samples keep (also when redacted), paired
    over the documents both juries scored; only when both runs were judged by the same jury."""
    juries = [
        judge_scoring.jury_of(r.results["tasks"][task]["protocol"], metric) or {} for r in (run_a, run_b)
    ]
    ids = [j.get("id") for j in juries]
    if ids[0] != ids[1]:
        return Outcome(
            None, None, f"different juries ({ids[0]} vs {ids[1]}): their scores are not comparable"
        )
    if not same_data(run_a, run_b, task):
        return Outcome(None, None, "the runs read different data: documents can't be matched")
    name, key = judge_scoring.criterion_of(metric), folder_keys.JUDGED_KEY + judge_scoring.jury_suffix(metric)

    def score(row: dict[str, Any]) -> Any:
        return (row.get(key) or {}).get(name)

    by_id = {r["id"]: score(r) for r in rows[1]}
    pairs = [(score(r), by_id.get(r["id"]), r["id"]) for r in rows[0]]
    pairs = [(float(x), float(y), i) for x, y, i in pairs if x is not None and y is not None]
    if not pairs:
        return Outcome(None, None, "no document has a jury score in both runs")
    a, b = [x for x, _, _ in pairs], [y for _, y, _ in pairs]
    clusters = clusters_for([i for _, _, i in pairs], cluster_map(*rows))
    return Outcome(stats.paired_means(a, b, n_boot, task_seed(seed, task), clusters), None, None)


def paired_metric(run_a: Run, run_b: Run, task: str, metric: str, n_boot: int, seed: int) -> Outcome:
    rows_a, rows_b = saved.rows(run_a, task), saved.rows(run_b, task)
    for run, rows in ((run_a, rows_a), (run_b, rows_b)):
        if rows is None:
            return Outcome(None, None, f"no samples/{task}.jsonl in {run.path}")
    if drawn(rows_a) or drawn(rows_b):
        return _drawn_metric(run_a, run_b, task, metric, (rows_a, rows_b), n_boot, seed)
    if is_judge(metric):
        return _jury_pairs(run_a, run_b, task, metric, (rows_a, rows_b), n_boot, seed)
    if saved.redacted(rows_a) or saved.redacted(rows_b):
        return _scores_only(run_a, run_b, task, metric, (rows_a, rows_b), n_boot, seed)
    docs, _ = shared_docs(rows_a, rows_b)
    if not docs:
        return Outcome(None, None, "no documents scored by both")
    golds, preds_a, preds_b = [d[0] for d in docs], [d[1] for d in docs], [d[2] for d in docs]
    kind = saved.kind(run_a, task)
    # Each run's statistics under its own parser, so A and B are the numbers each run reports.
    parser_a, parser_b = _parser(run_a, task), _parser(run_b, task)
    labels: tuple[str, ...] = ()
    if kind == "multi_label":
        seen = {x for v in golds + preds_a + preds_b for x in v or () if x is not None}
        labels = task_labels(task, run_a, seen)
    sides = ((preds_a, parser_a), (preds_b, parser_b))
    built = [_matrix(kind, metric, golds, p, labels, pr) for p, pr in sides]
    if built[0] is None or built[1] is None:
        return Outcome(None, None, f"{metric} has no per-document statistics in the samples")
    (x_a, stat), (x_b, _) = built
    clusters = clusters_for([d[5] for d in docs], cluster_map(rows_a, rows_b))
    paired = stats.paired_bootstrap(x_a, x_b, stat, n_boot, task_seed(seed, task), clusters=clusters)
    right = [_correct(kind, metric, golds, p, pr) for p, pr in sides] if metric in kinds.BINARY else [[], []]
    return Outcome(paired, _right_wrong(metric, right[0], right[1], clusters), None)


def _parser(run: Run, task: str) -> str:
    parser = run.results["tasks"][task]["protocol"].get("parser")
    return parser if parser in ("paper", "strict") else "strict"  # log-likelihood: exact labels


def differences(a: dict[str, Any], b: dict[str, Any], task: str) -> list[str]:
    ka, kb = dict(protocol_key(task, a)), dict(protocol_key(task, b))
    return [f"{k}: {ka[k]} vs {kb[k]}" for k in KEY_FIELDS if ka[k] != kb[k]]


def compare(dir_a: str | Path, dir_b: str | Path, n_boot: int = N_BOOT, seed: int = SEED) -> dict[str, Any]:
    """The comparison as plain data (what every format renders)."""
    return compare_runs(load_run(dir_a, "compare"), load_run(dir_b, "compare"), n_boot, seed)


def compare_runs(run_a: Run, run_b: Run, n_boot: int = N_BOOT, seed: int = SEED) -> dict[str, Any]:
    """Two run folders as read, compared: every shared task and metric, Holm-adjusted over them all."""
    tasks_a, tasks_b = run_a.results["tasks"], run_b.results["tasks"]
    report: dict[str, Any] = {
        "a": {"label": run_label(run_a), "run": str(run_a.path)},
        "b": {"label": run_label(run_b), "run": str(run_b.path)},
        "bootstrap": n_boot,
        "seed": seed,
        "alpha": ALPHA,
        "tasks": [],
        "skipped": {},
    }
    for task in [t for t in tasks_a if t not in tasks_b]:
        report["skipped"][task] = f"only in A ({run_a.path})"
    for task in [t for t in tasks_b if t not in tasks_a]:
        report["skipped"][task] = f"only in B ({run_b.path})"
    for task in (t for t in tasks_a if t in tasks_b):
        entry = _task_entry(run_a, run_b, task, n_boot, seed)
        if isinstance(entry, str):
            report["skipped"][task] = entry
        else:
            report["tasks"].append(entry)
    adjust(report)
    return report


def _task_entry(run_a: Run, run_b: Run, task: str, n_boot: int, seed: int) -> dict[str, Any] | str:
    """One task's comparison, or why it is skipped."""
    task_a, task_b = run_a.results["tasks"][task], run_b.results["tasks"][task]
    rows_a, rows_b = saved.rows(run_a, task), saved.rows(run_b, task)
    if rows_a is None or rows_b is None:
        return "no samples file in " + (str(run_a.path) if rows_a is None else str(run_b.path))
    shared = shared_of(run_a, run_b, task, list(rows_a), list(rows_b))
    if not shared["n"]:
        return f"no document scored by both ({shared['mismatched']} shared ids with other golds)"
    alike = shared["alike"]
    entry: dict[str, Any] = {
        "task": task,
        "n_a": shared["counts"][0],
        "n_b": shared["counts"][1],
        "n_shared": shared["n"],
        "gold_mismatch": shared["mismatched"],
        # Each run's own count over all its documents, as its results.json and summary say.
        "parse_failures": {"a": task_a.get("parse_failures"), "b": task_b.get("parse_failures")},
        # None: documents resampled one by one (no clusters, or runs scored before them)
        "n_clusters": _cluster_count(shared["ids"], rows_a, rows_b),
        "redacted": saved.redacted(rows_a) or saved.redacted(rows_b),
        "invented": bool(task_a.get("invented") or task_b.get("invented")),
        "protocol_differences": differences(task_a["protocol"], task_b["protocol"], task),
        "agreement": alike[0] if alike else None,
        "output_agreement": alike[1] if alike else None,
        "metrics": [],
    }
    if shared["draws"] is not None:
        entry["draws"] = shared["draws"]
    for metric in (m for m in task_a["metrics"] if m in task_b["metrics"]):
        metric_entry = _metric_entry(paired_metric(run_a, run_b, task, metric, n_boot, seed), metric)
        metric_entry["recomputed"] = _recomputed(metric_entry, task_a, task_b, shared["n"])
        entry["metrics"].append(metric_entry)
    return entry


def _cluster_count(ids: list[str], rows_a: Any, rows_b: Any) -> int | None:
    clusters = clusters_for(ids, cluster_map(rows_a, rows_b))
    return None if clusters is None else stats.n_clusters(clusters, len(ids))


def adjust(report: dict[str, Any]) -> None:
    """Holm over the comparison's family: every task x metric test that ran, except missing rates
    (a diagnostic of the answer format, not a claim about ability). `significant` follows the
    adjusted p; a missing rate keeps its raw p's verdict and no adjusted p."""
    family = {
        (t, k): m["p"]
        for t, task in enumerate(report["tasks"])
        for k, m in enumerate(task["metrics"])
        if m["metric"] not in EXCLUDED and m["p"] is not None
    }
    adjusted = multiplicity.holm_by_key(family)
    for t, task in enumerate(report["tasks"]):
        for k, m in enumerate(task["metrics"]):
            m["p_holm"] = adjusted.get((t, k))
            if m["p_holm"] is not None:
                m["significant"] = m["p_holm"] < ALPHA
    report["family"] = {"method": "holm", "size": len(family), "excludes": sorted(EXCLUDED)}


def _recomputed(entry: dict[str, Any], task_a: dict[str, Any], task_b: dict[str, Any], n: int) -> str | None:
    """Say so when a value differs from the run's results.json: compare scores shared documents only."""
    diffs = []
    for side, task_entry in (("a", task_a), ("b", task_b)):
        reported = (task_entry["metrics"].get(entry["metric"]) or {}).get("value")
        mine = entry.get(side)
        if mine is not None and reported is not None and abs(mine - reported) > 1e-9:
            diffs.append(f"{side.upper()} {mine:.4f} (results.json {reported:.4f})")
    if not diffs:
        return None
    return f"recomputed on the {n} documents both runs scored: " + ", ".join(diffs)


def _metric_entry(outcome: Outcome, metric: str) -> dict[str, Any]:
    p, test, why = outcome.decisive()
    out: dict[str, Any] = {"metric": metric, "a": None, "b": None, "diff": None, "ci95": None}
    if outcome.paired is not None:
        pb = outcome.paired
        out.update(a=pb.a, b=pb.b, diff=pb.diff, ci95=list(pb.ci95), p_bootstrap=pb.p)
    if outcome.paired is not None and outcome.paired.n_clusters is not None:
        out["n_clusters"] = outcome.paired.n_clusters
    if outcome.mcnemar is not None:
        m = outcome.mcnemar
        out["mcnemar"] = {"a_only": m.a_only, "b_only": m.b_only, "p": m.p, "test": m.test}
    out["p"] = p  # the deciding test's raw p; `adjust` adds the Holm-adjusted one
    out["significant"] = None if p is None else p < ALPHA
    out["test"] = test or None
    out["note"] = why
    return out
