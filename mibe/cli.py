"""`mibe run`, `mibe tasks list|show|validate`. Heavy libraries load only inside the commands."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from mibe.resources import DOCS_EPILOG, cite_docs
from mibe.types import PARSERS, PROTOCOLS, SCORINGS, MibeError, RunConfig
from mibe.version import __version__


class _Defaults(argparse.HelpFormatter):
    """`--help` shows each option's default, except those that mean "not given" (None, off, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
        if "%(default)" in text or unset or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mibe", description="Score medical LLMs on MIBE (Me-LLaMA's benchmark)."
    )
    top.add_argument("--version", action="version", version=f"mibe {__version__}")
    top.add_argument("--debug", action="store_true", help="show tracebacks of unexpected failures")
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="score a model on MIBE tasks and write a run folder", formatter_class=_Defaults
    )
    run.add_argument(
        "--model",
        action="append",
        help="HF model folder or hub id, a LoRA adapter folder, or smollm2-135m; repeat it to score a sweep "
        "(each model into --output-dir/<label>/)",
    )
    run.add_argument("--models", metavar="FILE", help="a sweep: one model (or LABEL=MODEL) a line")
    run.add_argument("--adapter", help="LoRA adapter folder applied on --model")
    run.add_argument(
        "--adapters",
        metavar="DIR",
        help="each task through its own LoRA adapter DIR/<task>/ (from `mibe train task all --output-dir "
        "DIR`), over one load of --model, into one run folder",
    )
    run.add_argument("--backend", default="hf", choices=("hf", "vllm", "openai"), help="what runs the model")
    run.add_argument(
        "--tasks",
        default="all",
        help="all, public (the non-credentialed built-ins), task names, or task-file paths, comma-separated",
    )
    run.add_argument("--data-dir", help="folder with <task>.jsonl/.json/.csv/.tsv/.parquet or <task>/")
    run.add_argument("--data", action="append", default=[], metavar="TASK=PATH", help="data for one task")
    run.add_argument(
        "--demo", action="store_true", help="use the bundled invented documents (results marked invented)"
    )
    run.add_argument("--output-dir", help="the run folder (default runs/<model>-<timestamp>)")
    run.add_argument("--overwrite", action="store_true", help="replace a run folder with another config")
    run.add_argument("--limit", type=int, help="first N usable documents per task (marks the run partial)")
    run.add_argument(
        "--num-fewshot", type=int, default=0, help="solved examples before each prompt (from fewshot_split)"
    )
    run.add_argument("--seed", type=int, default=1234, help="seeds the few-shot draws and the bootstrap")
    run.add_argument(
        "--scoring", default="generate", choices=SCORINGS,
        help="generate an answer and parse it, or (closed label sets) pick the likeliest choice",
    )  # fmt: skip
    run.add_argument(
        "--parser", choices=PARSERS,
        help="default: the protocol's (mibe: strict, paper: paper); model: --extractor reads the answers",
    )  # fmt: skip
    run.add_argument(
        "--protocol", default="mibe", choices=PROTOCOLS,
        help="mibe: the task files' settings; paper: the paper's scripts (256 tokens, no stop, paper parser);"
        " paper-fewshot: paper with --num-fewshot K shots (from the train split when disjoint from the test)",
    )  # fmt: skip
    run.add_argument(
        "--max-new-tokens", type=int, help="cap on each answer's tokens (default: the task's; paper: 256)"
    )
    run.add_argument(
        "--chat-template", nargs="?", const="auto", metavar="auto|none|server|FILE",
        help="the chat template prompts are wrapped in (bare flag: auto). Default under --protocol mibe: "
        "auto (the checkpoint's training record, else the tokenizer's template, else none); under "
        "--protocol paper: none; server (openai): each prompt as one user message, the server's template "
        "(chat-only hosted models) (docs/chat-and-reasoning.md)",
    )  # fmt: skip
    run.add_argument("--system-prompt", help="a system turn before each prompt (needs a chat template)")
    run.add_argument(
        "--batch-size", type=int, default=8,
        help="documents per batch (HF backend; halved on out-of-memory). With --device cuda it sizes "
        "the batch of the longest prompts, and shorter ones share its token budget (up to 8x the rows)",
    )  # fmt: skip
    run.add_argument(
        "--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
        help="weights' precision (auto: the checkpoint's)",
    )  # fmt: skip
    run.add_argument(
        "--quantize", choices=("4bit", "8bit"),
        help="hf: load the weights quantised by bitsandbytes (a CUDA GPU); vllm takes AWQ/GPTQ "
        "checkpoints as --model",
    )  # fmt: skip
    run.add_argument(
        "--device-map", choices=("auto",), help="hf: spread the model over every visible GPU (accelerate)"
    )
    run.add_argument(
        "--device", default="auto",
        help="where the HF backend runs: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1, mps",
    )  # fmt: skip
    run.add_argument(
        "--bertscore-model", default="bert-base-multilingual-cased",
        help="hub id or local folder of the BERT model behind bertscore_f1",
    )  # fmt: skip
    run.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    run.add_argument("--trust-remote-code", action="store_true", help="run the model repo's own code (off)")
    run.add_argument(
        "--redact-samples",
        action="store_true",
        help="write samples without prompts or outputs: ids, labels and scores (label tasks), per-document "
        "statistics (span, entity and text tasks); rescore and audit then have nothing to re-parse",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="show data, prompt lengths and requests; load no model"
    )
    run.add_argument(
        "--fewshot-seeds", metavar="S1,S2,...",
        help="with --num-fewshot K: score each task once per shot draw, one draw per seed; results give "
        "each draw, mean ± sd over draws and an interval over documents and draws (docs/statistics.md)",
    )  # fmt: skip
    run.add_argument(
        "--choice-permutations", type=int, default=1, metavar="K",
        help="letter tasks (MedQA, MedMCQA): score each document under K orderings of its options, the "
        "identity then cyclic rotations; results give each ordering, mean ± sd, consistency and position "
        "bias (docs/statistics.md). Not with --fewshot-seeds",
    )  # fmt: skip
    thinking = run.add_argument_group("chat and reasoning models (docs/chat-and-reasoning.md)")
    thinking.add_argument(
        "--chat-template-kwargs", metavar="JSON",
        help="""template variables, e.g. '{"enable_thinking": false}' (openai: chat_template_kwargs)""",
    )  # fmt: skip
    thinking.add_argument(
        "--reasoning-delimiters", metavar="OPEN,CLOSE",
        help="the tags around a reasoning trace, split off before parsing (default <think>,</think>; "
        "several pairs separated by ';')",
    )  # fmt: skip
    thinking.add_argument(
        "--reasoning-budget", type=int, default=0, metavar="N",
        help="thinking tokens allowed on top of --max-new-tokens (the cap is their sum)",
    )  # fmt: skip
    thinking.add_argument(
        "--extractor", metavar="MODEL",
        help="with --parser model: the model that maps each answer to a choice by log-likelihood "
        "(hf:PATH, vllm:PATH, openai:URL#NAME, or a path)",
    )  # fmt: skip
    engine = run.add_argument_group("--backend vllm / openai (docs/backends.md)")
    engine.add_argument(
        "--tensor-parallel-size", type=int, default=1, metavar="N", help="vllm: GPUs per replica"
    )
    engine.add_argument(
        "--pipeline-parallel-size", type=int, default=1, metavar="N", help="vllm: pipeline stages"
    )
    engine.add_argument("--data-parallel-size", type=int, default=1, metavar="N", help="vllm: model replicas")
    engine.add_argument(
        "--gpu-memory-utilization", type=float, default=0.9, metavar="F", help="vllm: share of GPU memory"
    )
    engine.add_argument(
        "--max-model-len", type=int, metavar="N",
        help="vllm: context length (default: the model's); openai: the served model's context, where "
        "/models does not report it (prompts are then cut inside the document, as for local models)",
    )  # fmt: skip
    engine.add_argument(
        "--tokenizer", metavar="NAME|PATH",
        help="openai: the tokenizer that counts and truncates prompts when the served model's own is not "
        "at hand (a local folder or a hub id)",
    )  # fmt: skip
    engine.add_argument(
        "--price", metavar="IN,OUT",
        help="with --dry-run: dollars per million prompt and answer tokens; the plan adds a cost per task",
    )  # fmt: skip
    engine.add_argument(
        "--base-url", action="append", default=[], metavar="URL",
        help="openai: the server, e.g. http://127.0.0.1:8000/v1; give it several times for a pool of "
        "servers serving one model (docs/backends.md)",
    )  # fmt: skip
    engine.add_argument(
        "--base-urls", metavar="FILE", help="openai: a pool's servers, one URL a line (# comments)"
    )
    engine.add_argument("--api-key-env", metavar="VAR", help="openai: variable holding the API key")
    engine.add_argument(
        "--max-concurrency", type=int, default=8, metavar="N", help="openai: requests in flight"
    )
    engine.add_argument(
        "--request-timeout", type=float, default=120.0, metavar="SECONDS",
        help="openai: an idle timeout: a request with no byte received for this long is retried "
        "(a long answer that keeps arriving is never cut); default 120",
    )  # fmt: skip
    engine.add_argument(
        "--allow-remote-credentialed", action="append", default=[], metavar="[URL=]REASON",
        help="send credentialed tasks to a non-loopback endpoint, e.g. a DUA-compliant private deployment: "
        "URL=REASON for that endpoint (a --base-url, --judge or --extractor URL; repeat for several), a "
        "bare REASON for --base-url only; each is said and recorded in results.json (docs/backends.md)",
    )  # fmt: skip
    run.add_argument(
        "--shard", metavar="I/N",
        help="score only shard I of N of each task's documents into this run folder; "
        "`mibe merge` makes one run of the N folders (docs/scale-out.md)",
    )  # fmt: skip
    run.add_argument(
        "--shards", type=int, metavar="N",
        help="with --dry-run: each of N shards' documents, tokens and (with --throughput) wall time",
    )  # fmt: skip
    run.add_argument(
        "--throughput", type=float, metavar="TOKENS_PER_S",
        help="with --dry-run --shards: prompt plus generated tokens per second of one shard's job",
    )  # fmt: skip
    run.add_argument(
        "--measure-throughput", type=int, metavar="DOCS",
        help="with --dry-run: load the model and time DOCS documents (nothing written); the measured "
        "tokens per second sets each shard's wall time under --shards",
    )  # fmt: skip
    jury = run.add_argument_group("judges (docs/judges.md)")
    jury.add_argument(
        "--judge", action="append", default=[], metavar="SPEC",
        help="after scoring, a judge model scores the text tasks' summaries against their rubric: "
        "hf:PATH, vllm:PATH or openai:URL#NAME (repeat for a jury)",
    )  # fmt: skip
    jury.add_argument(
        "--judge-order", default="reference_first", choices=("reference_first", "candidate_first")
    )

    from mibe.boards import cli as board_cli  # argparse only; each command imports its modules when it runs
    from mibe.runfolder import sharding  # argparse only, as board_cli

    sharding.add_merge(sub)
    sharding.add_scale_out(sub)
    board_cli.add_leaderboard(sub)
    board_cli.add_compare(sub)

    tasks = sub.add_parser("tasks", help="list, show or validate task files")
    tsub = tasks.add_subparsers(dest="tasks_command", required=True)
    tsub.add_parser("list", help="the built-in tasks")
    show = tsub.add_parser("show", help="a task's rendered prompt, parse rule and metrics")
    show.add_argument("name", help="a task name or task-file path")
    show.add_argument("--data-dir", help="render the first document found here (as mibe run reads it)")
    show.add_argument("--data", action="append", default=[], metavar="TASK=PATH", help="data for the task")
    validate = tsub.add_parser("validate", help="check task files; exit 2 on the first bad one")
    validate.add_argument("paths", nargs="+", help="task names (built-in) or task-file paths (./x.yaml)")
    new = tsub.add_parser(
        "new", help="write NAME.yaml, NAME.jinja and NAME.jsonl (one invented row) to start a task from",
        formatter_class=_Defaults,
    )  # fmt: skip
    new.add_argument("task_name", metavar="NAME", help="the task's name: lower-case letters, digits and _")
    new.add_argument(
        "--kind", default="choice", choices=("choice", "letter", "multi_label", "span", "entities", "text"),
        help="the answer kind (docs/task-files.md)",
    )  # fmt: skip
    new.add_argument("--dir", default=".", help="the folder to write into (never overwrites)")
    data = sub.add_parser("data", help="check data before a run (loads no model)")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    check = data_commands.add_parser(
        "check", help="per task: where its data comes from, documents, labels, unusable rows"
    )
    check.add_argument("--data-dir", help="folder with <task>.jsonl/.json/.csv/.tsv/.parquet or <task>/")
    check.add_argument("--data", action="append", default=[], metavar="TASK=PATH", help="data for one task")
    check.add_argument(
        "--tasks",
        default="all",
        help="all, public (the non-credentialed built-ins), task names, or task-file paths, comma-separated",
    )
    check.add_argument("--demo", action="store_true", help="check the bundled invented documents")
    from mibe.training import contamination  # argparse only at start-up; the scan loads when it runs

    contamination.add_arguments(
        data_commands.add_parser(
            "contamination",
            help="which evaluation documents a training corpus repeats (docs/contamination.md)",
        )
    )

    rescore = sub.add_parser("rescore", help="re-parse a run's saved outputs and recompute its metrics")
    rescore.add_argument("run_dir", help="a run folder written by `mibe run`")
    rescore.add_argument(
        "--parser", default="strict", choices=PARSERS,
        help="the parser to apply (strict); model: --extractor maps each answer to a label, loading only "
        "the extractor, never the evaluated model",
    )  # fmt: skip
    rescore.add_argument("--extractor", metavar="MODEL", help="with --parser model: hf:PATH, vllm:PATH, ...")
    rescore.add_argument(
        "--allow-remote-credentialed", action="append", default=[], metavar="URL=REASON",
        help="with an openai: extractor, send credentialed tasks to that non-loopback endpoint",
    )  # fmt: skip
    rescore.add_argument(
        "--device",
        help="where an hf: extractor runs (default: the run's device when this machine has it, else cpu)",
    )
    rescore.add_argument(
        "--tasks", help="task names in the run, or task files to trust (their hooks may run), comma-separated"
    )
    rescore.add_argument("--output-dir", required=True, help="the new run folder (new or empty)")
    rescore.add_argument("--overwrite", action="store_true", help=OVERWRITE)
    imp = sub.add_parser(
        "import",
        help="turn another harness's saved outputs (lm-eval, Me-LLaMA) into a run folder",
        description="Score another harness's per-document outputs with mibe's parsers and metrics; no model "
        "is loaded. docs/importing.md lists the fields read from each format.",
    )
    imp.add_argument("harness", choices=("lm-eval", "me-llama"), help="the harness that wrote the files")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="its per-document output files (one task)")
    imp.add_argument("--task", required=True, help="the MIBE task (a name or a task-file path) they answer")
    imp.add_argument("--model-name", help="the model's name on boards (default: '<harness> import')")
    imp.add_argument("--parser", default="strict", choices=PARSERS, help="the parser for generated outputs")
    imp.add_argument("--seed", type=int, default=1234, help="bootstrap seed")
    imp.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    imp.add_argument("--output-dir", required=True, help="the new run folder (new or empty)")
    imp.add_argument(
        "--reasoning-delimiters", metavar="OPEN,CLOSE",
        help="the tags around a reasoning trace, split off before parsing as mibe run does (default "
        "<think>,</think>; several pairs separated by ';')",
    )  # fmt: skip
    imp.add_argument("--overwrite", action="store_true", help=OVERWRITE)
    _add_judge(sub)
    audit = sub.add_parser("audit", help="where the paper's and the strict parser disagree")
    audit.add_argument("run_dir", help="a run folder written by `mibe run`")
    audit.add_argument(
        "--tasks", help="task names in the run, or task files to trust (their hooks may run), comma-separated"
    )
    audit.add_argument("-o", "--output", metavar="FILE", help="write the audit as markdown to FILE")
    audit.add_argument("--format", default="text", choices=("text", "md"), help="stdout format (text)")
    audit.add_argument("--examples", type=int, default=3, help="example outputs per kind of disagreement")
    audit.add_argument(
        "--show-credentialed",
        "--show-credentialed-examples",
        dest="show_credentialed",
        action="store_true",
        help="include credentialed text in the examples (off)",
    )
    view = sub.add_parser(
        "view", help="a self-contained HTML page to read a run's samples, or where two runs differ"
    )
    view.add_argument("run", help="a run folder")
    view.add_argument("run_b", nargs="?", help="a second run folder: shows the documents scored differently")
    view.add_argument("-o", "--output", required=True, metavar="FILE.html", help="the page to write")
    view.add_argument(
        "--show-credentialed",
        action="store_true",
        help="include prompts and outputs of credentialed tasks (off: ids, scores and labels only)",
    )
    train = sub.add_parser(
        "train",
        help="continual pre-training, LoRA instruction tuning, task fine-tuning (mibe train KIND --help)",
        description="mibe train pretrain|sft|task --config RECIPE.yaml [flags] [--set KEY=VALUE ...]; "
        "`mibe train pretrain --help` lists the flags (docs/training.md)",
    )
    train.add_argument("train_args", nargs=argparse.REMAINDER, metavar="{pretrain,sft,task} ...")
    docs = sub.add_parser("docs", help="list the documentation pages, or print one (they ship with mibe)")
    docs.add_argument("page", nargs="?", metavar="PAGE", help="a page's name, e.g. statistics")
    docs.add_argument("--path", action="store_true", help="print where the page is instead of its text")
    for parser in (top, *sub.choices.values()):  # help texts cite pages: say how to read them
        parser.epilog = parser.epilog or DOCS_EPILOG
    return top


