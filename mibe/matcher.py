"""The one contamination matcher: which evaluation documents a piece of training text repeats.

Used by the training guard (mibe/training/guard.py) and by `mibe data contamination`
(docs/contamination.md). Per evaluation document it keeps its distinctive fields (question,
context, premise, hypothesis, note text; options only together with their stem), normalised: NFKC
(NBSP and full-width characters become their plain forms), case-folded, punctuation dropped,
whitespace collapsed. A field of at least MIN_WORDS words matches a corpus segment (a conversation
turn, a line or a sentence) that is equal to it once normalised; a field of at least NGRAM words also
matches through any NGRAM-word run it shares with a corpus text (containment only through runs). A
field or run found in more than SHARED_SHARE of a task's documents (and in more than one) is the
instruction or boilerplate and never counts.

`match_batch` is a pure function of (texts, index): any engine that can map a function over shards
(Ray Data, Spark) scans with the same rule as the command (docs/contamination.md).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VERSION = 1  # raise when what counts as a match changes; the guard and the report record it
MIN_WORDS = 5  # F: a 5-word question ("Is angioplasty better than thrombolysis") counts as a field
NGRAM = 13  # GPT-3's audit length for runs inside longer text
SHARED_SHARE = 0.01  # a field or run in more than 1% of a task's documents (and in two) is boilerplate

_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_NLI = re.compile(r"\[PRE\](.*?)\[HYP\](.*)", re.S)  # Me-LLaMA's NLI text: '[PRE] premise [HYP] hypothesis'
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_LABEL = re.compile(r"^\s*[^\W\d][\w ]{0,24}:\s")  # "Question: ", "INPUT: ", "Q: " before a segment
_OPTION = re.compile(r"^\s*\(?([A-Ea-e])[).:]\s*(.+)$")
HOWS = ("question + answer", "exact field", "n-gram run")  # strongest first

Ref = tuple[str, str, str]  # (task, evaluation document id, field name)


def words(text: str) -> list[str]:
    """Normalised words: NFKC (only needed outside ASCII), case-folded, punctuation dropped."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _WORD.findall(text.casefold())


def normalise(text: str) -> str:
    return " ".join(words(text))


@dataclass(frozen=True)
class EvalDoc:
    """One evaluation document as the matcher sees it."""

    id: str
    fields: Mapping[str, str]  # field name -> text
    golds: tuple[str, ...] = ()  # the gold answer's texts (a letter's option text too)
    published: bool = False  # fields are lines of Me-LLaMA's rendered `query`


@dataclass(frozen=True)
class Hit:
    task: str
    doc: str
    field: str
    how: str  # one of HOWS
    published: bool


@dataclass
class Index:
    n: int = NGRAM
    min_words: int = MIN_WORDS
    share: float = SHARED_SHARE
    vocab: dict[str, int] = field(default_factory=dict)
    exact: dict[int, list[Ref]] = field(default_factory=dict)
    grams: dict[int, list[Ref]] = field(default_factory=dict)
    golds: dict[tuple[str, str], list[tuple[int, ...]]] = field(default_factory=dict)
    published: set[tuple[str, str]] = field(default_factory=set)
    docs: dict[str, int] = field(default_factory=dict)  # task -> evaluation documents indexed
    credentialed: set[str] = field(default_factory=set)
    sources: dict[str, list[str]] = field(default_factory=dict)  # task -> where its documents came from
    longest: int = 0  # the longest exact field, in words: longer segments cannot match one
    starts: set[tuple[int, ...]] = field(default_factory=set)  # the first three words of every kept run
    digest: str = ""

    def fingerprint(self) -> str:
        return self.digest

    def settings(self) -> dict[str, Any]:
        return {"matcher_version": VERSION, "ngram": self.n, "min_words": self.min_words, "share": self.share}


def _ids(index: Index, tokens: Sequence[str]) -> tuple[int, ...]:
    """Word ids for the evaluation side, growing the vocabulary."""
    return tuple(index.vocab.setdefault(w, len(index.vocab)) for w in tokens)


def _boilerplate(refs_by_key: dict[int, list[Ref]], docs: Mapping[str, int], share: float) -> set[int]:
    """Keys found in more than `share` of a task's documents (and in more than one of them)."""
    drop = set()
    for key, refs in refs_by_key.items():
        per_task: dict[str, set[str]] = defaultdict(set)
        for task, doc, _ in refs:
            per_task[task].add(doc)
        if any(len(ds) > max(1, share * docs.get(t, 0)) for t, ds in per_task.items()):
            drop.add(key)
    return drop


