"""`--parser model --extractor MODEL`: a second model maps each free-form final answer of a choice,
letter or multi-label task to the task's labels, by log-likelihood over the label strings
(constrained: it never generates), through any backend (docs/chat-and-reasoning.md).

Choice and letter tasks: one request per answer, the options being the task's labels plus "none";
the most likely option is the prediction ("none": missing, a parse failure). Multi-label tasks: one
yes/no request per label. Each answer's result is cached in the run folder, keyed by the extractor
spec, the prompt and the answer, so a rerun (or a resumed run) asks nothing twice. The cache holds
hashes and labels, never text, written owner-only for credentialed tasks as their samples are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibe.backends import devices, factory, policy, traces
from mibe.backends import spec as model_spec
from mibe.backends.endpoint import Endpoint, Machine, second
from mibe.runfolder import folder, record, writer
from mibe.runfolder.rescore import extraction_summary
from mibe.scoring import kinds
from mibe.types import Backend, MibeError, Request, Task

LABELLED = ("choice", "letter", "multi_label")
QUESTION_CHARS = 1500  # the end of the prompt, where the task's instruction and options sit
ANSWER_CHARS = 1500


def _a_reading(value: Any, task: Task) -> bool:
    """What the extractor can answer: one of the task's labels or None, no answer (a list of labels for
    a multi-label task)."""
    if task.answer_type == "multi_label":
        return isinstance(value, list) and all(isinstance(v, str) and v in task.choices for v in value)
    return value is None or (isinstance(value, str) and value in task.choices)


def endpoint_of(text: str | None, machine: Machine) -> Endpoint:
    if not text:
        raise MibeError("--parser model: needs --extractor MODEL (hf:PATH, vllm:PATH, openai:URL#NAME)")
    return second(model_spec.parse(text, "--extractor"), "extractor", "--extractor", machine)


def sees(task: Task) -> bool:
    """Whether the extractor reads this task's answers (and so its text)."""
    return task.answer_type in LABELLED


def cache_path(run_dir: Path, task: str) -> Path:
    return run_dir / "extractions" / f"{task}.jsonl"


def none_option(choices: Sequence[str]) -> str:
    # "none" names no label; a task whose own label is "none" gets a longer word for it.
    return "none of them" if any(c.strip().lower() == "none" for c in choices) else "none"


def extractor_prompt(question: str, answer: str, choices: Sequence[str], label: str | None = None) -> str:
    """What the extractor reads: the end of the question, the answer, and the options (or, for a
    multi-label task, one label to confirm)."""
    head = (
        "Below is the end of a question put to a model, and the model's answer.\n\n"
        f"Question:\n{question[-QUESTION_CHARS:].strip()}\n\nAnswer:\n{answer[:ANSWER_CHARS].strip()}\n\n"
    )
    if label is None:
        options = ", ".join([*choices, none_option(choices)])
        return head + f"Options: {options}\nThe option the answer chooses is:"
    return head + f'Does the answer name the label "{label}"? Answer yes or no:'


