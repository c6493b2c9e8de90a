"""mibe.scoring.metrics against the reference scorers (sklearn, seqeval, rouge-score, bert-score)."""

from __future__ import annotations

import json
import random
import re
import string
import time
import warnings
from collections import Counter

import numpy as np
import pytest
from rouge_score import rouge_scorer
from seqeval import metrics as seqeval
from seqeval.metrics.sequence_labeling import get_entities
from sklearn import metrics as skm

from mibe import tasks
from mibe.scoring import kinds, metrics, stats

TOL = 1e-12
SINGLE = ["accuracy", "macro_f1", "weighted_f1", "missing_rate"]
HOC = tasks.load_task(tasks.builtin_paths()["hoc"]).choices  # the ten hallmarks, in the paper's order


def _quiet(fn, *args, **kwargs):
    # The references warn on ill-defined precision/recall; the value, not the warning, is under test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _score(answer_type: str, names: list[str], golds: list, preds: list, labels=(), **kw) -> dict:
    kw = {"parser": "strict", "seed": 0, "n_boot": 30, **kw}
    return kinds.score_task(answer_type, names, golds, preds, list(labels), **kw)


def _span(cls: str, text: str) -> str:
    return f'<span class="{cls}">{text}</span>'


def _pred_tags(gold: str, pred: str) -> list[str]:
    return metrics.align_tags(metrics.tag_tokens(gold)[0], *metrics.tag_tokens("" if pred is None else pred))


def _random_single(seed: int) -> tuple[list[str], list[str], list[str]]:
    rng = random.Random(seed)
    labels = [f"label{i}" for i in range(rng.randint(2, 9))]
    n = rng.randint(1, 150)
    golds = [rng.choice(labels[: max(1, len(labels) - 1)]) for _ in range(n)]  # often a label no gold has
    preds = [rng.choice([*labels, None]) if rng.random() < 0.6 else g for g in golds]
    return golds, preds, labels


# No answer (None) enters sklearn's label arrays as a label no gold holds and no task lists: it counts
# as a wrong prediction (accuracy, recall) and, outside the gold label set, takes no class of its own
# in the macro and weighted F1. mibe's confusion matrix gives it the last column, labelled None.
NO_ANSWER = "\x00no answer"


def _sk(preds: list) -> list:
    return [NO_ANSWER if p is None else p for p in preds]


PUBMEDQA = ["yes", "no", "maybe"]
SINGLE_CASES = [
    pytest.param(["yes", "no", "maybe", "yes"], ["yes", None, "no", "yes"], PUBMEDQA, id="no-answer"),
    pytest.param(["yes", "no"], ["yes", "no"], PUBMEDQA, id="perfect"),
    pytest.param(["yes", "no", "no"], [None, None, None], PUBMEDQA, id="all-no-answer"),
    pytest.param(["yes", "yes", "no"], ["maybe", "yes", "maybe"], PUBMEDQA, id="pred-outside-gold-set"),
    pytest.param(["A"], ["B"], ["A", "B", "C", "D"], id="one-doc"),
    pytest.param(["A", "A", "A"], ["A", "B", None], ["A", "B", "C", "D"], id="one-gold-class"),
    *[pytest.param(*_random_single(s), id=f"random{s}") for s in range(8)],
]


@pytest.mark.parametrize(("golds", "preds", "labels"), SINGLE_CASES)
def test_single_label_equals_sklearn(golds: list[str], preds: list[str], labels: list[str]) -> None:
    out = _score("choice", SINGLE, golds, preds, labels, seed=1, n_boot=50)
    m = {k: v["value"] for k, v in out["metrics"].items()}
    present, sk = sorted(set(golds)), _sk(preds)  # the paper's label set
    assert abs(m["accuracy"] - skm.accuracy_score(golds, sk)) < TOL
    for average in ("macro", "weighted"):
        ref = _quiet(skm.f1_score, golds, sk, average=average, labels=present)
        assert abs(m[f"{average}_f1"] - ref) < TOL
    assert abs(m["missing_rate"] - preds.count(None) / len(preds)) < TOL
    pc = out["per_class"]
    assert pc["labels"] == labels
    p, r, f, s = _quiet(skm.precision_recall_fscore_support, golds, sk, labels=labels, zero_division=0)
    for i, c in enumerate(labels):
        assert abs(pc["precision"][c] - p[i]) < TOL and abs(pc["recall"][c] - r[i]) < TOL
        assert abs(pc["f1"][c] - f[i]) < TOL and pc["support"][c] == s[i]
    assert pc["confusion"]["labels"] == [*labels, None]
    assert pc["confusion"]["matrix"] == skm.confusion_matrix(golds, sk, labels=[*labels, NO_ANSWER]).tolist()
    assert [kinds.doc_score("letter", g, p, "paper") for g, p in zip(golds, preds, strict=True)] == [
        float(g == p) for g, p in zip(golds, preds, strict=True)
    ]