OVERWRITE = "replace what mibe wrote in the folder, its caches too; nothing else is deleted"


def _add_judge(sub: Any) -> None:
    judge = sub.add_parser(
        "judge", help="score a run's summaries with a jury of judge models (docs/judges.md)",
        description="Judge a finished run's text-task outputs against each task's `judge:` rubric and "
        "write a new run folder with judge_<criterion> columns; the evaluated model is not loaded.",
    )  # fmt: skip
    judge.add_argument("run_dir", help="a run folder written by `mibe run`")
    judge.add_argument(
        "--judge", action="append", required=True, metavar="SPEC",
        help="hf:PATH, vllm:PATH or openai:URL#NAME (a bare PATH means hf:); repeat for a jury",
    )  # fmt: skip
    judge.add_argument("--tasks", help="text tasks in the run, comma-separated (default: all with a rubric)")
    judge.add_argument("--limit", type=int, help="judge the first N documents of each task")
    judge.add_argument(
        "--human-ratings", metavar="FILE", help="CSV id,criterion,score: judge-human agreement"
    )
    judge.add_argument(
        "--output-dir", required=True, help="the new run folder (rerun the same command to resume)"
    )
    judge.add_argument("--overwrite", action="store_true", help=OVERWRITE)
    judge.add_argument(
        "--judge-order", default="reference_first", choices=("reference_first", "candidate_first")
    )
    judge.add_argument(
        "--judge-max-new-tokens", type=int, default=256, metavar="N", help="tokens a reply may take"
    )
    judge.add_argument(
        "--device", help="where hf: judges run (default: the run's device when this machine has it, else cpu)"
    )
    judge.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    judge.add_argument("--batch-size", type=int, default=8)
    judge.add_argument("--trust-remote-code", action="store_true", help="run the judge repo's own code (off)")
    judge.add_argument(
        "--allow-remote-credentialed", action="append", default=[], metavar="URL=REASON",
        help="send credentialed tasks to the judge at URL, a non-loopback endpoint (repeat per judge); "
        "said and recorded in results.json",
    )  # fmt: skip