@dataclass
class Extractor:
    spec: str
    backend: Backend
    seen: dict[str, Any] = field(default_factory=dict)  # cache key -> the extracted value
    asked: int = 0  # answers sent to the extractor (not found in the cache)
    cached: int = 0
    read_from: set[Path] = field(default_factory=set)  # cache files already read

    @classmethod
    def load(cls, spec: str, admission: policy.Admission) -> Extractor:
        """The extractor named `spec`, built by the one factory once the policy admitted it."""
        return cls(spec, factory.build(admission))

    def key(self, prompt: str, answer: str) -> str:
        return hashlib.sha256(json.dumps([self.spec, prompt, answer]).encode("utf-8")).hexdigest()[:32]

    def _read(self, path: Path, task: Task) -> None:
        if path in self.read_from:  # read once; what this run adds is in `seen` already
            return
        self.read_from.add(path)
        for row in folder.read_samples(path, record.ExtractionCacheRow):
            if _a_reading(row.get("value"), task):  # anything else is asked again, never scored
                self.seen.setdefault(row["id"], row["value"])

    def apply(self, task: Task, rows: list[dict], run_dir: Path, private: bool) -> None:
        """Set each generated row's prediction, parse_failed and score from the extractor; the strict
        parse stays as `strict_prediction`. Rows of other kinds are left as the strict parser read them."""
        if task.answer_type not in LABELLED:
            return
        self._read(cache_path(run_dir, task.name), task)
        todo: dict[str, tuple[str, str]] = {}
        for row in rows:
            answer = traces.answer_of(row)
            row["strict_prediction"] = row["prediction"]
            if answer is not None and answer.strip():
                k = self.key(row["prompt"], answer)
                row["extraction_key"] = k
                if k not in self.seen:
                    todo[k] = (row["prompt"], answer)
        self.cached += sum(1 for r in rows if r.get("extraction_key") not in (None, *todo))
        fresh = self._ask(task, todo)
        if fresh:
            writer.append_rows(cache_path(run_dir, task.name), fresh, private=private)
        nothing: Any = [] if task.answer_type == "multi_label" else None
        for row in rows:
            found = self.seen.get(row.pop("extraction_key", None), nothing)
            value = tuple(found) if isinstance(found, list) else found
            row["prediction"] = found
            row["parse_failed"] = found is None or found == [] or bool(row.get("reasoning_truncated"))
            row["score"] = kinds.doc_score(
                task.answer_type, _gold(row["gold"]), value, "model", row["parse_failed"]
            )

    def _ask(self, task: Task, todo: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
        if not todo:
            return []
        self.asked += len(todo)
        keys = list(todo)
        if task.answer_type == "multi_label":
            requests = [
                Request(k, self._fit(extractor_prompt(*todo[k], task.choices, label)), 0, (), (" yes", " no"))
                for k in keys
                for label in task.choices
            ]
            scores = self.backend.loglikelihood(requests)
            width = len(task.choices)
            values: list[Any] = [
                [
                    c
                    for c, s in zip(task.choices, scores[i * width : (i + 1) * width], strict=True)
                    if s[0] > s[1]
                ]
                for i in range(len(keys))
            ]
        else:
            options = (*task.choices, none_option(task.choices))
            conts = tuple(" " + o for o in options)
            requests = [
                Request(k, self._fit(extractor_prompt(*todo[k], task.choices)), 0, (), conts) for k in keys
            ]
            scores = self.backend.loglikelihood(requests)
            best = [max(range(len(options)), key=lambda i, s=s: s[i]) for s in scores]
            values = [task.choices[b] if b < len(task.choices) else None for b in best]
        rows = [{"id": k, "value": v, "extractor": self.spec} for k, v in zip(keys, values, strict=True)]
        self.seen.update((k, v) for k, v in zip(keys, values, strict=True))
        return rows

    def _fit(self, text: str) -> str:
        """The prompt cut from the front (the question's start goes first) until it fits the
        extractor's context with room for the longest option."""
        limit = self.backend.max_context
        while limit and len(self.backend.tokenize(text)) > limit - 16 and len(text) > 200:
            text = text[len(text) // 4 :]
        return text


def _gold(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def summary(spec: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """results.json's `extraction`: the extractor, and how often it agrees with the strict parser."""
    return extraction_summary(spec, rows)


def loader(spec: str, run_dir: str, device: str | None, allow_remote: Sequence[str]) -> Callable[..., Any]:
    """`mibe rescore RUN --parser model --extractor SPEC`: what loads the extractor, and only it (never
    the evaluated model), once rescore knows which credentialed tasks it will hand over; its calls are
    cached in the new folder. The cache RUN holds is never read: a run folder may come from anyone,
    and a cached label is a score taken on trust."""
    from mibe.runfolder import saved

    settings = saved.read_run(run_dir).results.get("config") or {}
    machine = Machine(device=devices.for_rerun(device, settings), dtype=settings.get("dtype", "auto"))
    endpoint = endpoint_of(spec, machine)
    grants = policy.authorisations(allow_remote)
    policy.check_named(grants, [endpoint])  # an authorisation naming another URL: before reading on

    def load(credentialed: Sequence[str], origin: Path, out_dir: Path) -> Any:
        admission = policy.admit(endpoint, credentialed, grants)
        found = Extractor.load(spec, admission)

        def apply(task: saved.SavedTask, rows: list) -> None:
            found.apply(task.task, rows, out_dir, task.private)

        apply.spec = found.spec  # type: ignore[attr-defined]
        apply.admission = admission  # type: ignore[attr-defined]
        apply.describe = found.backend.describe()  # type: ignore[attr-defined]
        return apply

    return load
