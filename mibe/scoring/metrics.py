"""MIBE's scores: per-document scores for samples files, task metrics with bootstrap CIs.

Every task metric is a function of the column sums of a per-document statistics matrix,
so one bootstrap resample costs a matrix product, not a call to a scorer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np

from mibe.scoring import paper
from mibe.scoring.chunks import entities

ENTITY_CLASSES = frozenset({"problem", "treatment", "test", "drug"})
# The paper tokenised tagged text with spaCy's en_core_web_lg, which PyPI lacks. This
# regex agrees on words and punctuation, but splits "2.5" and "Dr." that spaCy keeps.
_TAG_TOKEN = re.compile(r"\w+|[^\w\s]")
_ALIGN_SLACK = 3  # prediction tokens searched beyond the length difference
_VOID = frozenset(("br", "hr", "img", "wbr", "input", "meta", "link", "area", "col"))
_PUNCT = frozenset(string.punctuation)

Stat = Callable[[np.ndarray], np.ndarray]  # column sums (..., d) -> metric (...)


def _text(value: Any) -> str:
    # No answer (None) scores as an empty answer; any string, the word "missing" too, is text.
    return "" if value is None else str(value)


def _div(num: Any, den: Any) -> np.ndarray:
    # sklearn's and seqeval's default zero_division ("warn") both give 0 for x / 0.
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.zeros(np.broadcast(num, den).shape)
    return np.divide(num, den, out=out, where=den != 0)


def _span_tokens(text: str) -> list[str]:
    kept = "".join(ch for ch in _text(text).lower() if ch not in _PUNCT)
    return re.sub(r"\b(a|an|the)\b", " ", kept).split()  # SQuAD v1.1's normalisation


def _overlap_f1(common: int, n_pred: int, n_gold: int) -> float:
    if n_pred == 0 or n_gold == 0:  # SQuAD v2's rule (v1.1 gave two empties F1 0, EM 1)
        return float(n_pred == n_gold)
    if common == 0:
        return 0.0
    precision, recall = common / n_pred, common / n_gold
    return 2 * precision * recall / (precision + recall)


def span_scores(gold: Any, pred: Any, parser: str) -> tuple[float, float]:
    """(exact_match, f1) of one answer; the best over alternatives when gold is a tuple."""
    if parser == "paper":
        return paper.emrqa_paper_scores(gold, pred)
    best = (0.0, 0.0)
    for g in gold if isinstance(gold, tuple) else (gold,):
        pt, gt = _span_tokens(pred), _span_tokens(g)
        common = sum((Counter(pt) & Counter(gt)).values())
        score = (float(pt == gt), _overlap_f1(common, len(pt), len(gt)))
        best = (max(best[0], score[0]), max(best[1], score[1]))
    return best


class _TopLevel(HTMLParser):
    """Top-level nodes as BeautifulSoup's html.parser tree has them: (class|None, text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[tuple[str | None, str]] = []
        self._open: list[str] = []
        self._cls = ""
        self._buf: list[str] = []

    def flush(self) -> None:
        if self._open or self._buf:
            self.nodes.append((self._cls if self._open else None, "".join(self._buf)))
        self._buf, self._open = [], []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:  # BeautifulSoup closes these at once; at top level they split text
            if not self._open:
                self.flush()
        elif self._open:
            self._open.append(tag)
        else:
            self.flush()
            classes = next((v or "" for k, v in attrs if k == "class"), "").split()
            self._cls, self._open = (classes[0] if classes else ""), [tag]

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:  # an end tag with no open match is dropped, as in bs4
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]
            if not self._open:
                self._open = [tag]
                self.flush()

    def handle_data(self, data: str) -> None:
        self._buf.append(data)

    def handle_comment(self, data: str) -> None:
        if not self._open:
            self.flush()


def tag_tokens(html: str) -> tuple[list[str], list[str]]:
    """Tokens of a tagged sentence and their BIO tags; bad markup never raises."""
    parser = _TopLevel()
    try:
        parser.feed(html)
        parser.close()
        parser.flush()  # an element left open runs to the end, as in BeautifulSoup
    except Exception:  # markup the parser chokes on counts as plain words
        return html.split(), ["O"] * len(html.split())
    tokens: list[str] = []
    tags: list[str] = []
    for cls, text in parser.nodes:
        words = text.split() if cls is None else _TAG_TOKEN.findall(text)
        if cls in ENTITY_CLASSES:
            tags += [f"{'I' if i else 'B'}-{cls}" for i in range(len(words))]
        else:
            tags += ["O"] * len(words)
        tokens += words
    return tokens, tags


