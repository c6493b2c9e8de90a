"""A whole training run: output folder (start, resume or done), data and contamination guard, model,
the HF Trainer, save (adapter or full weights, merged on request) and the provenance file."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibe import log
from mibe.log import logger
from mibe.training import callbacks, corpus, examples, guard, provenance, trainer
from mibe.training import recipe as recipes
from mibe.types import MibeError


@dataclass
class Prepared:
    train: Any
    held_out: Any
    collator: Any
    manifest: dict[str, Any]
    contamination: dict[str, Any]
    template: str | None
    template_source: str
    tokens_per_step: int | None


def _digest(value: Any) -> str:
    return (
        "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
    )


def _check(
    hits: list, rows: int, index: Any, recipe: dict[str, Any], ids: list | None = None
) -> dict[str, Any]:
    how = guard.mode(recipe)
    result = guard.report(hits, rows, index, ids or [])
    guard.enforce(result, how)
    return guard.outcome(result, how)


def _pretrain_data(recipe: dict[str, Any], tokenizer: Any, cache: Path) -> Prepared:
    mix, _ = corpus.load_mix(recipe["mix"])
    exclude = frozenset(guard.exclusions(recipe))
    if exclude and not any(s.get("id") for body in mix["domains"].values() for s in body["sources"]):
        raise MibeError("exclude_ids: no source of the mix names its id column; add id: COLUMN to a source")
    texts = corpus.load_domains(mix, cache, exclude)
    trained = [s for body in mix["domains"].values() for s in body["sources"]]
    tasks, places = guard.locations(recipe, trained=trained)
    index = guard.build_index(tasks, places, recipe["guard_ngram"])
    hits, offset, per_domain = [], 0, {}
    for domain, (text, _) in texts.items():
        found = guard.scan_texts(text, index, recipe["num_proc"])
        per_domain[domain] = {row for row, _ in found}
        hits += [(offset + row, row_hits) for row, row_hits in found]
        offset += len(text)
    contamination = _check(hits, offset, index, recipe)
    if contamination["dropped_rows"]:
        texts = corpus.without_rows(texts, per_domain)
    train, held, summary = corpus.build(recipe, mix, texts, tokenizer, cache)
    summary["identity"] = _digest(
        [summary["tokenizer"], summary["block_size"], summary["balance"], mix["domains"],
         {d: [s["fingerprint"] for s in m["sources"]] for d, m in summary["domains"].items()}]
    )  # fmt: skip
    logger.info(
        f"mibe: {summary['train_blocks']} training blocks of {summary['block_size']} tokens "
        f"(shares {summary['shares']}), {summary['held_out_blocks']} held out"
    )
    return Prepared(train, held, trainer.block_collator, summary, contamination, None, "none", None)


def _split(rows: list[dict], held_out: float, seed: int) -> tuple[list[dict], list[dict]]:
    if held_out <= 0:
        return rows, []
    count = max(1, round(held_out * len(rows))) if held_out < 1 else int(held_out)
    if count >= len(rows):
        raise MibeError(f"held_out {held_out}: leaves no training rows out of {len(rows)}; lower it or set 0")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def _instruction_data(kind: str, recipe: dict[str, Any], tokenizer: Any, cache: Path) -> Prepared:
    import datasets

    template, source = examples.chat_template(recipe["chat_template"], tokenizer, recipe["model"])
    if kind == "sft":
        made, manifest, skipped, first = examples.sft_examples(recipe, template, tokenizer, cache)
        tasks, places = guard.locations(recipe, trained=manifest)
        manifest = {"sources": manifest}
    else:
        task, made, manifest, skipped, first, location = examples.task_examples(recipe, template, tokenizer)
        own = location.kind == "hub" or Path(location.where).is_dir()  # its evaluation split, always
        tasks, places = guard.locations(recipe, also=[task], extra={task.name: [location]} if own else {})
    if skipped:
        logger.info(f"mibe: skipped {skipped} unusable rows (first: {first})")
    made, excluded = _without_excluded(made, guard.exclusions(recipe))
    if not made:
        raise MibeError(f"training data: no usable rows ({first})")
    index = guard.build_index(tasks, places, recipe["guard_ngram"])
    if kind == "task" and own and location.where not in index.sources.get(task.name, []):
        logger.warning(f"mibe: warning: contamination guard: {task.name}'s '{task.split}' split at "
                       f"{location.where} could not be read; rows are checked against the other copies "
                       "found")  # fmt: skip
    hits = [(number, guard.row_hits(example["texts"], index)) for number, example in enumerate(made)]
    contamination = _check(hits, len(made), index, recipe, [e.get("id") for e in made])
    if contamination["dropped_rows"]:
        gone = set(contamination["dropped_rows"])
        made = [e for number, e in enumerate(made, 1) if number not in gone]
        if not made:
            raise MibeError("--drop-contaminated: every training row repeats an evaluation document")
    manifest["excluded_by_id"] = excluded
    rows, dropped = examples.tokenised(made, tokenizer, recipe["max_length"])
    if not rows:
        raise MibeError(
            f"max_length {recipe['max_length']}: every row's response falls beyond it; raise max_length"
        )
    train_rows, held_rows = _split(rows, recipe["held_out"], recipe["seed"])
    manifest.update(
        rows=len(made), skipped_rows=skipped, first_problem=first, dropped_by_max_length=dropped,
        train_rows=len(train_rows), held_out_rows=len(held_rows),
        train_tokens=sum(len(r["input_ids"]) for r in train_rows),
        response_tokens=sum(sum(label != -100 for label in r["labels"]) for r in train_rows),
        chat_template=source,
    )  # fmt: skip
    fingerprints = [s["fingerprint"] for s in manifest.get("sources", [])] or [manifest.get("fingerprint")]
    manifest["identity"] = _digest([fingerprints, template, recipe["max_length"], len(rows)])
    tokens = manifest["response_tokens"]
    logger.info(
        f"mibe: {len(train_rows)} training rows ({tokens} response tokens), {len(held_rows)} held out"
    )
    held = datasets.Dataset.from_list(held_rows) if held_rows else None
    collator = trainer.pad_collator(tokenizer.pad_token_id)
    train = datasets.Dataset.from_list(train_rows)
    return Prepared(train, held, collator, manifest, contamination, template, source, None)


def _without_excluded(made: list[dict], ids: set[str]) -> tuple[list[dict], list[str]]:
    """Rows whose id is on the exclusion list (`exclude_ids`) never reach training."""
    if not ids:
        return made, []
    kept = [e for e in made if str(e.get("id")) not in ids]
    gone = sorted(str(e.get("id")) for e in made if str(e.get("id")) in ids)
    logger.info(f"mibe: left out {len(gone)} rows whose id is on the exclusion list ({len(ids)} ids)")
    return kept, gone


def _pin_model(recipe: dict[str, Any]) -> None:
    """Refuse a local-looking model path that is missing; make a local folder's path absolute."""
    local = Path(recipe["model"]).expanduser()
    if not local.exists() and recipe["model"].startswith((".", "/", "~")):
        raise MibeError(f"model {recipe['model']}: no such folder; give a model folder or a hub id")
    if local.is_dir():  # an adapter's base and the lineage must not depend on the folder we ran in
        recipe["model"] = str(local.resolve())


