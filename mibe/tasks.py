"""Find, load and validate task files: the built-in `tasks/` plus any YAML path the user names."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mibe import names, resources, userfiles
from mibe.prompts import compile_template, template_hash
from mibe.scoring import judge_scoring, kinds
from mibe.types import TASK_NAME, MibeError, Task

_KEYS = {
    "name",
    "cluster",
    "description",
    "dataset",
    "credentialed",
    "access",
    "template",
    "target",
    "answer",
    "truncate",
    "generation",
    "metrics",
    "version",
    "domain",
    "judge",
    "match_fields",
}
DOMAINS = ("medical", "general")
_DATASET_KEYS = {"source", "split", "fewshot_split", "revision", "config"}
ANSWER_KEYS = {"type", "choices", "paper_match"}
GENERATION_KEYS = {"max_new_tokens", "stop"}


def _fail(path: Path, field: str, message: str) -> MibeError:
    return MibeError(f"{path}: field '{field}': {message}")


def _near(key: str, allowed: Iterable[str]) -> str:
    match = difflib.get_close_matches(key, sorted(allowed), n=1)
    return f"did you mean '{match[0]}'?" if match else f"allowed: {', '.join(sorted(allowed))}"


def _check_keys(path: Path, where: str, got: dict, allowed: set[str]) -> None:
    for key in got:
        if key not in allowed:
            raise _fail(path, f"{where}{key}", f"unknown key; {_near(str(key), allowed)}")


class _NoAliases(yaml.SafeLoader):
    """safe_load without anchors and aliases: a few lines of `*a` can expand to gigabytes (a YAML
    alias bomb), and task files never need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"__alias__ at line {mark.line + 1}")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # PyYAML keeps the last of two equal keys without a word: two `metrics:` lines would lose one.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # an unhashable key is PyYAML's own error, next
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    text = userfiles.read_text(path, "task file")
    try:
        raw = yaml.load(text, Loader=_NoAliases)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        if str(exc).startswith("__alias__"):
            where = str(exc).removeprefix("__alias__")
            raise MibeError(
                f"{path}: YAML alias{where}: anchors and aliases (&name, *name) are not allowed in task "
                "files; write the value out"
            ) from None
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise MibeError(f"{path}: YAML error{where}: {problem}; fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise MibeError(f"{path}: a task file must be a YAML mapping of keys (name, dataset, ...)")
    return raw


def _template(path: Path, spec: Any) -> tuple[str, str]:
    if not isinstance(spec, str) or not spec.strip():
        raise _fail(path, "template", "give a name in prompts/, a .jinja path or inline Jinja")
    if "{{" in spec or "\n" in spec:
        return spec, "inline"
    if spec.endswith(".jinja"):
        file = (path.parent / spec).resolve()
        if not file.is_file():
            raise _fail(path, "template", f"{file} does not exist")
        return userfiles.read_text(file, "template file"), str(file)
    file = resources.prompts_dir() / f"{spec}.jinja"
    if not file.is_file():
        known = [p.stem for p in resources.prompts_dir().glob("*.jinja")]
        raise _fail(path, "template", f"no prompts/{spec}.jinja; {_near(spec, known)}")
    return file.read_text(encoding="utf-8"), spec


def _answer(path: Path, answer: Any) -> tuple[str, list[str], str]:
    kind = answer.get("type") if isinstance(answer, dict) else None
    if not isinstance(kind, str) or kind not in kinds.KINDS:
        raise _fail(path, "answer.type", f"required; one of {', '.join(kinds.ANSWER_TYPES)}")
    _check_keys(path, "answer.", answer, ANSWER_KEYS)
    choices = answer.get("choices") or []
    if isinstance(choices, list) and any(isinstance(c, bool) for c in choices):
        raise _fail(path, "answer.choices", "quote yes/no/true/false labels: YAML reads them as booleans")
    if not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices):
        raise _fail(path, "answer.choices", "a list of label strings")
    if kinds.get(answer["type"]).labelled and len(choices) < 2:
        raise _fail(path, "answer.choices", f"type {answer['type']} needs at least two choices")
    if len({c.lower() for c in choices}) != len(choices):
        raise _fail(path, "answer.choices", "labels must differ (case-insensitively)")
    spaced = [c for c in choices if c != c.strip()]
    if spaced:  # golds are read stripped: such a label could never be matched
        raise _fail(path, "answer.choices", f"{spaced[0]!r} starts or ends with a space; write it without")
    if kind == "letter" and not all(len(c) == 1 and c.isalpha() for c in choices):
        raise _fail(path, "answer.choices", "a letter task's choices are option letters, e.g. [A, B, C, D]")
    match = answer.get("paper_match", "first")
    if match not in kinds.PAPER_MATCHES:
        raise _fail(path, "answer.paper_match", f"one of {', '.join(kinds.PAPER_MATCHES)}")
    return answer["type"], choices, match