def test_per_class_keeps_labels_the_task_did_not_list() -> None:
    pc = _score("choice", ["accuracy"], ["a", "b"], ["z", "b"], ["a", "b"])["per_class"]
    assert pc["labels"] == ["a", "b", "z"] and pc["confusion"]["matrix"][0] == [0, 0, 1, 0]


def _random_multi(seed: int) -> tuple[list[tuple[str, ...]], list]:
    rng = random.Random(seed)
    rare = set(rng.sample(HOC, 3))  # labels no document holds nor predicts
    pool = [c for c in HOC if c not in rare]
    golds = [tuple(rng.sample(pool, rng.randint(0, 3))) for _ in range(rng.randint(1, 80))]
    preds = [None if rng.random() < 0.1 else tuple(rng.sample(pool, rng.randint(0, 3))) for _ in golds]
    return golds, preds


MULTI_CASES = [
    pytest.param([(HOC[0], HOC[1]), (HOC[2],)], [(HOC[1], HOC[0]), (HOC[2],)], id="perfect-order-free"),
    pytest.param([(HOC[0],), ()], [(), None], id="empty-and-no-answer"),
    pytest.param([(HOC[0],), (HOC[3], HOC[4])], [(HOC[0], HOC[5]), (HOC[4],)], id="partial"),
    *[pytest.param(*_random_multi(s), id=f"random{s}") for s in range(6)],
]


def _vectors(rows: list) -> np.ndarray:
    names = [() if r is None else r for r in rows]
    return np.array([[int(c in r) for c in HOC] for r in names])


@pytest.mark.parametrize(("golds", "preds"), MULTI_CASES)
def test_multi_label_equals_sklearn_macro(golds: list, preds: list) -> None:
    out = _score("multi_label", ["macro_f1"], golds, preds, HOC, parser="paper", seed=3)
    y_true, y_pred = _vectors(golds), _vectors(preds)
    ref = _quiet(skm.f1_score, y_true, y_pred, average="macro")
    # sklearn's default zero_division ("warn") scores a label with no true and no predicted positive 0,
    # and it still counts in the macro mean; zero_division=0 gives the same number.
    assert ref == skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert abs(out["metrics"]["macro_f1"]["value"] - ref) < TOL
    assert out["per_class"] is None
    for g, p in zip(golds, preds, strict=True):
        assert kinds.doc_score("multi_label", g, p, "strict") == float(set(g) == set(() if p is None else p))