def _finish_done(out: Path, recipe: dict[str, Any], previous: dict[str, Any]) -> None:
    """A finished run is not trained again; only a merge asked for since is done now."""
    if recipe["merge"] and not previous.get("output", {}).get("merged"):
        trainer.merge(out, recipe)
        previous["output"] = {"adapter": False, "merged": True}
        provenance.write(out / "adapter", {**previous, "output": {"adapter": True, "merged": False}})
        provenance.write(out, previous)
    chain = provenance.lineage_line(previous)
    logger.info(f"mibe: {out} already holds this finished run ({chain}); nothing to do")


def _quiet_progress_bars() -> None:
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()  # mibe prints one line per stage and owns the training bar
    hf_logging.disable_progress_bar()


def _prepare(kind: str, recipe: dict[str, Any], tokenizer: Any, args: Any) -> Prepared:
    # Rank 0 tokenises and packs first; the other ranks (every node) then read its cache.
    with args.main_process_first(local=False, desc="preparing the training data"):
        cache = trainer.cache_root(recipe)
        if kind == "pretrain":
            data = _pretrain_data(recipe, tokenizer, cache)
            data.tokens_per_step = trainer.tokens_per_step(recipe, args.world_size)
        else:
            data = _instruction_data(kind, recipe, tokenizer, cache)
    return data