def build(
    tasks: Iterable[tuple[str, bool, str, Sequence[EvalDoc]]],
    n: int = NGRAM,
    min_words: int = MIN_WORDS,
    share: float = SHARED_SHARE,
) -> Index:
    """The index of every task's documents: (task name, credentialed, template text, documents)."""
    if n < 3:
        from mibe.types import MibeError

        raise MibeError(f"n-gram length {n}: at least 3 words (13 is the default)")
    index = Index(n=n, min_words=min_words, share=share)
    exact: dict[int, list[Ref]] = defaultdict(list)
    grams: dict[int, list[Ref]] = defaultdict(list)
    opening: dict[int, tuple[int, ...]] = {}
    template_grams: set[int] = set()
    digest = hashlib.sha256(repr(index.settings()).encode())
    for task, credentialed, template, docs in tasks:
        if credentialed:
            index.credentialed.add(task)
        index.docs[task] = index.docs.get(task, 0) + len(docs)
        fixed = _ids(index, words(_JINJA.sub(" ", template)))
        template_grams |= {hash(fixed[i : i + n]) for i in range(len(fixed) - n + 1)}
        for doc in docs:
            if doc.published:
                index.published.add((task, doc.id))
            golds = [_ids(index, words(g)) for g in doc.golds if words(g)]
            index.golds[(task, doc.id)] = golds
            for name, text in doc.fields.items():
                ids = _ids(index, words(text))
                digest.update(repr((task, doc.id, name, ids)).encode())
                ref = (task, doc.id, name)
                if len(ids) >= min_words:
                    exact[hash(ids)].append(ref)
                    index.longest = max(index.longest, len(ids))
                runs = {hash(ids[i : i + n]): ids[i : i + 3] for i in range(len(ids) - n + 1)}
                for key, first in runs.items():
                    grams[key].append(ref)
                    opening[key] = first
    dropped = _boilerplate(exact, index.docs, share)
    index.exact = {k: v for k, v in exact.items() if k not in dropped}
    dropped = _boilerplate(grams, index.docs, share) | template_grams
    index.grams = {k: v for k, v in grams.items() if k not in dropped}
    index.starts = {opening[k] for k in index.grams}
    index.digest = "sha256:" + digest.hexdigest()[:16]
    return index


# ----------------------------------------------------------------------------- corpus side


def _part_segments(index: Index, part: str) -> tuple[list[int], list[tuple[int, int]]]:
    """A part's word ids and its segments as (start, end) word positions: the part, lines, sentences
    (each also without a leading label such as "Question:")."""
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    get = index.vocab.get
    for line in part.split("\n"):
        start = len(ids)
        for sentence in _SENTENCE.split(line):
            begin = len(ids)
            ids.extend(map(get, words(sentence)))  # None: a word no evaluation document uses
            spans.append((begin, len(ids)))
            label = _LABEL.match(sentence)
            if label:  # the segment without its label: "Question: <the question>"
                spans.append((begin + len(words(label.group(0))), len(ids)))
        spans.append((start, len(ids)))
    spans.append((0, len(ids)))
    return ids, spans


def _answer_beside(index: Index, ref: Ref, after: Sequence[int]) -> bool:
    """The gold answer within the words that follow a matched question (same turn or the next)."""
    for gold in index.golds.get(ref[:2], ()):
        window = after[: len(gold) + 8]
        if any(tuple(window[i : i + len(gold)]) == gold for i in range(len(window) - len(gold) + 1)):
            return True
    return False


def _exact_hits(index: Index, parts_ids: list[list[int]], spans: list[list[tuple[int, int]]]) -> list[Hit]:
    hits = []
    for p, (ids, part_spans) in enumerate(zip(parts_ids, spans, strict=True)):
        for begin, end in set(part_spans):
            if not index.min_words <= end - begin <= index.longest:
                continue
            segment = tuple(ids[begin:end])
            refs = index.exact.get(hash(segment)) if None not in segment else None
            for ref in refs or ():
                after = ids[end:] + (parts_ids[p + 1] if p + 1 < len(parts_ids) else [])
                how = "question + answer" if _answer_beside(index, ref, after) else "exact field"
                hits.append(Hit(*ref, how, (ref[0], ref[1]) in index.published))
    return hits


def _gram_hits(index: Index, ids: Sequence[int | None]) -> list[Hit]:
    n, grams, starts, hits = index.n, index.grams, index.starts, []
    last = len(ids) - n + 1
    # Only a window whose first three words open some indexed run is hashed (the scan's hot loop).
    candidates = [i for i, key in enumerate(zip(ids[:last], ids[1:], ids[2:], strict=False)) if key in starts]
    for i in candidates:
        window = tuple(ids[i : i + n])
        if None in window:
            continue
        for ref in grams.get(hash(window), ()):
            hits.append(Hit(*ref, "n-gram run", (ref[0], ref[1]) in index.published))
    return hits