def _config(args: argparse.Namespace) -> RunConfig:
    from mibe.datacheck import parse_pairs

    pairs = parse_pairs(args.data)
    _check(args)
    seeds = _seeds(args.fewshot_seeds, args.num_fewshot)
    urls = _base_urls(args)
    from mibe.backends.chat import parse_kwargs
    from mibe.backends.traces import parse_delimiters

    return RunConfig(
        model=args.model,
        adapter=args.adapter,
        adapters=args.adapters,
        backend=args.backend,
        tasks=(args.tasks,),
        data_dir=args.data_dir,
        data=pairs,
        output_dir=args.output_dir,
        overwrite=args.overwrite,
        limit=args.limit,
        num_fewshot=args.num_fewshot,
        seed=args.seed,
        scoring=args.scoring,
        parser=args.parser,
        protocol=args.protocol,
        max_new_tokens=args.max_new_tokens,
        chat_template=args.chat_template,
        system_prompt=args.system_prompt,
        batch_size=args.batch_size,
        dtype=args.dtype,
        device=args.device,
        quantize=args.quantize,
        device_map=args.device_map,
        bertscore_model=args.bertscore_model,
        trust_remote_code=args.trust_remote_code,
        demo=args.demo,
        redact_samples=args.redact_samples,
        dry_run=args.dry_run,
        bootstrap=args.bootstrap,
        tensor_parallel_size=args.tensor_parallel_size,
        pipeline_parallel_size=args.pipeline_parallel_size,
        data_parallel_size=args.data_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        **_hosted(args),
        base_url=urls[0] if urls else None,
        base_urls=tuple(urls),
        api_key_env=args.api_key_env,
        max_concurrency=args.max_concurrency,
        allow_remote_credentialed=tuple(args.allow_remote_credentialed),
        fewshot_seeds=seeds,
        choice_permutations=_permutations(args.choice_permutations, seeds),
        request_timeout=args.request_timeout,
        chat_template_kwargs=parse_kwargs(args.chat_template_kwargs),
        reasoning_delimiters=parse_delimiters(args.reasoning_delimiters),
        reasoning_budget=args.reasoning_budget,
        extractor=args.extractor,
    )


