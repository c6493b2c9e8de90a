"""One samples row from one model output: the output parsed as the task's kind of answer, scored
against the gold, with what a rescore, an audit or a judge reads back later (docs/run-folder.md)."""

from __future__ import annotations

from typing import Any

from mibe import data, prompts
from mibe.backends import traces
from mibe.runner import thinking
from mibe.scoring import kinds
from mibe.types import Doc, Request, Task


def to_sample(
    task: Task, doc: Doc, request: Request, output: Any, parser: str, note: dict, position: dict[str, int]
) -> dict:
    """One samples row; `index` is the document's place in the data, so the samples alone can be re-scored."""
    row: dict[str, Any] = {"id": doc.id, "prompt": request.prompt}
    if request.continuations:
        best = max(range(len(output)), key=lambda i: output[i])
        value: Any = task.choices[best]
        row.update(raw_output=value, logprobs=output, parse_failed=False)
    else:
        row["raw_output"] = output
        if request.reasoning:  # only the final answer is parsed; an unfinished trace never is
            row.update(thinking.split(request, output))
        parsed = kinds.parse_for(task, traces.answer_of(row) or "", parser, doc.gold)
        value = parsed.value
        row["parse_failed"] = parsed.failed or bool(row.get("reasoning_truncated"))
    gold = list(doc.gold) if isinstance(doc.gold, tuple) else doc.gold
    row["prediction"] = list(value) if isinstance(value, tuple) else value
    row["gold"] = gold
    row["score"] = kinds.doc_score(task.answer_type, doc.gold, value, parser, row["parse_failed"])
    row.update(note, index=position[doc.id])
    if doc.cluster is not None:
        row["cluster"] = data.cluster_id(task.name, doc.cluster)
    if task.answer_type == "text":  # a judge reads the source beside the summary (docs/judges.md)
        row["source"] = prompts.source_text(doc, task.truncate)
    if doc.invented:
        row["invented"] = True
    return row