def _check_same_data(out: Path, previous: dict[str, Any] | None, data: Prepared) -> None:
    """Resuming on other data would mix two runs under one provenance file."""
    if previous and previous.get("data", {}).get("identity") != data.manifest["identity"]:
        raise MibeError(
            f"{out}: the training data changed since this run started; --overwrite to start again"
        )


def _hyperparameters(recipe: dict[str, Any], used: str, why: str, args: Any) -> dict[str, Any]:
    """What the provenance file records of the optimisation: the recipe's settings and what ran."""
    return {
        "precision": used,
        "precision_note": why,
        "device": str(args.device),
        "world_size": args.world_size,
        "effective_batch": recipe["batch_size"] * recipe["gradient_accumulation"] * args.world_size,
        "optimizer": f"AdamW (betas {recipe['adam_beta1']}, {recipe['adam_beta2']})",
        **{k: recipe[k] for k in ("learning_rate", "weight_decay", "lr_scheduler", "warmup_ratio", "epochs")},
        **{k: recipe[k] for k in ("max_steps", "batch_size", "gradient_accumulation", "lora", "seed")},
    }


def _sections(
    data: Prepared, ds_file: Any, ds_config: Any, hyperparameters: dict[str, Any]
) -> dict[str, Any]:
    """The provenance sections known once the data is prepared, in the file's order."""
    return {
        "data": data.manifest,
        "contamination": data.contamination,
        "deepspeed": {"file": ds_file, "config": ds_config} if ds_config else None,
        "chat_template": {"source": data.template_source, "sha256": _digest(data.template)[7:]}
        if data.template
        else None,
        "hyperparameters": hyperparameters,
    }


def _losses(metrics: dict[str, Any]) -> dict[str, Any]:
    return {"eval_loss": metrics["eval_loss"], "perplexity": trainer.perplexity_of(metrics)}


def _hf_trainer(
    model: Any,
    args: Any,
    data: Prepared,
    tokenizer: Any,
    out: Path,
    doc: dict[str, Any],
    progress: callbacks.Progress,
    main: bool,
) -> Any:
    from transformers import PrinterCallback, Trainer

    def snapshot(state_now: Any) -> dict[str, Any]:
        # Read at save time, so every checkpoint carries the document as it stands then.
        return {**doc, "progress": {**doc["progress"], "steps": state_now.global_step, "checkpoint": True}}

    hf = Trainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.held_out,
        data_collator=data.collator,
        processing_class=tokenizer,
        callbacks=[progress, callbacks.ProvenanceOnSave(out, snapshot, main)],
    )
    hf.remove_callback(PrinterCallback)  # the Progress callback prints instead
    return hf


def _final_eval(hf: Any, data: Prepared) -> dict[str, Any] | None:
    """Held-out metrics after the last step, or None without a held-out set."""
    if data.held_out is None:
        return None
    # The Trainer evaluates at the last step itself when its schedule lands there; never twice.
    evals = [h for h in hf.state.log_history if "eval_loss" in h]
    return evals[-1] if evals and evals[-1].get("step") == hf.state.global_step else hf.evaluate()


def _save(hf: Any, out: Path, tokenizer: Any, recipe: dict[str, Any], main: bool) -> None:
    hf.save_model(str(out))  # every rank calls it: DeepSpeed gathers the sharded weights here
    # Every rank leaves the process group together, before rank 0 merges alone: a rank that exits
    # while another still holds the group can abort in the communication library's teardown
    # ("terminate called without an active exception", exit 250 from the launcher).
    hf.accelerator.wait_for_everyone()
    hf.accelerator.end_training()
    if main:
        tokenizer.save_pretrained(str(out))
        if recipe["merge"]:
            trainer.merge(out, recipe)


def _record_progress(doc: dict[str, Any], state: Any, train_loss: float, end: dict[str, Any] | None) -> None:
    """The finished run's progress: steps, epochs, tokens seen and the losses."""
    doc["progress"].update(
        steps=state.global_step,
        epochs=round(state.epoch or 0.0, 4),
        tokens=int(state.num_input_tokens_seen),
        train_loss=train_loss,
        end=_losses(end) if end else None,
        checkpoint=False,
    )


