"""What a judge is asked and what it answered (docs/judges.md): the settings of a judging pass, the
judge prompt fitted to the judge's context, one request per document, and the calls, whose replies
are cached in the run folder (`judges/<task>.<judge key>.jsonl`, keyed by a hash of the exact prompt
sent) so a rerun sends nothing and a killed judging run resumes where it stopped. Which tasks are
judged, by whom, and what is written: mibe/runner/judge_run.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibe import prompts
from mibe.backends import policy
from mibe.backends.endpoint import Machine
from mibe.backends.spec import ModelSpec
from mibe.runfolder import writer
from mibe.runner import batches
from mibe.scoring import judge_scoring
from mibe.scoring.judge_scoring import Rubric
from mibe.types import Backend, Doc, MibeError, Request

DEFAULT_MAX_NEW_TOKENS = 256  # four "name: N" lines need ~30; the rest is room for judges that reason first


@dataclass(frozen=True)
class Settings:
    """What shapes a judging pass, whichever command started it."""

    specs: tuple[ModelSpec, ...]
    order: str = "reference_first"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    limit: int | None = None  # judge the first N documents of each task
    seed: int = 1234
    n_boot: int = 1000
    redact: bool = False  # --redact-samples: the cache keeps scores, not the judges' replies
    human_ratings: str | None = None
    machine: Machine = field(default_factory=Machine)  # the command's device, dtype, batch size and trust
    grants: tuple[policy.Authorisation, ...] = ()  # --allow-remote-credentialed, per endpoint
    device_given: bool = True  # False: `mibe judge` without --device runs where the run ran, if it can


@dataclass(frozen=True)
class Item:
    """One task to judge: its rubric (on `task.judge`), results entry and samples."""

    name: str
    task: Any  # mibe.types.Task
    entry: dict[str, Any]
    rows: list[dict[str, Any]]  # every sample, in file order
    private: bool


@dataclass
class Judge:
    spec: ModelSpec
    backend: Backend
    identity: dict[str, Any]  # what makes two judges the same judge (not where it is served)
    chat: bool  # prompts go through the judge's chat template (endpoints: chat/completions)
    admission: policy.Admission  # what the endpoint policy let it receive (results.json: endpoints)


# ------------------------------------------------------------------------------------------ prompts

_MARKS = ("\x00source\x00", "\x00reference\x00", "\x00candidate\x00")


def _template(rubric: Rubric, order: str) -> tuple[str, dict[str, str]]:
    """The judge prompt as a template whose only variables are the three texts (and its literal
    pieces, passed as values so no rubric text is ever read as template syntax)."""
    pieces = re.split("(\x00[a-z]+\x00)", judge_scoring.judge_prompt(rubric, *_MARKS, order=order))
    parts, literals = [], {}
    for i, piece in enumerate(pieces):
        if piece in _MARKS:
            parts.append("{{ " + piece.strip("\x00") + " }}")
        else:
            literals[f"piece{i}"] = piece
            parts.append(f"{{{{ piece{i} }}}}")
    return "".join(parts), literals


def fitted_prompt(
    rubric: Rubric,
    texts: tuple[str, str, str],
    order: str,
    count: Callable[[str], int],
    tokenize: Callable[[str], list[int]],
    detokenize: Callable[[Sequence[int]], str],
    budget: int | None,
    doc_id: str = "judge",
) -> tuple[str, int]:
    """The judge prompt for (source, reference, candidate), the source shortened at its end until the
    prompt fits `budget` tokens, as the evaluated model's prompts are (`prompts.fit`); returns it
    and the number of source tokens removed."""
    template, literals = _template(rubric, order)
    source, reference, candidate = (t.strip() for t in texts)
    fields = {**literals, "source": source, "reference": reference, "candidate": candidate}
    try:
        return prompts.fit(
            template, Doc(doc_id, fields, ""), [], "source", count, tokenize, detokenize, budget
        )
    except MibeError:
        bare = count(prompts.render(template, {**fields, "source": ""}))
        raise MibeError(
            f"document {doc_id}: the judge prompt takes {bare} tokens with no source text at all, more "
            f"than the {budget} the judge leaves for it; use a judge with a longer context, a shorter "
            "rubric or a lower --judge-max-new-tokens"
        ) from None


def _texts(row: dict[str, Any]) -> tuple[str, str, str]:
    # Runs written before samples kept `source` hold the source inside the prompt: show that.
    source = row.get("source") if isinstance(row.get("source"), str) else row.get("prompt") or ""
    return source, str(row.get("gold") or ""), str(row.get("prediction") or "")


def requests_for(
    judge: Judge, rubric: Rubric, rows: Sequence[dict], settings: Settings
) -> tuple[list, int, dict[str, str]]:
    """One request per document, fitted to the judge's context; how many sources were cut; and the
    documents this judge cannot read (document id -> why), which it skips: one over-long candidate or
    reference must not stop the whole jury."""
    backend = judge.backend

    def wrap(text: str) -> str:
        return backend.chat(text, None) if judge.chat else text

    budget = backend.max_context - settings.max_new_tokens if backend.max_context else None
    if budget is not None and budget < 1:  # the reply's room alone fills the context
        raise MibeError(
            f"--judge {judge.spec.text}: its reply may take {settings.max_new_tokens} tokens, all of the "
            f"judge's {backend.max_context}-token context, leaving no room for a prompt; use a judge with a "
            "longer context (or, with `mibe judge`, a lower --judge-max-new-tokens)"
        )
    out, cut, skipped = [], 0, {}
    for row in rows:
        try:
            prompt, removed = fitted_prompt(
                rubric, _texts(row), settings.order, lambda t: len(backend.tokenize(wrap(t))),
                backend.tokenize, backend.detokenize, budget, str(row["id"]),
            )  # fmt: skip
        except MibeError as exc:
            skipped[str(row["id"])] = str(exc)
            continue
        cut += removed > 0
        out.append(Request(str(row["id"]), wrap(prompt), settings.max_new_tokens, ()))
    return out, cut, skipped


# -------------------------------------------------------------------------------------------- calls


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _cached_scores(hit: dict[str, Any], rubric: Rubric) -> dict[str, int | None] | None:
    """A cached call's scores, or None when it holds what this rubric could not produce (another
    criterion, a score off the scale): such a line is discarded and the judge asked again."""
    if isinstance(hit.get("reply"), str):
        return judge_scoring.parse_reply(hit["reply"], rubric)
    stored = hit.get("scores")
    if not isinstance(stored, dict) or set(stored) != set(rubric.names):
        return None
    low, high = rubric.scale
    for v in stored.values():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high):
            return None
    return dict(stored)


def call(
    judge: Judge,
    item: Item,
    requests: list[Request],
    cache_at: tuple[writer.Writer, Path],
    settings: Settings,
) -> tuple[dict[str, dict[str, int | None]], int]:
    """Each document's parsed scores from this judge, from the cache where the same prompt was asked
    before; the rest are sent, and cached batch by batch. The cache is read only from the folder being
    written (a folder someone sent may say anything). Returns them and how many were sent."""
    rubric, (out_folder, path) = item.task.judge, cache_at
    rows = writer.read_cache(path, out_folder)
    cache = {row["key"]: row for row in rows if isinstance(row.get("key"), str)}
    out: dict[str, dict[str, int | None]] = {}
    missing = []
    for r in requests:
        hit = cache.get(_key(r.prompt))
        found = _cached_scores(hit, rubric) if hit is not None else None
        if found is not None:
            out[r.doc_id] = found
        else:
            missing.append(r)
    if not missing:
        return out, 0
    backend, machine = judge.backend, settings.machine
    chunk = backend.chunk_size
    lengths = {r.doc_id: len(backend.tokenize(r.prompt)) for r in missing}
    on_accelerator = not chunk and machine.device != "cpu"
    name = f"{item.name} judge {judge.spec.text}"
    for batch, replies in batches.run(
        backend, missing, lengths, chunk or machine.batch_size, on_accelerator, settings.max_new_tokens,
        name,
    ):  # fmt: skip
        lines = []
        for r, reply in zip(batch, replies, strict=True):
            out[r.doc_id] = judge_scoring.parse_reply(reply, rubric)
            line: dict[str, Any] = {"key": _key(r.prompt), "id": r.doc_id, "scores": out[r.doc_id]}
            if not settings.redact:  # redacted runs keep numbers only
                line["reply"] = reply
            lines.append(line)
        writer.append_rows(path, lines, private=item.private)
    return out, len(missing)
