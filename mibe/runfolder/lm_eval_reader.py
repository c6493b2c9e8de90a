"""lm-evaluation-harness 0.4 `--log_samples` files (`samples_<task>_<date>.jsonl`, or the earlier one
JSON array): each document's generated text, or each choice's log-likelihood, checked and normalised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mibe.runfolder import harness_rows
from mibe.types import MibeError


def parse(path: Path, text: str) -> harness_rows.Parsed:
    rows: list[harness_rows.ImportedRow] = []
    scoring: str | None = None
    kept: dict[str, tuple[int, Any]] = {}  # doc_id -> (line, resps): one row per filter repeats a document
    for line, row in harness_rows.objects(path, text, "lm-eval"):
        doc_id = harness_rows.row_id(path, line, row, "lm-eval")
        resps = harness_rows.need(path, line, row, "resps", "lm-eval")
        if doc_id in kept:
            if kept[doc_id][1] == resps:
                continue  # the same outputs under another filter (e.g. strict-match and flexible-extract)
            raise MibeError(
                f"{path}:{line}: doc_id {doc_id} again with other outputs (first at line {kept[doc_id][0]}); "
                "the file holds two runs, give one run's file"
            )
        kept[doc_id] = (line, resps)
        arguments = _lm_eval_arguments(path, line, harness_rows.need(path, line, row, "arguments", "lm-eval"))
        row_scoring = _lm_eval_scoring(path, line, arguments)
        if scoring is None:
            scoring = row_scoring
        elif row_scoring != scoring:
            raise MibeError(
                f"{path}:{line}: a {harness_rows.scoring_words(row_scoring)} row in a file of "
                f"{harness_rows.scoring_words(scoring)} rows; give one task's file"
            )
        where = f"{path}:{line}"
        common = {
            "id": doc_id,
            "gold": harness_rows.need(path, line, row, "target", "lm-eval"),
            "doc": row.get("doc"),
        }
        if scoring == "generate":
            rows.append(_lm_eval_generation(path, line, arguments, resps, where, common))
        else:
            rows.append(_lm_eval_choices(path, line, arguments, resps, where, common))
    assert scoring is not None  # objects refuses files without rows
    return harness_rows.Parsed(rows=rows, scoring=scoring, notes=())


def _lm_eval_arguments(path: Path, line: int, arguments: Any) -> list[list[Any]]:
    """Each request's positional arguments. 0.4.3+ writes {"gen_args_0": {"arg_0": ..., "arg_1": ...}};
    0.4.0-0.4.2 wrote the requests' argument lists as they were."""
    if isinstance(arguments, dict):
        requests = []
        for i in range(len(arguments)):
            request = arguments.get(f"gen_args_{i}")
            if not isinstance(request, dict):
                raise MibeError(
                    f"{path}:{line}: arguments has no gen_args_{i} object; give the file the harness wrote"
                )
            requests.append([request.get(f"arg_{j}") for j in range(len(request))])
        arguments = requests
    if not isinstance(arguments, list) or not arguments or not all(isinstance(a, list) for a in arguments):
        raise MibeError(
            f"{path}:{line}: arguments is {harness_rows.short(arguments)}, not the requests sent; "
            "give the file the harness wrote"
        )
    return arguments


def _lm_eval_scoring(path: Path, line: int, arguments: list[list[Any]]) -> str:
    first = arguments[0]
    if not first or not isinstance(first[0], str):
        raise MibeError(f"{path}:{line}: the request holds no prompt text; give the file the harness wrote")
    if len(first) >= 2 and isinstance(first[1], dict):
        return "generate"  # generate_until: (context, generation kwargs)
    if len(first) >= 2 and isinstance(first[1], str):
        return "loglikelihood"  # loglikelihood / multiple_choice: (context, continuation)
    raise MibeError(
        f"{path}:{line}: a loglikelihood_rolling (perplexity) request; mibe imports generated text "
        "or multiple-choice log-likelihoods only"
    )


def _lm_eval_generation(
    path: Path, line: int, arguments: list[list[Any]], resps: Any, where: str, common: dict[str, Any]
) -> harness_rows.ImportedRow:
    if len(arguments) != 1:
        raise MibeError(
            f"{path}:{line}: {len(arguments)} generation requests for one document; mibe reads one"
        )
    ok = isinstance(resps, list) and len(resps) == 1 and isinstance(resps[0], list)
    if not ok or len(resps[0]) != 1 or not isinstance(resps[0][0], str):
        raise MibeError(
            f"{path}:{line}: resps is {harness_rows.short(resps)}, not one generated text ([[text]]); "
            "runs with repeats > 1 or a damaged file cannot be imported"
        )
    return harness_rows.ImportedRow(
        prompt=arguments[0][0],
        raw_output=resps[0][0],
        logprobs=None,
        continuations=None,
        where=where,
        **common,
    )


def _lm_eval_choices(
    path: Path, line: int, arguments: list[list[Any]], resps: Any, where: str, common: dict[str, Any]
) -> harness_rows.ImportedRow:
    contexts = {request[0] for request in arguments}
    if len(contexts) != 1 or not all(len(r) >= 2 and isinstance(r[1], str) for r in arguments):
        raise MibeError(
            f"{path}:{line}: the choices were scored after different prompts; mibe imports multiple-choice "
            "rows whose options share one prompt"
        )
    if len(arguments) < 2:
        raise MibeError(
            f"{path}:{line}: one log-likelihood per document; mibe imports multiple choice (one per option)"
        )
    if not isinstance(resps, list) or len(resps) != len(arguments):
        raise MibeError(
            f"{path}:{line}: resps does not hold one answer per choice; give the file the harness wrote"
        )
    logprobs = []
    for i, resp in enumerate(resps):
        # one repeat per request, each a (log-likelihood, is_greedy) pair
        if not (isinstance(resp, list) and resp and isinstance(resp[0], list | tuple) and resp[0]):
            raise MibeError(
                f"{path}:{line}: resps[{i}] is {harness_rows.short(resp)}, not [[log-likelihood, "
                "is_greedy]]; give the file the harness wrote"
            )
        logprobs.append(harness_rows.logprob(path, line, resp[0][0], f"resps[{i}]"))
    return harness_rows.ImportedRow(
        prompt=arguments[0][0],
        raw_output=None,
        logprobs=tuple(logprobs),
        continuations=tuple(request[1] for request in arguments),
        where=where,
        **common,
    )
