"""MIBE's scores: per-document scores for samples files, and task metrics with seeded bootstrap 95% intervals.

Every task metric is a function of column sums of a per-document statistics matrix, so the bootstrap is one
matrix product per chunk of resamples instead of a scorer call per resample.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any

import numpy as np

from mibe.types import MISSING

METRICS = {
    "choice": ("accuracy", "macro_f1", "weighted_f1", "missing_rate"),
    "letter": ("accuracy", "macro_f1", "weighted_f1", "missing_rate"),
    "multi_label": ("macro_f1",),
    "span": ("exact_match", "f1"),
    "entities": ("entity_f1", "entity_precision", "entity_recall"),
    "text": ("rouge_l", "bertscore_f1"),
}
ENTITY_CLASSES = frozenset(
    {"problem", "treatment", "test", "drug"}
)  # "drug": the paper's scorer accepts it too
# The paper tokenised tagged text with spaCy en_core_web_lg, which PyPI does not carry; this regex agrees with it
# on words and punctuation but splits numbers like "2.5" and abbreviations like "Dr." that spaCy keeps whole.
_TAG_TOKEN = re.compile(r"\w+|[^\w\s]")
_ALIGN_SLACK = 3  # extra prediction tokens searched beyond the length difference when aligning to the gold
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "wbr",
    }
)
_PUNCT = frozenset(string.punctuation)
_BOOT_CELLS = 4_000_000  # resample-by-document cells drawn at once: bounds memory whatever the task size

Stat = Callable[[np.ndarray], np.ndarray]  # column sums (..., d) -> metric (...)


def _text(value: Any) -> str:
    # A failed parse of free text scores as an empty answer, never as the word "missing".
    return "" if value == MISSING or value is None else str(value)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # sklearn's and seqeval's zero_division="warn" both yield 0 for a 0/0 ratio.
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(
        num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0
    )


# --- span (emrQA) ---------------------------------------------------------------------------------------------


def _squad_tokens(text: str) -> list[str]:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def _paper_tokens(text: str) -> list[str]:
    # The paper joins the surviving characters with spaces, so every "token" is one character.
    return " ".join(ch for ch in text.lower() if ch not in _PUNCT).split()


def _overlap_f1(common: int, n_pred: int, n_gold: int) -> float:
    if n_pred == 0 or n_gold == 0:
        return float(
            n_pred == n_gold
        )  # SQuAD v2's rule; v1.1 scored two empty answers 0 in F1 but 1 in EM
    if common == 0:
        return 0.0
    precision, recall = common / n_pred, common / n_gold
    return 2 * precision * recall / (precision + recall)


def span_scores(gold: Any, pred: Any, parser: str) -> tuple[float, float]:
    """(exact_match, f1) of one answer, best over the gold alternatives when gold is a tuple."""
    golds = gold if isinstance(gold, tuple) else (gold,)
    best_em = best_f1 = 0.0
    for g in golds:
        if parser == "paper":
            pt, gt = _paper_tokens(_text(pred)), _paper_tokens(_text(g))
            em = float(pt == gt)
            ps, gs = set(pt), set(gt)
            f1 = _overlap_f1(len(ps & gs), len(ps), len(gs))
        else:
            pt, gt = _squad_tokens(_text(pred)), _squad_tokens(_text(g))
            em = float(pt == gt)
            f1 = _overlap_f1(
                sum((Counter(pt) & Counter(gt)).values()), len(pt), len(gt)
            )
        best_em, best_f1 = max(best_em, em), max(best_f1, f1)
    return best_em, best_f1


# --- entities (2010 i2b2) -------------------------------------------------------------------------------------


class _TopLevel(HTMLParser):
    """Top-level nodes as BeautifulSoup's html.parser tree gives them: (class of the element or None, text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[tuple[str | None, str]] = []
        self._open: list[str] = []
        self._cls: str | None = None
        self._buf: list[str] = []

    def _flush(self) -> None:
        if self._open or self._buf:
            self.nodes.append((self._cls if self._open else None, "".join(self._buf)))
        self._buf, self._cls = [], None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._open:
            if tag not in _VOID:
                self._open.append(tag)
            return
        self._flush()  # text before an element is its own node, even before an empty <br>
        if tag not in _VOID:
            classes = next((v or "" for k, v in attrs if k == "class"), "").split()
            self._cls, self._open = (classes[0] if classes else ""), [tag]

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:  # a stray end tag is dropped, as BeautifulSoup does
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]
            if not self._open:
                self.nodes.append((self._cls, "".join(self._buf)))
                self._buf, self._cls = [], None

    def handle_data(self, data: str) -> None:
        self._buf.append(data)

    def handle_comment(self, data: str) -> None:
        if not self._open:
            self._flush()


