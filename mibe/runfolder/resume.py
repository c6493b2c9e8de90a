"""Start, resume or refuse a run folder: the one place that decides whether earlier work is reused.

A run folder holds run.json (the resolved config, the model and each task's protocol). Started again
with the same folder, a run resumes when all three match, and is refused with one line naming the
first difference otherwise (unless --overwrite). Within a task, documents already in its samples file
are not scored again (`writer.done_ids`, per few-shot draw); a task already in results.json is final,
except that naming more `--fewshot-seeds` than the folder's run extends it: the new draws are scored
and the tasks summarised again.
"""

from __future__ import annotations

from typing import Any

from mibe.runfolder import writer as run_writer
from mibe.runfolder.folder import read_json
from mibe.runfolder.writer import Writer, first_difference
from mibe.types import VOLATILE_MODEL_KEYS, MibeError, RunConfig


def prepare(writer: Writer, run_json: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Start, resume or refuse (the folder locked by `writer`); returns the previous results.json
    when resuming."""
    run_dir = writer.path
    run_writer.check_output(run_dir)  # a folder of someone else's files is never resumed, reused or deleted
    previous = read_json(run_dir / "run.json")
    if previous is not None and not overwrite:
        previous, compared = comparable(previous, run_json)
    if previous is not None and not overwrite and extends(previous, compared):
        writer.write_json("run.json", run_json)
        results = _with_shot_source(read_json(run_dir / "results.json"), run_json)
        if results is not None:  # tasks with new draws are scored again; their old draws' rows stay
            protocols = run_json["protocols"]
            results["tasks"] = {
                name: entry
                for name, entry in results["tasks"].items()
                if entry["protocol"] == protocols.get(name)
            }
            results["config"] = run_json["config"]
        return results
    if previous is not None and not overwrite:
        for key, what in (("config", "a different config"), ("model", "a different model"),
                          ("protocols", "different protocols"),
                          ("extractor", "a different extractor")):  # fmt: skip
            if previous.get(key) != compared.get(key):
                changed = first_difference(previous.get(key), compared.get(key))
                raise MibeError(
                    f"{run_dir}: holds a run with {what} ({changed}); "
                    "use another --output-dir, or --overwrite to replace it"
                )
        writer.write_json("run.json", run_json)  # with what this mibe records and the folder's did not
        return _with_shot_source(read_json(run_dir / "results.json"), run_json)
    if overwrite and previous is not None:
        writer.clear(previous)  # what mibe wrote, every derived cache included; nothing else
    writer.write_json("run.json", run_json)
    return None


def comparable(previous: dict[str, Any], run_json: dict[str, Any]) -> tuple[dict, dict]:
    """The folder's run.json and the new one as resume compares them, so that a folder written by an
    earlier mibe resumes when nothing changed: settings now volatile (RunConfig's VOLATILE fields, an
    endpoint's URL) are left out of both, and what the model description adds that the folder's
    mibe did not record (e.g. the weights' fingerprint) is not compared: it could not record it."""
    volatile = RunConfig.volatile()
    old, new = dict(_with_shot_source(dict(previous), run_json) or {}), dict(run_json)
    for key in ("model", "extractor"):
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            old[key] = {k: v for k, v in old[key].items() if k not in VOLATILE_MODEL_KEYS}
            new[key] = {k: v for k, v in new[key].items() if k not in VOLATILE_MODEL_KEYS and k in old[key]}
    if "extractor" not in previous:  # written before the extractor was identified by its description
        new.pop("extractor", None)
    if isinstance(old.get("config"), dict):
        old["config"] = {k: v for k, v in old["config"].items() if k not in volatile}
    new["config"] = {k: v for k, v in run_json["config"].items() if k not in volatile}
    return old, new


def _without_seeds(part: Any) -> Any:
    return {k: v for k, v in part.items() if k != "fewshot_seeds"} if isinstance(part, dict) else part


def _grows(old: Any, new: Any) -> bool:
    return isinstance(old, list) and isinstance(new, list) and old != new and set(old) <= set(new)


def extends(previous: dict[str, Any], run_json: dict[str, Any]) -> bool:
    """The new run adds few-shot draws to the folder's run and changes nothing else: every seed list
    (in the config and each task's protocol) holds the old seeds, and at least one grew."""
    old_config, new_config = previous.get("config") or {}, run_json["config"]
    if previous.get("model") != run_json["model"] or _without_seeds(old_config) != _without_seeds(new_config):
        return False
    if previous.get("extractor") != run_json.get("extractor"):
        return False
    if not _grows(old_config.get("fewshot_seeds"), new_config.get("fewshot_seeds")):
        return False
    old, new = previous.get("protocols") or {}, run_json["protocols"]
    if set(old) != set(new):
        return False
    return all(
        _without_seeds(old[t]) == _without_seeds(new[t])
        and (old[t] == new[t] or _grows(old[t].get("fewshot_seeds"), new[t].get("fewshot_seeds")))
        for t in new
    )


def _shot_source(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    """A few-shot protocol written before `shot_source` was recorded, with the source its shots came
    from then: the scored split when its pool was the scored documents, else the few-shot split."""
    if not isinstance(new, dict) or not old.get("shots") or "shot_source" in old or "shot_source" not in new:
        return old
    got = old.get("data") if isinstance(old.get("data"), dict) else {}
    if got.get("fewshot_pool") == got.get("documents"):
        return {**old, "shot_source": "evaluation"}
    return {
        **old,
        "shot_source": new["shot_source"] if new["shot_source"] != "evaluation" else "fewshot split",
    }


# Templates rewritten to print the same prompts byte for byte (issue 28: MedQA's, MedMCQA's, MMLU's
# and ARC's options became a list the template loops over): an older folder's hash, read as today's.
RENDERED_ALIKE = {
    "a441c950c18268d9": "8ec1866716a3f724",  # medqa
    "7ce9271ca91a7acd": "8917822a6679e876",  # medmcqa
    "34ee359ee5b3dbcb": "82621483c288c825",  # mmlu
    "a4d53af94c8c375c": "4970293240bc2447",  # arc_challenge
}


def _today(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    old = _shot_source(old, new)
    same = RENDERED_ALIKE.get(str(old.get("template_hash")))
    if isinstance(new, dict) and same is not None and new.get("template_hash") == same:
        return {**old, "template_hash": same}
    return old


def _with_shot_source(doc: dict[str, Any] | None, run_json: dict[str, Any]) -> dict[str, Any] | None:
    """run.json's protocols and results.json's task protocols of an older folder, read as today's
    (the shots' source, a template rewritten to print the same prompts)."""
    if doc is None:
        return None
    new = run_json.get("protocols") or {}
    if isinstance(doc.get("protocols"), dict):
        doc["protocols"] = {t: _today(p, new.get(t)) for t, p in doc["protocols"].items()}
    for name, entry in (doc.get("tasks") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("protocol"), dict):
            entry["protocol"] = _today(entry["protocol"], new.get(name))
    return doc