def _hosted(args: argparse.Namespace) -> dict[str, Any]:
    """The hosted-baseline settings (docs/backends.md): the counting tokenizer and the plan's price."""
    return {"tokenizer": args.tokenizer, "price": _price(args.price, args.dry_run)}


def _price(value: str | None, dry_run: bool) -> tuple[float, float] | None:
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


def _base_urls(args: argparse.Namespace) -> list[str]:
    from mibe.backends.pool import urls

    return urls(args.base_url, args.base_urls)


def _seeds(spec: str | None, shots: int) -> tuple[int, ...]:
    if shots < 0:
        raise MibeError(f"--num-fewshot {shots}: must be 0 or more")
    if spec is None:
        return ()
    try:
        seeds = tuple(int(s) for s in spec.split(","))
    except ValueError:
        raise MibeError(f"--fewshot-seeds {spec}: integers separated by commas, e.g. 1,2,3") from None
    if len(set(seeds)) != len(seeds):
        raise MibeError(f"--fewshot-seeds {spec}: a seed is named twice; give each draw's seed once")
    if any(not 0 <= seed < 2**32 for seed in seeds):  # numpy's seed range, as --seed
        raise MibeError(f"--fewshot-seeds {spec}: each seed must be between 0 and {2**32 - 1}")
    if shots < 1:
        raise MibeError(f"--fewshot-seeds {spec}: draws need shots; add --num-fewshot K (K >= 1)")
    return seeds