def align_tags(gold_tokens: Sequence[str], pred_tokens: Sequence[str], pred_tags: Sequence[str]) -> list[str]:
    """Each gold token's predicted tag: greedy forward match by text, O when unmatched."""
    window = abs(len(pred_tokens) - len(gold_tokens)) + _ALIGN_SLACK
    out, j = [], 0
    for token in gold_tokens:
        for k in range(j, min(j + window + 1, len(pred_tokens))):
            if pred_tokens[k] == token:
                out.append(pred_tags[k])
                j = k + 1
                break
        else:  # the pointer stays, so a dropped or changed word costs only itself
            out.append("O")
    return out


def entity_counts(gold: Any, pred: Any, parser: str = "strict") -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of one tagged sentence."""
    if parser == "paper":
        return paper.i2b2_paper_counts(gold, pred)
    gold_tokens, gold_tags = tag_tokens(_text(gold))
    pred_tags = align_tags(gold_tokens, *tag_tokens(_text(pred)))
    true, found = entities(gold_tags), entities(pred_tags)
    return len(true & found), len(found), len(true)


def _prf(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # seqeval's micro average: F from P and R, 0 when P + R == 0.
    p, r = _div(s[..., 0], s[..., 1]), _div(s[..., 0], s[..., 2])
    return p, r, _div(2 * p * r, p + r)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(gold: Any, pred: Any) -> float:
    return float(_rouge().score(_text(gold), _text(pred))["rougeL"].fmeasure)


def _model_folder(model: str) -> str:
    """The model's local folder where there is one, so an offline run never waits on hub retries."""
    from huggingface_hub import snapshot_download

    from mibe import hub

    if Path(model).is_dir():
        return model
    try:
        folder = Path(snapshot_download(model, local_files_only=True))
        if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")):
            return str(folder)
    except Exception:  # not cached (or not a hub id): only the hub can supply it
        pass
    hub.probe(model)
    return model


def _bertscore(golds: Sequence[Any], preds: Sequence[Any], model: str) -> Any:
    """Per-document BERTScore F1 (numpy), or a one-line reason the model is unusable."""
    cands, refs = [_text(p).strip() for p in preds], [_text(g).strip() for g in golds]
    # bert_score scores an empty side 0, but its empty-sentence path breaks on transformers 5.
    keep = [i for i, (c, r) in enumerate(zip(cands, refs, strict=True)) if c and r]
    f1 = np.zeros(len(cands))
    try:
        from transformers import AutoConfig

        folder = _model_folder(model)
        config = AutoConfig.from_pretrained(folder)  # fails fast, before weights are read
        import bert_score
        from bert_score.utils import model2layers

        layers = model2layers.get(model) or config.num_hidden_layers
        if keep:
            kept = [cands[i] for i in keep], [refs[i] for i in keep]
            f1[keep] = bert_score.score(*kept, model_type=folder, num_layers=layers)[2].numpy()
    except Exception as exc:  # an unusable scorer model is reported, never fatal
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        return (
            f"BERTScore model {model!r} unavailable: {type(exc).__name__}: {detail}; offline, give a "
            "local copy of the model with --bertscore-model PATH"
        )
    return f1


def _names(value: Any) -> set[str]:
    if value is None:  # no answer: no label
        return set()
    if isinstance(value, str):
        return {value}
    return {v for v in value if v is not None}


def label_score(gold: Any, pred: Any, parser: str) -> float:
    return float(pred == gold)


def labels_score(gold: Any, pred: Any, parser: str) -> float:
    return float(_names(gold) == _names(pred))


def span_score(gold: Any, pred: Any, parser: str) -> float:
    return span_scores(gold, pred, parser)[1]


def entity_score(gold: Any, pred: Any, parser: str) -> float:
    counts = entity_counts(gold, pred, parser)
    if counts[1] == counts[2] == 0:
        # Nothing to find and nothing found is right; the paper's walk can also count nothing on a
        # document that has entities (an output shifted by "Output: "): that one scores 0.
        return float(not entities(tag_tokens(_text(gold))[1]))
    return float(_prf(np.array(counts))[2])


def text_score(gold: Any, pred: Any, parser: str) -> float:
    return rouge_l(gold, pred)


Stats = tuple[np.ndarray, dict[str, Stat], dict[str, str]]  # matrix, metric -> stat, metric -> why n/a