def match(parts: Sequence[str], index: Index) -> list[Hit]:
    """The evaluation documents one corpus document touches, once each, by its strongest evidence.

    `parts` are the document's pieces in order: conversation turns, or one text."""
    parts_ids, spans = [], []
    for part in parts:
        ids, part_spans = _part_segments(index, part)
        parts_ids.append(ids)
        spans.append(part_spans)
    found = _exact_hits(index, parts_ids, spans)
    for ids in parts_ids:
        found += _gram_hits(index, ids)
    best: dict[tuple[str, str], Hit] = {}
    for hit in found:
        kept = best.get((hit.task, hit.doc))
        if kept is None or HOWS.index(hit.how) < HOWS.index(kept.how):
            best[(hit.task, hit.doc)] = hit
    return [best[k] for k in sorted(best)]


def match_batch(texts: Sequence[Sequence[str] | str], index: Index) -> list[list[Hit]]:
    """`match` over a batch of corpus documents (a string, or its parts): the engine-neutral unit."""
    return [match([t] if isinstance(t, str) else list(t), index) for t in texts]


# ----------------------------------------------------------------------------- evaluation side


def _published_lines(query: str, template: str) -> dict[str, str]:
    """The lines of a rendered Me-LLaMA `query` without the template's fixed text."""
    fixed = [words(line) for chunk in _JINJA.split(template) for line in chunk.split("\n")]
    fixed = [f for f in fixed if f]
    out = {}
    for number, line in enumerate(query.split("\n"), 1):
        pair = _NLI.search(line)
        if pair:  # the premise and the hypothesis are each a field
            out[f"query line {number} premise"] = pair.group(1).strip()
            out[f"query line {number} hypothesis"] = pair.group(2).strip()
            continue
        tokens = words(line)
        if not tokens or tokens in fixed:
            continue
        prefix = max((f for f in fixed if tokens[: len(f)] == f), key=len, default=[])
        if len(tokens) > len(prefix):
            out[f"query line {number}"] = " ".join(tokens[len(prefix) :])
    return out


def _split_nli(fields: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, text in fields.items():
        pair = _NLI.search(text)
        if pair:
            out[f"{name} premise"], out[f"{name} hypothesis"] = pair.group(1).strip(), pair.group(2).strip()
        else:
            out[name] = text
    return out


def _default_fields(task: Any, doc: Any) -> dict[str, str]:
    """Every text field the template reads; `options` only joined to its stem."""
    skip = {"id", "options", "__key__", "__where__", "invented"}
    if task.answer_type not in ("text", "span"):
        skip.add(task.target)  # a label, not a field
    fields = {k: v for k, v in doc.fields.items() if isinstance(v, str) and k not in skip}
    options = _options_text(doc)
    if isinstance(options, str) and isinstance(doc.fields.get("text"), str):
        fields["text + options"] = f"{doc.fields['text']}\n{options}"
    return fields


def _options_text(doc: Any) -> Any:
    """A document's options as the lines its prompt shows them (a hook's option list is printed)."""
    from mibe import prompts

    return prompts.options_text(doc.fields.get("options"))


def _golds(task: Any, doc: Any) -> tuple[str, ...]:
    from mibe import prompts

    golds = [prompts.shot_answer(doc)]
    options = _options_text(doc)
    if task.answer_type == "letter" and isinstance(options, str):
        for line in options.split("\n"):
            found = _OPTION.match(line)
            if found and found.group(1).upper() == str(doc.gold).upper():
                golds.append(found.group(2))
    return tuple(golds)


def eval_doc(task: Any, doc: Any, hook: Any = None) -> EvalDoc:
    """A task's document as the matcher sees it: the task file's `match_fields:`, else the hook's
    `match_fields(doc)`, else the defaults (published rows: the query's lines)."""
    from mibe.types import MibeError

    chosen = getattr(task, "match_fields", ())
    if chosen and doc.query is None:
        missing = [f for f in chosen if not isinstance(doc.fields.get(f), str)]
        if missing:
            have = ", ".join(sorted(k for k, v in doc.fields.items() if isinstance(v, str)))
            raise MibeError(
                f"{task.path}: field 'match_fields': document {doc.id} has no text field "
                f"'{missing[0]}' (has {have}); name fields the task's documents hold"
            )
        fields = {f: doc.fields[f] for f in chosen}
    elif doc.query is not None:
        fields = _published_lines(doc.query, task.template)
    elif hook is not None and hasattr(hook, "match_fields"):
        fields = dict(hook.match_fields(doc))
    else:
        fields = _default_fields(task, doc)
    golds = _golds(task, doc)
    if task.answer_type == "text" and "answer" not in fields:  # a summary's gold text is distinctive too
        fields["answer"] = golds[0]
    return EvalDoc(str(doc.id), _split_nli(fields), golds, doc.query is not None)