def _permutations(k: int, seeds: tuple[int, ...]) -> int:
    # One line on combinations: with --scoring loglikelihood, --num-fewshot, data-parallel ranks and
    # --shard yes; with --fewshot-seeds no (orderings x draws would be a third level no interval covers).
    if not 1 <= k <= 26:
        raise MibeError(
            f"--choice-permutations {k}: give 1 (off) to 26 orderings; at most a task's number of options"
        )
    if k > 1 and seeds:
        raise MibeError(
            f"--choice-permutations {k} with --fewshot-seeds: not both at once; score the orderings with one "
            "--seed, or the draws without --choice-permutations"
        )
    return k


def _check(args: argparse.Namespace) -> None:
    if args.tokenizer and args.scoring == "loglikelihood":
        raise MibeError(
            f"--tokenizer {args.tokenizer}: counts and cuts prompts only; --scoring loglikelihood needs the "
            "served model's own tokenizer: pass --model as the local folder the server serves"
        )
    if (args.chat_template or "").strip() == "server" and args.backend != "openai":
        raise MibeError("--chat-template server: only with --backend openai (the server's own template)")
    if args.tokenizer and args.backend != "openai":
        raise MibeError(f"--tokenizer {args.tokenizer}: only with --backend openai")
    for flag, value in (
        ("--limit", args.limit),
        ("--batch-size", args.batch_size),
        ("--max-new-tokens", args.max_new_tokens),
        ("--tensor-parallel-size", args.tensor_parallel_size),
        ("--pipeline-parallel-size", args.pipeline_parallel_size),
        ("--data-parallel-size", args.data_parallel_size),
        ("--max-model-len", args.max_model_len),
        ("--max-concurrency", args.max_concurrency),
        ("--shards", args.shards),
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
    if (args.shards or args.throughput is not None) and not args.dry_run:
        raise MibeError("--shards and --throughput plan a run: add --dry-run (a run takes --shard I/N)")
    if args.throughput is not None and not args.throughput > 0:
        raise MibeError(f"--throughput {args.throughput:g}: must be a positive number of tokens per second")
    if args.throughput is not None and not args.shards:
        raise MibeError("--throughput: give --shards N too (the wall time is per shard)")
    if args.measure_throughput is not None and not args.dry_run:
        raise MibeError("--measure-throughput DOCS is a dry run's: add --dry-run")
    if args.measure_throughput is not None and args.measure_throughput < 1:
        raise MibeError(f"--measure-throughput {args.measure_throughput}: must be 1 or more documents")
    if args.measure_throughput is not None and args.throughput is not None:
        raise MibeError("--measure-throughput and --throughput: give one (the measured one replaces it)")
    if not args.request_timeout > 0:  # also NaN
        raise MibeError(f"--request-timeout {args.request_timeout:g}: must be a positive number of seconds")


def check_seed_and_bootstrap(seed: int, bootstrap: int) -> None:
    # numpy seeds are 0 .. 2**32 - 1: refused here, not after every document was generated.
    if not 0 <= seed < 2**32:
        raise MibeError(f"--seed {seed}: must be between 0 and {2**32 - 1}")
    from mibe.scoring.stats import MAX_BOOTSTRAP

    if not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise MibeError(f"--bootstrap {bootstrap}: must be 0 (no intervals) to {MAX_BOOTSTRAP:,} resamples")


def _docs_command(args: argparse.Namespace) -> int:
    """`mibe docs`: the pages with their titles; `mibe docs PAGE [--path]`: one page's text or path."""
    from mibe import resources

    if args.page:
        page = resources.doc_page(args.page)
        print(page if args.path else page.read_text(encoding="utf-8").rstrip("\n"))
        return 0
    pages = resources.doc_pages()
    width = max(map(len, pages), default=0)
    for name, path in pages.items():
        print(f"{name:<{width}}  {resources.doc_title(path)}")
    print(f"`mibe docs PAGE` prints a page, `--path` where it is (in {resources.docs_dir()})")
    return 0


def _tasks_command(args: argparse.Namespace) -> int:
    from mibe import tasks

    if args.tasks_command == "list":
        rows = [("name", "kind", "metrics", "credentialed", "groups", "data source")]
        general = {t.name: t for t in tasks.resolve(["general"])[0]}
        for t in [*(tasks.load_task(p) for p in tasks.builtin_paths().values()), *general.values()]:
            groups = "general" if t.name in general else "all" if t.credentialed else "all, public"
            source = f"{t.source} ({t.config})" if t.config else t.source
            rows.append(
                (
                    t.name,
                    t.answer_type,
                    ",".join(t.metrics),
                    "yes" if t.credentialed else "no",
                    groups,
                    "local only (credentialed)" if t.credentialed else source or "local only",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
        print(
            "--tasks all: the MIBE tasks (group all); --tasks public: the ones not credentialed (hosted "
            "models); --tasks general: the general-domain benchmarks of the forgetting study, never in all"
        )
        return 0
    if args.tasks_command == "validate":
        for path in args.paths:
            t = tasks.named(path, f"mibe tasks validate {path[:80]}")
            metrics = ", ".join(t.metrics)
            judged = f"; judged on {', '.join(t.judge.names)}" if t.judge is not None else ""
            kind = f"{t.answer_type}, {len(t.choices)} choices, metrics {metrics}"
            print(f"ok  {path}: task {t.name} ({kind}){judged}")
        return 0
    if args.tasks_command == "new":
        return _new_task(args)
    return _show_task(args)


def _new_task(args: argparse.Namespace) -> int:
    from mibe import taskfiles

    written = taskfiles.new(args.task_name, args.kind, args.dir)
    for path in written:
        print(f"wrote {path}")
    yaml = written[0]
    print(f"next: mibe tasks validate {yaml}; mibe tasks show {yaml}; mibe run --model MODEL --tasks {yaml}")
    return 0


def _show_task(args: argparse.Namespace) -> int:
    from mibe import data, taskfiles
    from mibe.datacheck import parse_pairs
    from mibe.scoring import kinds

    task = taskfiles.find(args.name)
    print(f"# {task.name} (version {task.version}): {task.description}")
    print(f"file: {task.path}\ntemplate: {task.template_name} (hash {task.template_hash})")
    print(f"data: {task.source or 'local only'}; split {task.split}; credentialed: {task.credentialed}")
    print(f"access: {task.access}")
    print(f"answer: {task.answer_type}; choices: {', '.join(task.choices) or '-'}")
    print(f"parse rule: {kinds.get(task.answer_type).rule}")
    print(f"generation: max_new_tokens {task.max_new_tokens}, stop {list(task.stop)}")
    print(f"metrics: {', '.join(task.metrics)}")
    clusters = (
        f"`{task.cluster}`, resampled whole" if task.cluster else "none: documents resampled one by one"
    )
    print(f"clusters: {clusters} (docs/statistics.md)")
    if task.judge is not None:
        low, high = task.judge.scale
        print(f"judge rubric: {', '.join(task.judge.names)} (scale {low}-{high}; docs/judges.md)")
    try:
        prompt, where = taskfiles.first_document(task, args.data_dir, parse_pairs(args.data))
    except data.NoData as exc:
        print(f"--- no document to render: {exc} ---")
        return 0
    print(f"--- rendered prompt (the first document: {where}) ---")
    print(prompt, end="")
    print("\n--- end ---")
    return 0


def one_line(text: str) -> str:
    """An error is one line, whatever a path or name in it holds."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _data_command(args: argparse.Namespace) -> int:
    from mibe import datacheck, resources

    if args.demo and args.data_dir is None:  # as `mibe run --demo`
        args.data_dir = str(resources.demo_dir())
    if args.data_command == "contamination":
        from mibe.training import contamination

        return contamination.main(args)
    return datacheck.main(args)


def _run_command(args: argparse.Namespace, argv: list[str]) -> int:
    """`mibe run`: one model, or a sweep of several (--model repeated or --models FILE)."""
    from mibe.runner import api, sweep

    chosen = sweep.models(args.model or [], args.models)
    args.model = chosen[0][1]
    config = dataclasses.replace(_config(args), judge=tuple(args.judge), judge_order=args.judge_order)
    # --shard I/N (a part of a run) and --shards N (a dry run's plan per shard): docs/scale-out.md
    config = dataclasses.replace(
        config, shard=args.shard, plan_shards=args.shards, throughput=args.throughput,
        measure_throughput=args.measure_throughput,
    )  # fmt: skip
    if len(chosen) > 1 or args.models:
        sweep.run(config, chosen, ["mibe", *argv], api.run, lambda line: print(line, file=sys.stderr))
    else:
        api.run(config, command=["mibe", *argv])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.command in ("leaderboard", "compare"):  # reads run folders only; no model is loaded
            from mibe.boards import cli as board_cli

            return board_cli.leaderboard(args) if args.command == "leaderboard" else board_cli.compare(args)
        if args.command in ("tasks", "docs"):  # task files and shipped pages; no model is loaded
            return _tasks_command(args) if args.command == "tasks" else _docs_command(args)
        if args.command == "data":  # reads data only; no model is loaded
            return _data_command(args)
        if args.command == "view":  # reads run folders only; no model is loaded
            from mibe.boards import view_cli

            return view_cli.command(args)
        if args.command == "import":  # reads files only; no model is loaded
            from mibe.runfolder import import_run

            return import_run.command(args, argv)
        if args.command in ("rescore", "audit"):  # light modules; no model is ever loaded
            from mibe.runfolder import audit, rescore

            if args.command == "rescore" and args.parser == "model":  # loads the extractor (only it)
                from mibe.runner import extract

                return extract.rescore_command(args, argv)
            return rescore.command(args, argv) if args.command == "rescore" else audit.command(args)
        if args.command == "judge":  # judge models only; the evaluated model is never loaded
            from mibe.runner import judge_run

            return judge_run.command(args, argv)
        if args.command == "scale-out":  # prints a shipped file
            from mibe.runfolder import sharding

            return sharding.scale_out(args)
        if args.command == "merge":  # reads shard folders only; no model is loaded
            from mibe.runner import merge

            return merge.command(args, argv)
        if args.command == "train":  # the training subpackage parses its own flags
            from mibe.training import cli as train_cli

            return train_cli.main(args.train_args)
        return _run_command(args, argv)
    except MibeError as exc:
        print("mibe: error: " + one_line(cite_docs(str(exc))), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mibe: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # the one case with a traceback, and only with --debug
        if args.debug:
            traceback.print_exc()
        print(
            f"mibe: unexpected failure: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