# The official SQuAD v1.1 evaluate script's functions, verbatim in substance: the reference for strict spans.
def _squad_normalize(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def _squad_f1(prediction: str, ground_truth: str) -> float:
    p, g = _squad_normalize(prediction).split(), _squad_normalize(ground_truth).split()
    num_same = sum((Counter(p) & Counter(g)).values())
    if num_same == 0:
        return 0.0
    precision, recall = num_same / len(p), num_same / len(g)
    return (2 * precision * recall) / (precision + recall)


SPAN_CASES = [  # gold, prediction, parser, exact_match, f1
    ("The cat sat", "cat sat.", "strict", 1.0, 1.0),
    ("aspirin 81 mg", "aspirin 325 mg", "strict", 0.0, 2 / 3),
    ("pain", "pain pain", "strict", 0.0, 2 / 3),
    ("a", "the", "strict", 1.0, 1.0),  # both empty after normalising: SQuAD v2's rule
    ("metoprolol", None, "strict", 0.0, 0.0),
    ("metoprolol", "", "strict", 0.0, 0.0),
    (("x", "Metoprolol 25mg"), "metoprolol", "strict", 0.0, 2 / 3),
    ("The cat", "the act", "paper", 0.0, 5 / 6),  # 5 distinct shared over 6 characters each
    ("a", "the", "paper", 0.0, 0.0),  # no article removal
    ("Aspirin!", "aspirin", "paper", 1.0, 6 / 7),  # 6 distinct characters of 7 ("i" twice)
    ("abc", "abd", "paper", 0.0, 2 / 3),
    ("...", "", "paper", 1.0, 1.0),
    ("abc", "", "paper", 0.0, 0.0),
    ("abc", None, "paper", 0.0, 0.0),
    ("aab", "ab", "paper", 0.0, 0.8),  # 2 distinct shared: P 2/2, R 2/3
]


@pytest.mark.parametrize(("gold", "pred", "parser", "em", "f1"), SPAN_CASES)
def test_span_scores(gold, pred, parser: str, em: float, f1: float) -> None:
    assert metrics.span_scores(gold, pred, parser) == pytest.approx((em, f1), abs=TOL)
    assert kinds.doc_score("span", gold, pred, parser) == pytest.approx(f1, abs=TOL)


def test_strict_span_equals_squad_script() -> None:
    rng = random.Random(5)
    words = ["the", "a", "pain", "chest", "aspirin", "Mg", "25", "daily,", "an", "BID."]
    for _ in range(300):
        gold, pred = (" ".join(rng.choices(words, k=rng.randint(1, 6))) for _ in range(2))
        em, f1 = metrics.span_scores(gold, pred, "strict")
        assert em == float(_squad_normalize(gold) == _squad_normalize(pred))
        if _squad_normalize(gold) and _squad_normalize(pred):  # the script's one difference: empty answers
            assert abs(f1 - _squad_f1(pred, gold)) < TOL


def test_span_task_is_mean_of_documents() -> None:
    golds, preds = [g for g, *_ in SPAN_CASES], [p for _, p, *_ in SPAN_CASES]
    for parser in ("strict", "paper"):
        out = _score("span", ["exact_match", "f1"], golds, preds, parser=parser)
        scores = np.array([metrics.span_scores(g, p, parser) for g, p in zip(golds, preds, strict=True)])
        assert abs(out["metrics"]["exact_match"]["value"] - scores[:, 0].mean()) < TOL
        assert abs(out["metrics"]["f1"]["value"] - scores[:, 1].mean()) < TOL


P, T, X = "problem", "treatment", "test"
TAG_CASES = [
    ("no tags here .", ["no", "tags", "here", "."], ["O"] * 4),
    ("", [], []),
    (
        'Has <span class="problem">chest pain</span>, given <span class="treatment">aspirin 2.5mg</span>.',
        ["Has", "chest", "pain", ",", "given", "aspirin", "2", ".", "5mg", "."],
        ["O", f"B-{P}", f"I-{P}", "O", "O", f"B-{T}", f"I-{T}", f"I-{T}", f"I-{T}", "O"],
    ),
    ('<span class="drug">x-ray</span>', ["x", "-", "ray"], ["B-drug", "I-drug", "I-drug"]),
    ('<span class="other">a b</span> c', ["a", "b", "c"], ["O", "O", "O"]),
    ("<span>a b</span>", ["a", "b"], ["O", "O"]),
    ('<span class="test extra">CT <b>scan</b></span>', ["CT", "scan"], [f"B-{X}", f"I-{X}"]),
    ('a<span class="problem">b</span>c', ["a", "b", "c"], ["O", f"B-{P}", "O"]),
    ('a<br>b <span class="problem">c<br>d</span>', ["a", "b", "cd"], ["O", "O", f"B-{P}"]),
    ('x <span class="problem">open to end', ["x", "open", "to", "end"], ["O", f"B-{P}", f"I-{P}", f"I-{P}"]),
    ("stray </span> end", ["stray", "end"], ["O", "O"]),
    ('<span class="problem">a &amp; b</span>', ["a", "&", "b"], [f"B-{P}", f"I-{P}", f"I-{P}"]),
    ('<span class="problem"', ["<span", 'class="problem"'], ["O", "O"]),  # an unfinished tag is text
    ("<<>> < 5 mg", ["<<>>", "<", "5", "mg"], ["O"] * 4),
]


@pytest.mark.parametrize(("html", "tokens", "tags"), TAG_CASES)
def test_tag_tokens(html: str, tokens: list[str], tags: list[str]) -> None:
    assert metrics.tag_tokens(html) == (tokens, tags)


def _random_tags(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(["O", "O", "B-problem", "I-problem", "B-test", "I-test", "I-drug"]) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_entities_equal_seqeval_chunks_on_any_tags(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        tags = _random_tags(rng, rng.randint(0, 12))  # ill-formed sequences too (I- after O, type switches)
        assert metrics.entities(tags) == set(get_entities(tags))


def _html(words: list[str], rng: random.Random) -> str:
    out, i = [], 0
    while i < len(words):
        if rng.random() < 0.3:
            k = rng.randint(1, 3)
            out.append(_span(rng.choice([P, T, X, "drug", "other"]), " ".join(words[i : i + k])))
            i += k
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _random_ner(seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    vocab = ["chest", "pain", "aspirin", "CT", "scan", "fever", "was", "given", "the", ",", "mild"]
    golds, preds = [], []
    for _ in range(rng.randint(1, 25)):
        words = rng.choices(vocab, k=rng.randint(0, 10))
        pred_words = [w for w in words if rng.random() > 0.1]  # dropped words
        if rng.random() < 0.3:
            pred_words = ["Sure", ":", *pred_words]  # chatter the alignment must skip
        golds.append(_html(words, rng))
        preds.append(None if rng.random() < 0.05 else _html(pred_words, rng))
    return golds, preds


NER_CASES = [
    pytest.param([_span(P, "chest pain") + " now"] * 2, [_span(P, "chest pain") + " now"] * 2, id="perfect"),
    pytest.param([_span(P, "chest pain")], [_span(X, "chest pain")], id="wrong-class"),
    pytest.param([_span(P, "chest pain")], ["chest " + _span(P, "pain")], id="boundary"),
    pytest.param([_span(P, "pain") + " and fever"], ["pain and fever"], id="plain-text-pred"),
    pytest.param(["nothing here", "none"], ["nothing here", None], id="no-entities"),
    pytest.param(["a " + _span(X, "CT")], ["Output: a " + _span(X, "CT")], id="chatter"),
    pytest.param([_span(P, "pain")], [_span(P, "pain") + ' <span class="problem">x'], id="extra-unclosed"),
    *[pytest.param(*_random_ner(s), id=f"random{s}") for s in range(8)],
]


@pytest.mark.parametrize(("golds", "preds"), NER_CASES)
def test_entity_scores_equal_seqeval(golds: list[str], preds: list[str]) -> None:
    y_true = [metrics.tag_tokens(g)[1] for g in golds]
    y_pred = [_pred_tags(g, p) for g, p in zip(golds, preds, strict=True)]
    names = ["entity_f1", "entity_precision", "entity_recall"]
    out = _score("entities", names, golds, preds, parser="strict")["metrics"]
    assert abs(out["entity_f1"]["value"] - _quiet(seqeval.f1_score, y_true, y_pred)) < TOL
    assert abs(out["entity_precision"]["value"] - _quiet(seqeval.precision_score, y_true, y_pred)) < TOL
    assert abs(out["entity_recall"]["value"] - _quiet(seqeval.recall_score, y_true, y_pred)) < TOL
    for g, p, t, q in zip(golds, preds, y_true, y_pred, strict=True):
        expected = 1.0 if not get_entities(t) and not get_entities(q) else _quiet(seqeval.f1_score, [t], [q])
        assert abs(kinds.doc_score("entities", g, p, "strict") - expected) < TOL


@pytest.mark.parametrize(
    ("gold", "pred", "tokens", "expected"),
    [
        (["a", "b", "c"], ["a", "b", "c"], ["B-x", "I-x", "O"], ["B-x", "I-x", "O"]),
        (["a", "b", "c"], ["Sure", "a", "b", "c"], ["O", "B-x", "I-x", "O"], ["B-x", "I-x", "O"]),
        (["a", "b", "c"], ["a", "c"], ["B-x", "B-y"], ["B-x", "O", "B-y"]),
        (["a", "b"], [], [], ["O", "O"]),
        (list("abcdef"), list("zzzzza"), ["O"] * 5 + ["B-x"], ["O"] * 6),  # "a" lies beyond the window
    ],
)
def test_align_tags(gold: list[str], pred: list[str], tokens: list[str], expected: list[str]) -> None:
    assert metrics.align_tags(gold, pred, tokens) == expected


TEXT_CASES = [
    ("no acute cardiopulmonary process", "No acute process."),
    ("mild cardiomegaly", "Mild cardiomegaly; no effusion."),
    ("the patients were treated", "patient treated"),  # no stemming
    ("findings are stable", None),
    ("findings are stable", ""),
    ("", "anything"),
]


def test_rouge_l_equals_rouge_score() -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    golds, preds = [g for g, _ in TEXT_CASES], [p for _, p in TEXT_CASES]
    ref = [scorer.score(g, "" if p is None else p)["rougeL"].fmeasure for g, p in TEXT_CASES]
    assert [kinds.doc_score("text", g, p, "strict") for g, p in TEXT_CASES] == ref
    out = _score("text", ["rouge_l"], golds, preds)
    assert abs(out["metrics"]["rouge_l"]["value"] - float(np.mean(ref))) < TOL
    assert set(out["metrics"]) == {"rouge_l"}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer BERT with a WordPiece vocabulary trained here: bert-score without the hub."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=150, special_tokens=special)
    tok.train_from_iterator([g for g, _ in TEXT_CASES], trainer)
    ids = [("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=ids
    )
    names = {f"{n.lower()}_token": f"[{n}]" for n in ("UNK", "PAD", "CLS", "SEP", "MASK")}
    BertTokenizerFast(tokenizer_object=tok, model_max_length=64, **names).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return str(folder)


def test_bertscore_equals_bert_score(tiny_bert: str) -> None:
    import bert_score

    golds, preds = [g for g, _ in TEXT_CASES], [p for _, p in TEXT_CASES]
    out = _score("text", ["bertscore_f1"], golds, preds, n_boot=200, bertscore_model=tiny_bert)["metrics"]
    scored = [(g, p) for g, p in TEXT_CASES if g and p is not None and p]  # bert-score gives an empty side 0
    cands, refs = [p for _, p in scored], [g for g, _ in scored]
    f1 = bert_score.score(cands, refs, model_type=tiny_bert, num_layers=2)[2]
    assert abs(out["bertscore_f1"]["value"] - float(f1.double().sum()) / len(golds)) < 1e-9
    assert out["bertscore_f1"]["ci95"][0] <= out["bertscore_f1"]["value"] <= out["bertscore_f1"]["ci95"][1]
    same = _score("text", ["bertscore_f1"], golds[:2], preds[:2], bertscore_model=tiny_bert)["metrics"]
    assert abs(same["bertscore_f1"]["value"] - float(f1[:2].mean())) < 1e-6  # bert-score's own float32 mean


@pytest.mark.parametrize("model", ["no-such-org/no-such-model", "/no/such/folder", "not a valid id!"])
def test_bertscore_unavailable_does_not_raise(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    start = time.perf_counter()
    out = _score("text", ["rouge_l", "bertscore_f1"], ["a b"], ["a"], bertscore_model=model)
    assert time.perf_counter() - start < 10
    bs = out["metrics"]["bertscore_f1"]
    assert bs["value"] is None and bs["ci95"] is None
    assert "\n" not in bs["unavailable"] and model in bs["unavailable"]
    assert bs["unavailable"].endswith("offline, give a local copy of the model with --bertscore-model PATH")
    assert out["metrics"]["rouge_l"]["value"] == pytest.approx(2 / 3)


def test_bootstrap_equals_resampling_with_the_references() -> None:
    golds, preds, labels = _random_single(11)
    golds, preds = golds * 2, preds * 2
    n_boot = 200
    out = _score("choice", SINGLE, golds, preds, labels, seed=7, n_boot=n_boot)["metrics"]
    idx = np.concatenate(list(stats.resample_indices(len(golds), n_boot, 7)))
    assert idx.shape == (n_boot, len(golds))
    g, p = np.array(golds), np.array(_sk(preds))
    refs = {
        "accuracy": lambda t, q: skm.accuracy_score(t, q),
        "macro_f1": lambda t, q: skm.f1_score(t, q, average="macro", labels=sorted(set(t))),
        "weighted_f1": lambda t, q: skm.f1_score(t, q, average="weighted", labels=sorted(set(t))),
        "missing_rate": lambda t, q: float(np.mean(q == NO_ANSWER)),
    }
    for name, ref in refs.items():
        values = [_quiet(ref, g[i], p[i]) for i in idx]  # the resample's own gold label set
        assert np.allclose(out[name]["ci95"], np.percentile(values, [2.5, 97.5]), rtol=0, atol=TOL), name


def test_entity_bootstrap_equals_seqeval_on_resamples() -> None:
    golds, preds = _random_ner(3)
    out = _score("entities", ["entity_f1"], golds, preds, parser="strict", seed=2, n_boot=60)["metrics"]
    y_true = [metrics.tag_tokens(g)[1] for g in golds]
    y_pred = [_pred_tags(g, p) for g, p in zip(golds, preds, strict=True)]
    values = [
        _quiet(seqeval.f1_score, [y_true[i] for i in row], [y_pred[i] for i in row])
        for row in np.concatenate(list(stats.resample_indices(len(golds), 60, 2)))
    ]
    assert np.allclose(out["entity_f1"]["ci95"], np.percentile(values, [2.5, 97.5]), rtol=0, atol=TOL)


def test_bootstrap_is_seeded_and_brackets_the_value() -> None:
    golds, preds, labels = _random_single(4)
    first, again, other = (
        _score("choice", SINGLE, golds, preds, labels, seed=s, n_boot=1000) for s in (0, 0, 1)
    )
    assert first == again
    assert first["metrics"]["accuracy"]["ci95"] != other["metrics"]["accuracy"]["ci95"]
    for m in first["metrics"].values():
        assert m["ci95"][0] <= m["value"] <= m["ci95"][1]


def test_bootstrap_is_fast_and_chunked() -> None:
    rng = np.random.default_rng(0)
    labels = [f"specialty {i}" for i in range(40)]
    golds = list(rng.choice(labels, 5000))
    preds = [g if rng.random() < 0.5 else rng.choice([*labels, None]) for g in golds]
    start = time.perf_counter()
    kinds.score_task("choice", SINGLE, golds, preds, labels, "strict", seed=0, n_boot=1000)
    assert time.perf_counter() - start < 4.0  # four metrics, well under a second each
    chunks = list(stats.resample_indices(5000, 1000, 0))
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == 1000


@pytest.mark.parametrize(
    ("answer_type", "names", "golds", "preds"),
    [
        ("choice", SINGLE, ["yes", "no"], ["yes", None]),
        ("multi_label", ["macro_f1"], [(HOC[0],)], [()]),
        ("span", ["exact_match", "f1"], ["a b"], ["a"]),
        ("entities", ["entity_f1"], ['<span class="test">CT</span>'], ["CT"]),
        ("text", ["rouge_l"], ["a b"], ["a"]),
    ],
)
def test_result_shape(answer_type: str, names: list[str], golds: list, preds: list) -> None:
    out = _score(answer_type, names, golds, preds, HOC if answer_type == "multi_label" else ["yes", "no"])
    assert list(out["metrics"]) == names
    assert json.loads(json.dumps(out)) == out  # plain Python numbers only
    for m in out["metrics"].values():
        assert type(m["value"]) is float and all(type(v) is float for v in m["ci95"])
    empty = _score(answer_type, names, [], [])
    assert empty == {"metrics": {n: {"value": None, "ci95": None} for n in names}, "per_class": None}
    assert _score(answer_type, names, golds, preds, HOC, n_boot=0)["metrics"][names[0]]["ci95"] is None


@pytest.mark.parametrize(
    ("answer_type", "names", "preds"),
    [("choice", ["rouge_l"], ["a"]), ("bogus", ["accuracy"], ["a"]), ("choice", ["accuracy"], ["a", "b"])],
)
def test_bad_requests_raise(answer_type: str, names: list[str], preds: list[str]) -> None:
    with pytest.raises(ValueError):
        kinds.score_task(answer_type, names, ["a"], preds, ["a"], "strict", 0)
    with pytest.raises(ValueError):
        kinds.doc_score("bogus", "a", "a", "strict")