def tag_tokens(html: str) -> tuple[list[str], list[str]]:
    """Tokens of a tagged sentence and their BIO tags; malformed markup or plain text never raises."""
    parser = _TopLevel()
    try:
        parser.feed(html)
        parser.close()
        parser._flush()  # an element left open runs to the end, as in BeautifulSoup
    except Exception:  # noqa: BLE001 - any markup the parser chokes on scores as untagged words
        return html.split(), ["O"] * len(html.split())
    tokens: list[str] = []
    tags: list[str] = []
    for cls, text in parser.nodes:
        if cls is None:
            words = text.split()
            tags += ["O"] * len(words)
        else:
            words = _TAG_TOKEN.findall(text)
            if cls in ENTITY_CLASSES:
                tags += [f"{'B' if i == 0 else 'I'}-{cls}" for i in range(len(words))]
            else:
                tags += ["O"] * len(words)
        tokens += words
    return tokens, tags


def align_tags(
    gold_tokens: Sequence[str], pred_tokens: Sequence[str], pred_tags: Sequence[str]
) -> list[str]:
    """The predicted tag of each gold token: greedy forward match by token text, O when unmatched."""
    window = abs(len(pred_tokens) - len(gold_tokens)) + _ALIGN_SLACK
    out, j = [], 0
    for token in gold_tokens:
        for k in range(j, min(j + window + 1, len(pred_tokens))):
            if pred_tokens[k] == token:
                out.append(pred_tags[k])
                j = k + 1
                break
        else:
            out.append(
                "O"
            )  # the pointer stays, so a dropped or changed word costs only itself
    return out


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Chunks as seqeval's default (conlleval-style) get_entities reads BIO tags, stray I- included."""
    chunks, prev_tag, prev_type, begin = set(), "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag, type_ = chunk[0], chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if (prev_tag in ("B", "I") and tag in ("B", "O")) or (
            prev_tag != "O" and prev_type != type_
        ):
            chunks.add((prev_type, begin, i - 1))
        if (
            tag == "B"
            or (prev_tag == "O" and tag == "I")
            or (tag != "O" and prev_type != type_)
        ):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def entity_counts(gold: Any, pred: Any) -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of one tagged sentence."""
    gold_tokens, gold_tags = tag_tokens(_text(gold))
    pred_tags = align_tags(gold_tokens, *tag_tokens(_text(pred)))
    true, found = entities(gold_tags), entities(pred_tags)
    return len(true & found), len(found), len(true)


def _prf(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # seqeval's micro average: F from P and R, with 0 when P + R == 0.
    p, r = _div(s[..., 0], s[..., 1]), _div(s[..., 0], s[..., 2])
    return p, r, _div(2 * p * r, p + r)


# --- text -----------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(gold: Any, pred: Any) -> float:
    return float(_rouge().score(_text(gold), _text(pred))["rougeL"].fmeasure)


def _bertscore(
    golds: Sequence[Any], preds: Sequence[Any], model: str
) -> np.ndarray | str:
    """Per-document BERTScore F1, or a one-line reason the model can't be used."""
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(
            model
        )  # fails fast offline before bert_score starts loading weights
        import bert_score
        from bert_score.utils import model2layers

        layers = model2layers.get(model) or config.num_hidden_layers
        cands, refs = [_text(p) for p in preds], [_text(g) for g in golds]
        _, _, f1 = bert_score.score(
            cands, refs, model_type=model, num_layers=layers, verbose=False
        )
    except Exception as exc:  # noqa: BLE001 - an unusable scorer model is reported, never fatal
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"BERTScore model {model!r} unavailable: {type(exc).__name__}: {detail}"
    return f1.detach().cpu().numpy().astype(float)


