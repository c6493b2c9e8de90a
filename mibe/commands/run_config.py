"""`mibe run`'s flags as a RunConfig: checked, then taken field by field of the dataclass.

A flag's `dest` is its RunConfig field, so a new setting is a field (mibe/types.py, where its resume
identity is declared) plus its flag (mibe/commands/run.py); only a flag whose text needs parsing adds
a line to CONVERT. Each check says the flag as the user wrote it, in one line, before anything loads.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from mibe.types import MibeError, RunConfig


def from_args(args: argparse.Namespace) -> RunConfig:
    """The run's configuration: every RunConfig field the namespace holds, after CONVERT's steps (in
    their order: a later step reads an earlier one's result) and with argparse's lists as tuples."""
    check(args)
    parsed = argparse.Namespace(**vars(args))
    for name, convert in CONVERT.items():
        setattr(parsed, name, convert(parsed))
    given = vars(parsed)
    values = {f.name: given[f.name] for f in dataclasses.fields(RunConfig) if f.name in given}
    return RunConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _data(args: argparse.Namespace) -> dict[str, str]:
    from mibe.datacheck import parse_pairs

    return parse_pairs(args.data)


def _base_urls(args: argparse.Namespace) -> tuple[str, ...]:
    """Every --base-url, then each line of --base-urls FILE (mibe/backends/pool.py)."""
    from mibe.backends.pool import urls

    return tuple(urls(args.base_urls, args.base_urls_file))


def _chat_template_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from mibe.backends.chat import parse_kwargs

    return parse_kwargs(args.chat_template_kwargs)


def _reasoning_delimiters(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    from mibe.backends.traces import parse_delimiters

    return parse_delimiters(args.reasoning_delimiters)


def seeds(spec: str | None, shots: int) -> tuple[int, ...]:
    """`--fewshot-seeds S1,S2,...`: one shot draw per seed (mibe/runner/shot_draws.py)."""
    if shots < 0:
        raise MibeError(f"--num-fewshot {shots}: must be 0 or more")
    if spec is None:
        return ()
    try:
        found = tuple(int(s) for s in spec.split(","))
    except ValueError:
        raise MibeError(f"--fewshot-seeds {spec}: integers separated by commas, e.g. 1,2,3") from None
    if len(set(found)) != len(found):
        raise MibeError(f"--fewshot-seeds {spec}: a seed is named twice; give each draw's seed once")
    if any(not 0 <= seed < 2**32 for seed in found):  # numpy's seed range, as --seed
        raise MibeError(f"--fewshot-seeds {spec}: each seed must be between 0 and {2**32 - 1}")
    if shots < 1:
        raise MibeError(f"--fewshot-seeds {spec}: draws need shots; add --num-fewshot K (K >= 1)")
    return found


def permutations(k: int, draws: tuple[int, ...]) -> int:
    # One line on combinations: with --scoring loglikelihood, --num-fewshot, data-parallel ranks and
    # --shard yes; with --fewshot-seeds no (orderings x draws would be a third level no interval covers).
    if not 1 <= k <= 26:
        raise MibeError(
            f"--choice-permutations {k}: give 1 (off) to 26 orderings; at most a task's number of options"
        )
    if k > 1 and draws:
        raise MibeError(
            f"--choice-permutations {k} with --fewshot-seeds: not both at once; score the orderings with one "
            "--seed, or the draws without --choice-permutations"
        )
    return k


def price(value: str | None, dry_run: bool) -> tuple[float, float] | None:
    """`--price IN,OUT`: dollars per million prompt and answer tokens, for --dry-run's plan."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        prices = tuple(float(x) for x in parts)
    except ValueError:
        prices = ()
    if len(parts) != 2 or len(prices) != 2 or any(not 0 <= x < float("inf") for x in prices):
        raise MibeError(f"--price {value}: write IN,OUT, dollars per million prompt and answer tokens")
    if not dry_run:
        raise MibeError(f"--price {value}: only with --dry-run (it prices the plan)")
    return prices  # type: ignore[return-value]


# The flags whose text a RunConfig field holds parsed, in the order they are parsed (the order a
# refusal is said in when several flags are wrong). Every other field is the flag's value as given.
CONVERT: dict[str, Callable[[argparse.Namespace], Any]] = {
    "data": _data,
    "tasks": lambda a: (a.tasks,),
    "fewshot_seeds": lambda a: seeds(a.fewshot_seeds, a.num_fewshot),
    "base_urls": _base_urls,
    "base_url": lambda a: a.base_urls[0] if a.base_urls else None,  # the first server of the pool
    "price": lambda a: price(a.price, a.dry_run),
    "choice_permutations": lambda a: permutations(a.choice_permutations, a.fewshot_seeds),
    "chat_template_kwargs": _chat_template_kwargs,
    "reasoning_delimiters": _reasoning_delimiters,
}


def check(args: argparse.Namespace) -> None:
    """Settings that contradict each other, or numbers out of range: one line each."""
    _check_hosted(args)
    for flag, value in (
        ("--limit", args.limit),
        ("--batch-size", args.batch_size),
        ("--max-new-tokens", args.max_new_tokens),
        ("--tensor-parallel-size", args.tensor_parallel_size),
        ("--pipeline-parallel-size", args.pipeline_parallel_size),
        ("--data-parallel-size", args.data_parallel_size),
        ("--max-model-len", args.max_model_len),
        ("--max-concurrency", args.max_concurrency),
        ("--shards", args.plan_shards),
    ):
        if value is not None and value < 1:
            raise MibeError(f"{flag} {value}: must be a positive integer")
    if not 0 < args.gpu_memory_utilization <= 1:
        raise MibeError(f"--gpu-memory-utilization {args.gpu_memory_utilization}: must be in (0, 1]")
    if args.num_fewshot < 0:
        raise MibeError(f"--num-fewshot {args.num_fewshot}: must be 0 or more")
    check_seed_and_bootstrap(args.seed, args.bootstrap)
    if (args.parser == "model") != bool(args.extractor):
        raise MibeError(
            "--parser model and --extractor MODEL go together: the extractor is the model that reads "
            "the answers (e.g. --parser model --extractor hf:PATH)"
        )
    if args.reasoning_budget < 0:
        raise MibeError(f"--reasoning-budget {args.reasoning_budget}: must be 0 or more")
    _check_plan(args)
    if not args.request_timeout > 0:  # also NaN
        raise MibeError(f"--request-timeout {args.request_timeout:g}: must be a positive number of seconds")


def _check_hosted(args: argparse.Namespace) -> None:
    """The hosted-baseline flags (docs/backends.md) with what they need."""
    if args.tokenizer and args.scoring == "loglikelihood":
        raise MibeError(
            f"--tokenizer {args.tokenizer}: counts and cuts prompts only; --scoring loglikelihood needs the "
            "served model's own tokenizer: pass --model as the local folder the server serves"
        )
    if (args.chat_template or "").strip() == "server" and args.backend != "openai":
        raise MibeError("--chat-template server: only with --backend openai (the server's own template)")
    if args.tokenizer and args.backend != "openai":
        raise MibeError(f"--tokenizer {args.tokenizer}: only with --backend openai")


def _check_plan(args: argparse.Namespace) -> None:
    """--shards, --throughput and --measure-throughput plan a run: a dry run's (docs/scale-out.md)."""
    if (args.plan_shards or args.throughput is not None) and not args.dry_run:
        raise MibeError("--shards and --throughput plan a run: add --dry-run (a run takes --shard I/N)")
    if args.throughput is not None and not args.throughput > 0:
        raise MibeError(f"--throughput {args.throughput:g}: must be a positive number of tokens per second")
    if args.throughput is not None and not args.plan_shards:
        raise MibeError("--throughput: give --shards N too (the wall time is per shard)")
    if args.measure_throughput is not None and not args.dry_run:
        raise MibeError("--measure-throughput DOCS is a dry run's: add --dry-run")
    if args.measure_throughput is not None and args.measure_throughput < 1:
        raise MibeError(f"--measure-throughput {args.measure_throughput}: must be 1 or more documents")
    if args.measure_throughput is not None and args.throughput is not None:
        raise MibeError("--measure-throughput and --throughput: give one (the measured one replaces it)")


def check_seed_and_bootstrap(seed: int, bootstrap: int) -> None:
    # numpy seeds are 0 .. 2**32 - 1: refused here, not after every document was generated.
    if not 0 <= seed < 2**32:
        raise MibeError(f"--seed {seed}: must be between 0 and {2**32 - 1}")
    from mibe.scoring.stats import MAX_BOOTSTRAP

    if not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise MibeError(f"--bootstrap {bootstrap}: must be 0 (no intervals) to {MAX_BOOTSTRAP:,} resamples")
