"""The answer-kind registry: for each kind of answer a task asks for, how its output is parsed, how
one document is scored, which metrics fit it and how they are computed. The one place that knows.

Kinds: `choice` (one label of a closed set), `letter` (an option letter), `multi_label` (every
label that applies), `span` (a text segment copied from the input), `entities` (tagged spans) and
`text` (free generation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mibe.scoring import metrics, parsing, stats
from mibe.types import PARSERS, Prediction, Task

Parse = Callable[[str, tuple[str, ...], bool, str], Prediction]
DocScore = Callable[[Any, Any, str], float]


@dataclass(frozen=True)
class Kind:
    name: str
    metrics: tuple[str, ...]  # the metrics that fit this kind, in the paper's order
    main: str | None  # the metric that is the mean of the samples' per-document `score`, if any
    parse: Parse
    doc_score: DocScore
    stats: Callable[..., metrics.Stats]
    labelled: bool  # predictions are labels of the task's closed set
    single: bool  # one label per document: confusion matrix, per-class table, McNemar
    rule: str  # the parse rule in one line (`mibe tasks show`)


_SINGLE = ("accuracy", "macro_f1", "weighted_f1", "missing_rate")
KINDS: dict[str, Kind] = {
    "choice": Kind(
        "choice", _SINGLE, "accuracy", parsing.parse_label, metrics.label_score, metrics.label_stats,
        labelled=True, single=True,
        rule="strict: the one label named (case-insensitive, whole words; an explicit 'answer is X' or a "
        "label at the start wins), else no answer | paper: first label in list order found as a lower-cased "
        "substring (DDI: case-sensitive, exactly one label)",
    ),
    "letter": Kind(
        "letter", _SINGLE, "accuracy", parsing.parse_letter, metrics.label_score, metrics.label_stats,
        labelled=True, single=True,
        rule="strict: 'answer is (C)', 'Answer: C', 'C.' at the start, else one lone capital letter, else no "
        "answer | paper: first letter in list order found anywhere, case-sensitive",
    ),
    "multi_label": Kind(
        "multi_label", ("macro_f1",), None, parsing.parse_labels, metrics.labels_score,
        metrics.labels_stats, labelled=True, single=False,
        rule="strict: every label named (case-insensitive, whole words) | paper: every label found as a "
        "case-sensitive substring",
    ),
    "span": Kind(
        "span", ("exact_match", "f1"), "f1", parsing.parse_span, metrics.span_score, metrics.span_stats,
        labelled=False, single=False,
        rule="strict: first line, quotes stripped; SQuAD EM/F1 | paper: stripped output; the paper's "
        "character F1",
    ),
    "entities": Kind(
        "entities", ("entity_f1", "entity_precision", "entity_recall"), None, parsing.parse_text,
        metrics.entity_score, metrics.entity_stats, labelled=False, single=False,
        rule="the output as tagged text; <span class=...> entities scored at entity level | paper: the "
        "output unstripped, as the paper's html2bio read it",
    ),
    "text": Kind(
        "text", ("rouge_l", "bertscore_f1"), "rouge_l", parsing.parse_text, metrics.text_score,
        metrics.text_stats, labelled=False, single=False, rule="the stripped output",
    ),
}  # fmt: skip
ANSWER_TYPES = tuple(KINDS)
# Every metric a task file may name, in the paper's order (leaderboard columns follow it).
METRICS = tuple(dict.fromkeys(m for k in KINDS.values() for m in k.metrics))
LOWER_IS_BETTER = frozenset({"missing_rate"})
BINARY = frozenset({"accuracy", "exact_match"})  # right or wrong per document: McNemar applies


def get(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"unknown answer type {name!r}; expected one of {ANSWER_TYPES}")
    return KINDS[name]


def fits(kind: str, metric: str) -> bool:
    return metric in get(kind).metrics


def from_metrics(metric_names: Sequence[str], predictions: Sequence[Any]) -> str:
    """The kind of a task whose task file is gone, read off its metrics (and predictions)."""
    names = set(metric_names)
    for kind in KINDS.values():
        if kind.single and "accuracy" in names:
            return "choice"
        if not kind.labelled and names & set(kind.metrics):
            return kind.name
    return "multi_label" if any(isinstance(p, list | tuple) for p in predictions) else "choice"


PAPER_MATCHES = ("first", "exactly_one")  # how the paper's scripts pick one label (task file key)
# The scorer's version per (kind, parser): raised whenever a rule changes a score, so numbers scored
# before and after never share a leaderboard column. Paper v2: emrQA's F1 over the full character
# counts, i2b2's alignment walk with spaCy's tokenizer, HoC's empty-on-empty not a parse failure.
# Paper v3 / strict v2 of span, entities and text: an output or gold reading "missing" is text, no
# longer an empty answer; paper entities v3 also reads i2b2 outputs unstripped, as the paper did.
SCORER_VERSIONS = {
    ("span", "paper"): 3,
    ("entities", "paper"): 3,
    ("text", "paper"): 2,
    ("multi_label", "paper"): 2,
    ("span", "strict"): 2,
    ("entities", "strict"): 2,
    ("text", "strict"): 2,
}


def scorer_version(kind: str, parser: str) -> int:
    return SCORER_VERSIONS.get((kind, parser), 1)


def parse(
    text: str, kind: str, choices: tuple[str, ...], parser: str, paper_match: str = "first"
) -> Prediction:
    """Read one generated output as a prediction of `kind` over the task's `choices`."""
    if parser not in PARSERS:
        raise ValueError(f"unknown parser {parser!r}; expected one of {PARSERS}")
    # Both parsers start from the stripped output, as the paper's label, letter, DDI and HoC scorers
    # do (.strip() first); its i2b2 scorer does not: html2bio reads the raw output, and whitespace
    # left inside an open element is a spaCy token that its alignment walk pairs with the gold's.
    raw = parser == "paper" and kind == "entities"
    return get(kind).parse(text if raw else text.strip(), choices, parser == "paper", paper_match)