def _record_output(
    doc: dict[str, Any], recipe: dict[str, Any], recipe_file: dict[str, Any], data: Prepared
) -> None:
    """After `_record_progress`: the output's kind and this step of the lineage; the document is complete."""
    doc["output"] = {"adapter": recipe["lora"] is not None and not recipe["merge"], "merged": recipe["merge"]}
    kept = data.contamination.get("allowed")  # rows that repeat evaluation documents were trained on
    doc["lineage"][-1].update(
        recipe_sha256=recipe_file["sha256"], data=data.manifest["identity"], steps=doc["progress"]["steps"],
        tokens=doc["progress"]["tokens"], lora=recipe["lora"] is not None, merged=recipe["merge"],
        contaminated=sorted(data.contamination["leaks"]) if kept else [],
        matcher_version=data.contamination.get("matcher_version"),
    )  # fmt: skip
    doc["complete"] = True
    doc["timing"]["finished_at"] = trainer.timestamp()


def _write_finished(out: Path, doc: dict[str, Any], recipe: dict[str, Any]) -> None:
    provenance.write(out, doc)
    if recipe["merge"]:  # the adapter beside the merged weights is a checkpoint of its own
        provenance.write(out / "adapter", {**doc, "output": {"adapter": True, "merged": False}})


def _finished_line(steps: int, train_loss: float, end: dict[str, Any] | None, out: Path) -> str:
    line = f"mibe: trained {steps} steps, train loss {train_loss:.4f}"
    if end:
        line += f", held-out loss {end['eval_loss']:.4f} (perplexity {trainer.perplexity_of(end):.2f})"
    return f"{line}; model in {out} (score it: mibe run --model {out} --tasks ...)"


def run(
    kind: str,
    recipe: dict[str, Any],
    recipe_file: dict[str, Any],
    command: list[str],
    overwrite: bool = False,
) -> Path:
    """Train as the recipe says; returns the output folder (a model `mibe run --model` takes). Progress
    goes to the `mibe` logger, from the first rank only once the ranks are known."""
    with log.silenceable() as silence:
        return _run(kind, recipe, recipe_file, command, overwrite, silence)


def _run(
    kind: str,
    recipe: dict[str, Any],
    recipe_file: dict[str, Any],
    command: list[str],
    overwrite: bool,
    silence: Callable[[], None],
) -> Path:
    out = Path(recipe["output_dir"]).expanduser().resolve()
    _pin_model(recipe)
    identity = recipes.identity(recipe)
    state, previous = trainer.folder_state(out, identity, overwrite)
    if state == "done" and previous is not None:
        _finish_done(out, recipe, previous)
        return out
    _quiet_progress_bars()
    used, why = trainer.precision(recipe["precision"])
    ds_arg, ds_config, ds_file = trainer.deepspeed_config(recipe["deepspeed"])
    args = trainer.training_arguments(recipe, out, used, ds_arg)
    main = args.process_index == 0
    if not main:
        silence()
    tokenizer = trainer.load_tokenizer(recipe)
    data = _prepare(kind, recipe, tokenizer, args)
    if state == "resume":
        _check_same_data(out, previous, data)
    if data.template is not None:
        tokenizer.chat_template = data.template  # saved with every checkpoint: `mibe run --chat-template`
    doc = provenance.start(kind, recipe, recipe_file, command, identity)
    if previous:  # a resumed run keeps its start time and the progress recorded so far
        doc["timing"] = previous.get("timing", doc["timing"])
        doc["progress"] = previous.get("progress", {})
    doc.update(_sections(data, ds_file, ds_config, _hyperparameters(recipe, used, why, args)))
    if main:
        out.mkdir(parents=True, exist_ok=True)
        provenance.write(out, doc)
    model = trainer.load_model(recipe, used, ds_config is not None)
    progress = callbacks.Progress(out, data.tokens_per_step, main)
    hf = _hf_trainer(model, args, data, tokenizer, out, doc, progress, main)
    resume_from = trainer.last_checkpoint(out) if state == "resume" else None
    if resume_from:
        logger.info(f"mibe: resuming from {resume_from}")
        progress.append({"event": "resume", "checkpoint": resume_from})
    elif data.held_out is not None and ds_config is None:
        # A baseline before the first step (DeepSpeed builds its engine inside train(), so not there).
        doc["progress"]["start"] = _losses(hf.evaluate())
    result = hf.train(resume_from_checkpoint=resume_from)
    end = _final_eval(hf, data)
    _save(hf, out, tokenizer, recipe, main)
    _record_progress(doc, hf.state, result.training_loss, end)
    _record_output(doc, recipe, recipe_file, data)
    if main:
        _write_finished(out, doc, recipe)
        logger.info(_finished_line(hf.state.global_step, result.training_loss, end, out))
    return out
