"""Render task templates (sandboxed Jinja), few-shot blocks and the model's chat template."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from mibe.types import MibeError


# Shared by the exam-question hooks (MedQA, MedMCQA).
def question_text(question: object) -> str:
    """The question as Me-LLaMA's preprocessing writes it: '?' appended unless it ends in '?' or '.'."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question: missing or empty")
    text = question.rstrip()
    if not text.endswith(("?", ".")):
        text += "?"
    return text


def present(value: object) -> bool:
    """An option that is there: not null, not NaN, not blank (a 4-option row of a 5-option table)."""
    if value is None or (isinstance(value, float) and value != value):
        return False
    return not (isinstance(value, str) and not value.strip())


def options_block(pairs: Sequence[tuple[str, object]]) -> str:
    """`A. text` lines of the options that are present; a missing option is left out, never 'None'."""
    return "\n".join(f"{letter}. {text}" for letter, text in pairs if present(text))


def option_list(pairs: Sequence[tuple[str, object]]) -> list[dict[str, Any]]:
    """A letter task's options as a hook hands them to the template: a list of `{"letter", "text"}`
    in the order shown, one per letter; an option the row lacks (null, NaN, blank: a 4-option row of
    a 5-option table) keeps its letter with text None and is not printed. The built-in templates
    print it with `OPTIONS_LOOP`; `--choice-permutations` moves the texts among the letters."""
    return [{"letter": str(letter), "text": text if present(text) else None} for letter, text in pairs]


# The `A. text` lines of an option list, one a line, as Me-LLaMA's templates print them (end the
# line with the loop: the line after `{% endfor %}` follows the last option's newline).
OPTIONS_LOOP = "{% for o in options if o.text is not none %}{{ o.letter }}. {{ o.text }}\n{% endfor %}"


def is_option_list(value: object) -> bool:
    """A hook's `option_list` (not a data file's list of option texts)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(o, dict) and set(o) == {"letter", "text"} for o in value)
    )


def options_text(value: object) -> object:
    """An option list as the `A. text` lines its template prints (what the documents' fingerprint and
    the contamination matcher read, so both are what they were when hooks handed text); else itself."""
    if is_option_list(value):
        return options_block([(o["letter"], o["text"]) for o in value])  # type: ignore[union-attr]
    return value


def _rotated(options: list, k: int) -> list:
    """The texts moved k places up among the same letters: position i shows option (i + k) mod n."""
    if not is_option_list(options):
        return [*options[k:], *options[:k]]  # a data file's list of texts
    n = len(options)
    return [{"letter": o["letter"], "text": options[(i + k) % n]["text"]} for i, o in enumerate(options)]


def option_letters(doc: Any, choices: Sequence[str]) -> list[str] | None:
    """The letters of a document's options in the order shown; None when its options are not a list
    (Me-LLaMA's pre-rendered `query`, or a task whose template writes the options itself)."""
    options = doc.fields.get("options") if doc.query is None else None
    if is_option_list(options):
        return [o["letter"] for o in options]  # type: ignore[union-attr]
    if isinstance(options, list) and 0 < len(options) <= len(choices):
        return list(choices[: len(options)])
    return None


def check_permutable(task: str, docs: Sequence[Any], choices: Sequence[str], k: int) -> None:
    """Refuse `--choice-permutations k` in one line before anything is sent: every document must hand
    its options as a list, with at least k of them (more rotations would repeat an ordering)."""
    for doc in docs:
        letters = option_letters(doc, choices)
        if doc.query is not None:
            raise MibeError(
                f"{task}: --choice-permutations {k}: document {doc.id} is a Me-LLaMA row with a pre-rendered "
                "`query`, whose options cannot be reordered; point --data at the original release"
            )
        if letters is None or doc.gold not in letters:
            raise MibeError(
                f"{task}: --choice-permutations {k}: document {doc.id} has no `options` list holding its "
                "gold (a hook hands mibe.prompts.option_list, a data file a list of option texts)"
            )
        if len(letters) < k:
            raise MibeError(
                f"{task}: --choice-permutations {k}: document {doc.id} has {len(letters)} options, so only "
                f"{len(letters)} orderings differ; use --choice-permutations {len(letters)} or fewer"
            )


def permute(doc: Any, k: int, choices: Sequence[str]) -> Any:
    """The document under cyclic rotation k of its options (k = 0: the document itself): position i
    shows the option that was at (i + k) mod n, and the gold letter follows its option."""
    letters = option_letters(doc, choices)
    if letters is None or doc.gold not in letters:
        raise ValueError(f"document {doc.id}: its options are not a list that holds the gold {doc.gold!r}")
    if k % len(letters) == 0:
        return doc
    moved = _rotated(doc.fields["options"], k)
    gold = letters[(letters.index(doc.gold) - k) % len(letters)]
    return replace(doc, fields={**doc.fields, "options": moved}, gold=gold)


@lru_cache(maxsize=1)
def _env() -> SandboxedEnvironment:
    # Trailing newlines are part of MIBE's prompts (the templates in prompts/), so Jinja must keep them.
    # finalize: a null field (JSON null, a Parquet null) renders as nothing, never as the word "None".
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=lambda value: "" if value is None else value,
    )