# --- per document ---------------------------------------------------------------------------------------------


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return () if value == MISSING else (value,)
    return tuple(v for v in value if v != MISSING)


def doc_score(answer_type: str, gold: Any, pred: Any, parser: str) -> float:
    """The task's main metric on one document, as stored in samples files."""
    if answer_type in ("choice", "letter"):
        return float(pred == gold)
    if answer_type == "multi_label":
        return float(set(_names(gold)) == set(_names(pred)))
    if answer_type == "span":
        return span_scores(gold, pred, parser)[1]
    if answer_type == "entities":
        tp, n_pred, n_gold = entity_counts(gold, pred)
        return (
            1.0
            if n_pred == n_gold == 0
            else float(_prf(np.array([tp, n_pred, n_gold]))[2])
        )
    if answer_type == "text":
        return rouge_l(gold, pred)
    raise ValueError(f"unknown answer type {answer_type!r}")


# --- per task -------------------------------------------------------------------------------------------------


def bootstrap_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Resamples of document indices, with replacement, in chunks of rows: the same for every metric of a task."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CELLS // max(n, 1))
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def _boot_sums(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    n, sums = x.shape[0], [np.empty((0, x.shape[1]))]
    for idx in bootstrap_indices(n, n_boot, seed):
        rows = len(idx)
        flat = (idx + n * np.arange(rows)[:, None]).ravel()
        sums.append(
            np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(float) @ x
        )
    return np.concatenate(sums)


def _single_label(
    golds: Sequence[str], preds: Sequence[str]
) -> tuple[np.ndarray, dict[str, Stat]]:
    classes = sorted(set(golds))  # the paper's label set: the gold labels present
    k, n = len(classes), len(golds)
    code = {c: i for i, c in enumerate(classes)}
    g = np.array([code[x] for x in golds])
    p = np.array([code.get(x, -1) for x in preds])
    correct = np.array([x == y for x, y in zip(golds, preds)], dtype=float)
    true, pred = np.zeros((n, k)), np.zeros((n, k))
    true[np.arange(n), g] = 1
    pred[np.flatnonzero(p >= 0), p[p >= 0]] = 1
    missing = np.array([x == MISSING for x in preds], dtype=float)
    x = np.column_stack([correct, missing, true, pred, true * correct[:, None]])

    def macro(s: np.ndarray) -> np.ndarray:
        t, pr, tp = s[..., 2 : 2 + k], s[..., 2 + k : 2 + 2 * k], s[..., 2 + 2 * k :]
        # A class absent from a resample's golds has t == 0, so tp == 0 and it adds 0 to the sum.
        return _div(2 * tp, t + pr).sum(-1) / (t > 0).sum(-1)

    def weighted(s: np.ndarray) -> np.ndarray:
        t, pr, tp = s[..., 2 : 2 + k], s[..., 2 + k : 2 + 2 * k], s[..., 2 + 2 * k :]
        return (_div(2 * tp, t + pr) * t).sum(-1) / t.sum(-1)

    return x, {
        "accuracy": lambda s: s[..., 0] / n,
        "missing_rate": lambda s: s[..., 1] / n,
        "macro_f1": macro,
        "weighted_f1": weighted,
    }


def _per_class(
    golds: Sequence[str], preds: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    extra = sorted(
        (set(golds) | set(preds)) - set(labels) - {MISSING}
    )  # never drop a label the data holds
    names = [*labels, *extra]
    pairs = Counter(zip(golds, preds))
    tp = {c: pairs[c, c] for c in names}
    support, predicted = Counter(golds), Counter(preds)
    precision = {c: float(_div(tp[c], predicted[c])) for c in names}
    recall = {c: float(_div(tp[c], support[c])) for c in names}
    f1 = {c: float(_div(2 * tp[c], support[c] + predicted[c])) for c in names}
    axis = [*names, MISSING]
    matrix = [[pairs[r, c] for c in axis] for r in axis]
    return {
        "labels": names,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": {c: support[c] for c in names},
        "confusion": {"labels": axis, "matrix": matrix},
    }


def _stats(
    answer_type: str,
    wanted: Sequence[str],
    golds: Sequence[Any],
    preds: Sequence[Any],
    labels: Sequence[str],
    parser: str,
) -> tuple[np.ndarray, dict[str, Stat]]:
    n = len(golds)
    if answer_type in ("choice", "letter"):
        return _single_label(golds, preds)
    if answer_type == "multi_label":
        m = len(labels)
        yt = np.array(
            [[c in set(_names(g)) for c in labels] for g in golds], dtype=float
        ).reshape(n, m)
        yp = np.array(
            [[c in set(_names(p)) for c in labels] for p in preds], dtype=float
        ).reshape(n, m)
        # sklearn's average="macro" over every label: a label never true nor predicted scores 0, not skipped.
        f1 = lambda s: _div(2 * s[..., 2 * m :], s[..., :m] + s[..., m : 2 * m]).mean(
            -1
        )
        return np.column_stack([yt, yp, yt * yp]), {"macro_f1": f1}
    if answer_type == "span":
        x = np.array(
            [span_scores(g, p, parser) for g, p in zip(golds, preds)], dtype=float
        )
        return x, {
            "exact_match": lambda s: s[..., 0] / n,
            "f1": lambda s: s[..., 1] / n,
        }
    if answer_type == "entities":
        x = np.array([entity_counts(g, p) for g, p in zip(golds, preds)], dtype=float)
        return x, {
            "entity_precision": lambda s: _prf(s)[0],
            "entity_recall": lambda s: _prf(s)[1],
            "entity_f1": lambda s: _prf(s)[2],
        }
    if answer_type == "text":
        rouge = (
            [rouge_l(g, p) for g, p in zip(golds, preds)]
            if "rouge_l" in wanted
            else [0.0] * n
        )
        return np.array(rouge, dtype=float).reshape(n, 1), {
            "rouge_l": lambda s: s[..., 0] / n
        }
    raise ValueError(f"unknown answer type {answer_type!r}")


def _summary(value: np.ndarray, boot: np.ndarray) -> dict[str, Any]:
    ci = [float(v) for v in np.percentile(boot, [2.5, 97.5])] if boot.size else None
    return {"value": float(value), "ci95": ci}


def score_task(
    answer_type: str,
    metrics: Sequence[str],
    golds: Sequence[Any],
    preds: Sequence[Any],
    labels: Sequence[str],
    parser: str,
    seed: int,
    n_boot: int = 1000,
    bertscore_model: str = "bert-base-multilingual-cased",
) -> dict[str, Any]:
    """The task's metrics, each {"value", "ci95"}, and per-class tables for single-label tasks."""
    if answer_type not in METRICS:
        raise ValueError(f"unknown answer type {answer_type!r}")
    unknown = [m for m in metrics if m not in METRICS[answer_type]]
    if unknown:
        raise ValueError(
            f"metrics {unknown} do not apply to answer type {answer_type!r}"
        )
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} golds but {len(preds)} predictions")
    if not golds:
        return {
            "metrics": {m: {"value": None, "ci95": None} for m in metrics},
            "per_class": None,
        }
    x, stats = _stats(answer_type, metrics, golds, preds, labels, parser)
    total, boot = x.sum(axis=0), _boot_sums(x, n_boot, seed)
    out: dict[str, Any] = {}
    for name in metrics:
        if name == "bertscore_f1":
            f1 = _bertscore(golds, preds, bertscore_model)
            if isinstance(f1, str):
                out[name] = {"value": None, "ci95": None, "unavailable": f1}
            else:
                sums = _boot_sums(f1.reshape(-1, 1), n_boot, seed)[:, 0]
                out[name] = _summary(f1.sum() / len(f1), sums / len(f1))
        else:
            out[name] = _summary(stats[name](total), stats[name](boot))
    per_class = (
        _per_class(golds, preds, labels)
        if answer_type in ("choice", "letter")
        else None
    )
    return {"metrics": out, "per_class": per_class}