def _cluster(path: Path, cluster: Any) -> str | None:
    if cluster is None:
        return None
    if not isinstance(cluster, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", cluster):
        raise _fail(path, "cluster", "the field that groups documents made together, e.g. note_id")
    return cluster


# The cluster key changes no score, only how intervals resample (docs/statistics.md), and
# match_fields only what the contamination matcher compares (docs/contamination.md): they stay out of
# the file's hash, so naming one keeps a task's columns and lets older run folders resume.
_CLUSTER_LINE = re.compile(rb"^(?:cluster|match_fields):[^\n]*(?:\n[ \t]+-[^\n]*)*(\n|$)", re.MULTILINE)


def file_hash(path: Path) -> str:
    return hashlib.sha256(_CLUSTER_LINE.sub(b"", path.read_bytes())).hexdigest()[:16]


def _target(path: Path, target: Any) -> str:
    if not isinstance(target, str) or not target.strip():
        raise _fail(path, "target", "the name of the data's gold column, e.g. label")
    return target


def _generation(path: Path, generation: Any) -> tuple[int, list[str]]:
    if not isinstance(generation, dict):
        raise _fail(path, "generation", "a mapping such as {max_new_tokens: 32, stop: ['\\n\\n']}")
    _check_keys(path, "generation.", generation, GENERATION_KEYS)
    max_new = generation.get("max_new_tokens", 32)
    if isinstance(max_new, bool) or not isinstance(max_new, int) or max_new < 1:
        raise _fail(path, "generation.max_new_tokens", "a positive integer")
    stop = generation.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise _fail(path, "generation.stop", "a list of non-empty strings")
    return max_new, stop


def _metrics(path: Path, metrics: Any, answer_type: str) -> list[str]:
    """The task's metrics: known names that fit its answer type (a choice task has no ROUGE-L)."""
    if not isinstance(metrics, list) or not metrics:
        raise _fail(path, "metrics", f"required list; known: {', '.join(kinds.METRICS)}")
    kind = kinds.get(answer_type)
    if len({str(m) for m in metrics}) != len(metrics):
        raise _fail(path, "metrics", "a metric is listed twice; list each once")
    for metric in metrics:
        if not isinstance(metric, str) or metric not in kinds.METRICS:
            raise _fail(path, "metrics", f"unknown metric '{metric}'; {_near(str(metric), kinds.METRICS)}")
        if not kinds.fits(kind.name, metric):
            takes = ", ".join(kind.metrics)
            raise _fail(path, "metrics", f"'{metric}' does not fit answer type {kind.name}; it takes {takes}")
    return metrics


def _dataset(path: Path, dataset: Any) -> tuple[dict[str, Any], str | None]:
    """The `dataset:` mapping, and its source with a local path resolved against the task file."""
    if not isinstance(dataset, dict):
        raise _fail(path, "dataset", "required mapping with 'source' (a hub id or a local path)")
    _check_keys(path, "dataset.", dataset, _DATASET_KEYS)
    source = dataset.get("source")
    if source is not None and not isinstance(source, str):
        raise _fail(path, "dataset.source", "a hub id or a path relative to the task file")
    if dataset.get("config") is not None and not isinstance(dataset["config"], str):
        raise _fail(path, "dataset.config", "a hub dataset's configuration name, e.g. all")
    if isinstance(source, str):  # the name rule (mibe/names.py): a hub id never resolves to a folder
        names.check_source(source, f"{path}: field 'dataset.source'")
        if names.is_local_source(source):
            source = str((path.parent / source).expanduser().resolve())
    return dataset, source


def _judge(path: Path, raw: dict[str, Any], answer_type: str) -> judge_scoring.Rubric | None:
    """The `judge:` rubric; only free-text answers are judged (labels have exact metrics)."""
    if "judge" not in raw:
        return None
    if answer_type != "text":
        raise _fail(
            path, "judge", f"only tasks with answer type text are judged, not {answer_type}; remove it"
        )
    return judge_scoring.parse_rubric(raw["judge"], str(path))


def _match_fields(path: Path, value: Any) -> tuple[str, ...]:
    """The document fields the contamination matcher compares (docs/contamination.md)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _fail(path, "match_fields", "a list of document field names, e.g. [question, context]")
    return tuple(value)


def _domain(path: Path, domain: Any) -> str:
    if domain not in DOMAINS:
        raise _fail(path, "domain", f"one of {', '.join(DOMAINS)} (default medical)")
    return str(domain)


def load_task(path: str | Path, trusted: bool = True) -> Task:
    """A task file, checked. `trusted=False` (a path a run folder recorded): its hook is not imported."""
    path = Path(path).resolve()
    raw = _read_yaml(path)
    _check_keys(path, "", raw, _KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(TASK_NAME, name):
        raise _fail(path, "name", "required; lower-case letters, digits and _ only")
    names.check_task_name(name, f"{path}: field 'name'")
    dataset, source = _dataset(path, raw.get("dataset"))
    answer_type, choices, paper_match = _answer(path, raw.get("answer"))
    generation = raw.get("generation")
    max_new, stop = _generation(path, {} if generation is None else generation)
    metrics = _metrics(path, raw.get("metrics"), answer_type)
    version = raw.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise _fail(path, "version", "an integer; raise it when the task's scoring changes")
    credentialed = raw.get("credentialed", False)
    if not isinstance(credentialed, bool):
        raise _fail(path, "credentialed", "true or false")
    domain = _domain(path, raw.get("domain", "medical"))
    access = raw.get("access") or f"dataset source: {source or 'local data only'}"
    source_text, template_name = _template(path, raw.get("template"))
    try:
        compile_template(source_text)
    except MibeError as exc:
        raise _fail(path, "template", str(exc)) from None
    hook = path.with_suffix(".py")
    return Task(
        name=name,
        path=path,
        description=str(raw.get("description", "")).strip(),
        source=source or "",
        split=str(dataset.get("split") or "test"),
        fewshot_split=dataset.get("fewshot_split"),
        revision=dataset.get("revision"),
        config=dataset.get("config"),
        credentialed=credentialed,
        access=" ".join(str(access).split()),
        template=source_text,
        template_name=template_name,
        target=_target(path, raw.get("target", "answer")),
        answer_type=answer_type,
        paper_match=paper_match,
        choices=tuple(choices),
        truncate=str(raw.get("truncate", "text")),
        max_new_tokens=max_new,
        stop=tuple(stop),
        metrics=tuple(metrics),
        version=version,
        hook=hook if trusted and hook.is_file() else None,
        file_hash=file_hash(path),
        template_hash=template_hash(source_text),
        domain=domain,
        cluster=_cluster(path, raw.get("cluster")),
        trusted=trusted,
        judge=_judge(path, raw, answer_type),
        match_fields=_match_fields(path, raw.get("match_fields")),
    )


def builtin_paths() -> dict[str, Path]:
    return names.builtin_tasks()


def _not_a_builtin_variant(task: Task, builtin: dict[str, Path]) -> Task:
    """A task file named like a built-in task must be that task (a copy is fine): an edited variant
    under the same name would share the built-in's leaderboard columns and published rows."""
    if task.name not in builtin:
        return task
    own = load_task(builtin[task.name])
    if task.file_hash != own.file_hash:
        raise MibeError(
            f"{task.path}: field 'name': '{task.name}' is a built-in task's name, but this file differs from "
            f"it; give your variant its own name (e.g. my_{task.name})"
        )
    return own  # a copy is the built-in task, its reader (hook) included


def named(spec: str, where: str) -> Task:
    """One task named on a command line, by the name rule: a bare name is a built-in task, a path a file."""
    found = names.task(spec, where)
    if found.kind == "builtin":
        return load_task(found.path)
    return _not_a_builtin_variant(load_task(found.path), builtin_paths())


def public_tasks() -> list[Task]:
    """`--tasks public`: the built-ins that are not credentialed, the ones a hosted model may receive."""
    return [t for t in (load_task(p) for p in builtin_paths().values()) if not t.credentialed]


def resolve(specs: Iterable[str], flag: str = "--tasks") -> tuple[list[Task], set[str]]:
    """Turn `--tasks` entries (all, public, names, comma lists, YAML paths) into loaded tasks, in order.

    Also returns the names the user asked for explicitly (not through a group): those must have data.
    """
    builtin = builtin_paths()
    tasks: list[tuple[Task, bool]] = []
    for spec in specs:
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            if item == "all":
                tasks.extend((load_task(p), False) for p in builtin.values())
            elif item == "public":
                tasks.extend((t, False) for t in public_tasks())
            elif item == "general":  # tasks/general/: the forgetting study's general benchmarks
                tasks.extend((load_task(p), False) for p in names.general_tasks().values())
            else:
                tasks.append((named(item, flag), True))
    if not tasks:
        raise MibeError(
            f"{flag}: names no task; give task names, all, public, or task files (see `mibe tasks list`)"
        )
    seen: dict[str, Task] = {}
    explicit: set[str] = set()
    for task, asked in tasks:
        if task.name in seen and seen[task.name].path != task.path:
            raise MibeError(f"{flag}: two task files are named '{task.name}'; rename one")
        seen.setdefault(task.name, task)
        if asked:
            explicit.add(task.name)
    return list(seen.values()), explicit