def parse_for(task: Task, text: str, parser: str, gold: Any = None) -> Prediction:
    """A task's output read by `parser`, with the task's own paper rule. Given the gold, an empty
    multi-label answer to an empty gold is no parse failure under the paper's scripts (they compare
    two empty label vectors and move on)."""
    parsed = parse(text, task.answer_type, task.choices, parser, task.paper_match)
    if parsed.failed and parser == "paper" and task.answer_type == "multi_label" and gold == ():
        return Prediction(parsed.value, failed=False)
    return parsed


def doc_score(kind: str, gold: Any, pred: Any, parser: str, failed: bool = False) -> float:
    """The task's main metric on one document, as stored in samples files. A document whose parse
    failed scores 0: no answer is never a full score, even where it equals the gold (HoC's empty
    answer to a document with no hallmark, under the strict parser; under the paper's rule that is
    no parse failure, docs/scoring-rules.md). The task's metrics do not read this score."""
    return 0.0 if failed else get(kind).doc_score(gold, pred, parser)


def score_task(
    kind: str,
    wanted: Sequence[str],
    golds: Sequence[Any],
    preds: Sequence[Any],
    labels: Sequence[str],
    parser: str,
    seed: int,
    n_boot: int = 1000,
    bertscore_model: str = "bert-base-multilingual-cased",
    stats: tuple[Any, Any, Any] | None = None,
    clusters: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The task's metrics, each {"value", "ci95"}, and per-class tables (single-label). `stats`: what
    `get(kind).stats` already gave for these golds and predictions (BERTScore is not computed twice);
    `clusters`: each document's cluster, resampled whole (`mibe.scoring.stats.resample_sums`)."""
    bad = [m for m in wanted if kind not in KINDS or not fits(kind, m)]
    if kind not in KINDS or bad or len(golds) != len(preds):
        raise ValueError(
            f"can't score {bad or wanted} of {kind!r} with {len(golds)} golds and {len(preds)} predictions"
        )
    out: dict[str, Any] = {m: {"value": None, "ci95": None} for m in wanted}
    if len(golds) == 0:
        return {"metrics": out, "per_class": None}
    x, stat_of, unavailable = stats or get(kind).stats(
        golds, preds, labels, parser, wanted=wanted, bertscore_model=bertscore_model
    )
    _fill(out, x, stat_of, unavailable, seed, n_boot, clusters)
    per_class = metrics.per_class(golds, preds, labels) if get(kind).single else None
    return {"metrics": out, "per_class": per_class}


def _fill(
    out: dict[str, Any],
    x: np.ndarray,
    stat_of: dict,
    unavailable: dict[str, str],
    seed: int,
    n_boot: int,
    clusters: Sequence[Any] | None = None,
) -> None:
    for name, why in unavailable.items():
        if name in out:
            out[name]["unavailable"] = why
    total, boot = x.sum(axis=0), stats.resample_sums(x, n_boot, seed, clusters)
    for name, stat in ((k, v) for k, v in stat_of.items() if k in out):  # only those asked for
        ci = np.percentile(stat(boot), [2.5, 97.5]).tolist() if len(boot) else None
        out[name] = {"value": float(stat(total)), "ci95": ci}


ENTITY_COLUMNS = ("true_positives", "predicted", "gold")  # entity_counts' order


def doc_stats(
    kind: str,
    wanted: Sequence[str],
    golds: Sequence[Any],
    preds: Sequence[Any],
    parser: str,
    bertscore_model: str = "bert-base-multilingual-cased",
) -> tuple[list[dict[str, float]], dict[str, str]]:
    """Each document's row of the statistics matrix, by column name, and the metrics unavailable.

    What `--redact-samples` keeps of a span, entity or text document instead of its text: every
    metric of these kinds is a function of the column sums, and each row depends on its document only."""
    if get(kind).labelled:
        raise ValueError(f"{kind}: labelled kinds keep their labels, not statistics")
    x, stat_of, unavailable = get(kind).stats(
        golds, preds, (), parser, wanted=wanted, bertscore_model=bertscore_model
    )
    columns = ENTITY_COLUMNS if kind == "entities" else tuple(stat_of)
    return [dict(zip(columns, map(float, row), strict=True)) for row in x], unavailable


def score_stats(
    kind: str,
    wanted: Sequence[str],
    rows: Sequence[dict[str, float]],
    unavailable: dict[str, str],
    seed: int,
    n_boot: int = 1000,
    clusters: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """`score_task` from the rows `doc_stats` gave (a redacted span, entity or text task)."""
    out: dict[str, Any] = {m: {"value": None, "ci95": None} for m in wanted}
    if not rows:
        return {"metrics": out, "per_class": None}
    x, stat_of = stats_matrix(kind, wanted, rows)
    _fill(out, x, stat_of, unavailable, seed, n_boot, clusters)
    return {"metrics": out, "per_class": None}


def stats_matrix(
    kind: str, wanted: Sequence[str], rows: Sequence[dict[str, float]]
) -> tuple[np.ndarray, dict[str, Any]]:
    """The per-document statistics matrix and each metric of its column sums, from the rows
    `doc_stats` gave (what a redacted span, entity or text task keeps)."""
    n = len(rows)
    if kind == "entities":
        columns: Sequence[str] = ENTITY_COLUMNS
        stat_of = get(kind).stats([], [], (), "strict")[1]  # P/R/F of the summed counts
    else:
        columns = [m for m in wanted if all(m in r for r in rows)]
        stat_of = {m: (lambda s, i=i: s[..., i] / n) for i, m in enumerate(columns)}
    x = np.array([[r[c] for c in columns] for r in rows], dtype=float).reshape(n, len(columns))
    return x, stat_of
