"""Where a task's shots come from, and the paper's few-shot preset (`--protocol paper-fewshot`).

Shots come from the task's few-shot split (`dataset.fewshot_split`, the release's `train`) when it
is there and the contamination matcher (mibe/matcher.py) finds no evaluation document repeated in it;
else from the scored split without the scored document. MedQA's hub copy repeats its test rows in
`train`, so its task file names no few-shot split and its shots always come from the test split
without the document. The source is part of the protocol (`shot_source`, absent at 0 shots): two
few-shot numbers whose shots came from different places never share a column.
"""

from __future__ import annotations

from collections.abc import Sequence

from mibe import data, matcher
from mibe.log import logger
from mibe.types import Doc, MibeError, RunConfig, Task

EVALUATION = "evaluation"  # shot_source: the scored split, without the scored document


def check(config: RunConfig) -> None:
    """`--protocol paper-fewshot` needs a shot count: the paper's was not found (docs/statistics.md)."""
    if config.protocol == "paper-fewshot" and config.num_fewshot < 1:
        raise MibeError(
            "--protocol paper-fewshot: give --num-fewshot K (the paper's shot count is not in its "
            "released code or in the text available to mibe; see docs/statistics.md, 'Few-shot as published')"
        )


def repeated(task: Task, pool: Sequence[Doc], docs: Sequence[Doc]) -> list[str]:
    """Ids of the few-shot documents that repeat an evaluation document, by the one matcher."""
    hook = data.load_hook(task)
    index = matcher.build(
        [(task.name, task.credentialed, task.template, [matcher.eval_doc(task, d, hook) for d in docs])]
    )
    found = []
    for shot in pool:
        texts = list(matcher.eval_doc(task, shot, hook).fields.values())
        if matcher.match(texts, index):
            found.append(str(shot.id))
    return found


def pool(
    task: Task, location: data.Location, docset: data.DocSet, config: RunConfig
) -> tuple[list[Doc], str | None]:
    """(the documents shots are drawn from, the protocol's shot_source); (docs, None) at 0 shots."""
    if not config.num_fewshot:
        return docset.docs, None
    split = data.fewshot_pool(task, location)
    if not split:
        return docset.docs, EVALUATION
    overlap = repeated(task, split, docset.docs)
    if overlap:
        logger.info(
            f"mibe: {task.name}: its '{task.fewshot_split}' split repeats {len(overlap)} evaluation "
            f"documents (e.g. {overlap[0]}); shots come from the evaluation split without the scored document"
        )
        return docset.docs, EVALUATION
    return split, str(task.fewshot_split)


def check_size(task: Task, pool: Sequence[Doc], docs: Sequence[Doc], k: int, source: str | None) -> None:
    """Enough shots for every scored document (the pool less the document itself), said before the
    model loads: the draw itself (`data.draw_shots`) would refuse only once the backend is up."""
    if not k or not docs:
        return
    ids = {d.id for d in pool}
    fewest = len(pool) - (1 if any(d.id in ids for d in docs) else 0)
    if fewest < k:
        where = "the evaluation split" if source in (None, EVALUATION) else f"its '{source}' split"
        raise MibeError(
            f"{task.name}: --num-fewshot {k}: only {fewest} other documents to draw from (shots come "
            f"from {where}); lower --num-fewshot"
        )


def pools(
    loaded: Sequence[tuple[Task, data.Location, data.DocSet]], config: RunConfig
) -> list[tuple[list[Doc], str | None]]:
    """Each loaded task's (shot pool, shot_source), its size checked against --num-fewshot."""
    out = []
    for task, location, docset in loaded:
        docs, source = pool(task, location, docset, config)
        scored = docset.docs[: config.limit] if config.limit is not None else docset.docs
        check_size(task, docs, scored, config.num_fewshot, source)
        out.append((docs, source))
    return out