def label_stats(
    golds: Sequence[Any], preds: Sequence[Any], labels: Sequence[str], parser: str, **_: Any
) -> Stats:
    classes = sorted(set(golds))  # the paper's label set: the gold labels present
    k, n = len(classes), len(golds)
    code = {c: i for i, c in enumerate(classes)}
    p = np.array([code.get(x, -1) for x in preds])
    true, pred = np.zeros((n, k)), np.zeros((n, k))
    true[np.arange(n), [code[x] for x in golds]] = 1
    pred[np.flatnonzero(p >= 0), p[p >= 0]] = 1
    correct = np.array([x == y for x, y in zip(golds, preds, strict=True)], dtype=float)
    missing = np.array([x is None for x in preds], dtype=float)
    x = np.column_stack([correct, missing, true, pred, true * correct[:, None]])

    def f1(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, pr, tp = s[..., 2 : 2 + k], s[..., 2 + k : 2 + 2 * k], s[..., 2 + 2 * k :]
        return _div(2 * tp, t + pr), t  # a class a resample lacks has f1 0 there

    return (
        x,
        {
            "accuracy": lambda s: s[..., 0] / n,
            "missing_rate": lambda s: s[..., 1] / n,
            "macro_f1": lambda s: f1(s)[0].sum(-1) / (f1(s)[1] > 0).sum(-1),
            "weighted_f1": lambda s: (f1(s)[0] * f1(s)[1]).sum(-1) / n,
        },
        {},
    )


def per_class(golds: Sequence[str], preds: Sequence[str | None], labels: Sequence[str]) -> dict[str, Any]:
    """Per-label precision, recall, F1, support, and the confusion matrix. No answer (None) is the
    matrix's last column, labelled null: out of band, so a label that reads "missing" stays a label."""
    extra = (set(golds) | set(preds)) - set(labels) - {None}  # never drop data's labels
    names = [*labels, *sorted(extra)]
    pairs, support, predicted = Counter(zip(golds, preds, strict=True)), Counter(golds), Counter(preds)
    tp = {c: pairs[c, c] for c in names}
    axis: list[str | None] = [*names, None]
    return {
        "labels": names,
        "precision": {c: float(_div(tp[c], predicted[c])) for c in names},
        "recall": {c: float(_div(tp[c], support[c])) for c in names},
        "f1": {c: float(_div(2 * tp[c], support[c] + predicted[c])) for c in names},
        "support": {c: support[c] for c in names},
        "confusion": {"labels": axis, "matrix": [[pairs[r, c] for c in axis] for r in axis]},
    }


def _means(
    columns: Sequence[Sequence[float]], names: Sequence[str], n: int
) -> tuple[np.ndarray, dict[str, Stat]]:
    x = np.array(columns, dtype=float).reshape(len(names), n).T
    return x, {name: (lambda s, i=i: s[..., i] / n) for i, name in enumerate(names)}


def labels_stats(
    golds: Sequence[Any], preds: Sequence[Any], labels: Sequence[str], parser: str, **_: Any
) -> Stats:
    m, pairs = len(labels), list(zip(golds, preds, strict=True))
    yt = np.array([[c in _names(g) for c in labels] for g, _ in pairs], dtype=float)
    yp = np.array([[c in _names(p) for c in labels] for _, p in pairs], dtype=float)
    x = np.column_stack([yt, yp, yt * yp]).reshape(len(pairs), 3 * m)

    def macro(s: np.ndarray) -> np.ndarray:
        # sklearn's average="macro": a label never true nor predicted counts as 0.
        return _div(2 * s[..., 2 * m :], s[..., :m] + s[..., m : 2 * m]).mean(-1)

    return x, {"macro_f1": macro}, {}


def span_stats(
    golds: Sequence[Any], preds: Sequence[Any], labels: Sequence[str], parser: str, **_: Any
) -> Stats:
    scores = [span_scores(g, p, parser) for g, p in zip(golds, preds, strict=True)]
    x, stats = _means([[s[0] for s in scores], [s[1] for s in scores]], ("exact_match", "f1"), len(scores))
    return x, stats, {}


def entity_stats(
    golds: Sequence[Any], preds: Sequence[Any], labels: Sequence[str], parser: str, **_: Any
) -> Stats:
    x = np.array([entity_counts(g, p, parser) for g, p in zip(golds, preds, strict=True)], dtype=float)
    x = x.reshape(-1, 3)
    prf = {"entity_precision": 0, "entity_recall": 1, "entity_f1": 2}
    return x, {name: (lambda s, i=i: _prf(s)[i]) for name, i in prf.items()}, {}


def text_stats(
    golds: Sequence[Any],
    preds: Sequence[Any],
    labels: Sequence[str],
    parser: str,
    wanted: Sequence[str] = ("rouge_l",),
    bertscore_model: str = "bert-base-multilingual-cased",
) -> Stats:
    columns, names, unavailable = [], [], {}
    if "rouge_l" in wanted:
        columns.append([rouge_l(g, p) for g, p in zip(golds, preds, strict=True)])
        names.append("rouge_l")
    if "bertscore_f1" in wanted:
        f1 = _bertscore(golds, preds, bertscore_model)
        if isinstance(f1, str):
            unavailable["bertscore_f1"] = f1
        else:
            columns.append(list(f1))
            names.append("bertscore_f1")
    x, stats = _means(columns, names, len(golds))
    return x, stats, unavailable