@lru_cache(maxsize=256)
def compile_template(source: str):
    try:
        return _env().from_string(source)
    except TemplateError as exc:
        raise MibeError(f"template syntax error: {exc}; fix the Jinja syntax") from exc


def render(source: str, fields: Mapping[str, Any]) -> str:
    try:
        return compile_template(source).render(**fields)
    except UndefinedError as exc:
        have = ", ".join(sorted(fields)) or "none"
        raise MibeError(f"template variable missing: {exc.message}; the document has: {have}") from exc
    except SecurityError as exc:  # the sandbox refused something the template tried
        raise MibeError(f"the template did something the sandbox forbids ({exc}); fix the template") from None
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
        raise MibeError(f"the template failed ({type(exc).__name__}: {exc}); fix the template") from None


def template_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def gold_text(gold: str | tuple[str, ...]) -> str:
    """How a gold answer is written after a shot's prompt: HoC's hallmarks joined by ";" with no space,
    exactly as the published rows write them."""
    return ";".join(gold) if isinstance(gold, tuple) else str(gold)


def shot_answer(doc) -> str:
    # A published row's shot is its query, a space and its own `answer` text (docs/run-folder.md).
    if doc.query is not None and isinstance(doc.fields.get("answer"), str):
        return doc.fields["answer"]
    return gold_text(doc.gold)


def doc_prompt(template: str, doc) -> str:
    # Published rows arrive rendered: their query is the benchmark's exact prompt.
    return doc.query if doc.query is not None else render(template, doc.fields)


def compose(template: str, doc, shots: Sequence) -> str:
    """Few-shot block (docs/run-folder.md): each shot's prompt, a space, its answer, a blank line."""
    block = "".join(f"{doc_prompt(template, shot)} {shot_answer(shot)}\n\n" for shot in shots)
    return block + doc_prompt(template, doc)


def fit(
    template: str,
    doc,
    shots: Sequence,
    field: str,
    count: Callable[[str], int],
    tokenize: Callable[[str], list[int]],
    detokenize: Callable[[Sequence[int]], str],
    budget: int | None,
) -> tuple[str, int]:
    """The prompt, shortened inside the document text until it fits `budget` tokens.

    Never the instruction: template rows lose the end of their long field; published rows (which
    arrive rendered) lose the middle of `query`, keeping the instruction and the answer cue.
    Returns the prompt and the number of document tokens removed.
    """
    prompt = compose(template, doc, shots)
    if budget is None:
        return prompt, 0
    n = count(prompt)
    if n <= budget:
        return prompt, 0
    published = doc.query is not None
    if published:
        name = "query"
        text = doc.query
    else:
        name = field if isinstance(doc.fields.get(field), str) else _longest_field(doc.fields)
        text = doc.fields[name]
    ids = tokenize(text)
    removed = 0
    for _ in range(8):
        excess = n - budget
        if excess <= 0:
            return prompt, removed
        drop = min(len(ids), excess + 2 + removed // 50)
        if drop <= 0:
            break
        if published:
            start = max(0, (len(ids) - drop) // 2)
            head, tail = detokenize(ids[:start]), detokenize(ids[start + drop :])
            ids = ids[:start] + ids[start + drop :]
            new_text = f"{head} ... {tail}"
        else:
            ids = ids[: len(ids) - drop]
            new_text = detokenize(ids)
        removed += drop
        new_doc = (
            replace(doc, query=new_text) if published else replace(doc, fields={**doc.fields, name: new_text})
        )
        prompt = compose(template, new_doc, shots)
        n = count(prompt)
    if n > budget:
        raise MibeError(
            f"document {doc.id}: the prompt needs {n} tokens but the model allows {max(budget, 0)} even "
            "with its document text removed (the context minus the answer's tokens); use fewer shots, "
            "a lower --max-new-tokens or a longer-context model"
        )
    return prompt, removed


def _longest_field(fields: Mapping[str, Any]) -> str:
    strings = [(len(v), k) for k, v in fields.items() if isinstance(v, str)]
    if not strings:
        raise MibeError("no text field to shorten; set `truncate:` in the task file")
    return max(strings)[1]


def source_text(doc, field: str) -> str:
    """The document text a summary is judged against: the task's `truncate` field (the long input),
    else a published row's rendered prompt, which holds it (docs/judges.md)."""
    value = doc.fields.get(field)
    if isinstance(value, str):
        return value
    return doc.query if doc.query is not None else doc.fields[_longest_field(doc.fields)]
