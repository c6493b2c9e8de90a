"""`mibe run`: score a model (or a sweep of models) on MIBE tasks and write a run folder.

Every flag's `dest` is the RunConfig field it sets: mibe/commands/run_config.py builds the
configuration from the parsed arguments field by field of the dataclass, not flag by flag."""

from __future__ import annotations

import argparse

from mibe.commands import options
from mibe.types import PARSERS, PROTOCOLS, SCORINGS


def add(run: argparse.ArgumentParser) -> None:
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
    options.add_data(run, demo="use the bundled invented documents (results marked invented)")
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
        "--dtype", default="auto", choices=options.DTYPES,
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
    options.add_reasoning_delimiters(thinking, "")
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
        "--base-url", action="append", default=[], metavar="URL", dest="base_urls",
        help="openai: the server, e.g. http://127.0.0.1:8000/v1; give it several times for a pool of "
        "servers serving one model (docs/backends.md)",
    )  # fmt: skip
    engine.add_argument(
        "--base-urls",
        metavar="FILE",
        dest="base_urls_file",
        help="openai: a pool's servers, one URL a line (# comments)",
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
    options.add_remote(
        engine, "[URL=]REASON",
        "send credentialed tasks to a non-loopback endpoint, e.g. a DUA-compliant private deployment: "
        "URL=REASON for that endpoint (a --base-url, --judge or --extractor URL; repeat for several), a "
        "bare REASON for --base-url only; each is said and recorded in results.json (docs/backends.md)",
    )  # fmt: skip
    run.add_argument(
        "--shard", metavar="I/N",
        help="score only shard I of N of each task's documents into this run folder; "
        "`mibe merge` makes one run of the N folders (docs/scale-out.md)",
    )  # fmt: skip
    run.add_argument(
        "--shards", type=int, metavar="N", dest="plan_shards",
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
    options.add_judge_order(jury)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """One model, or a sweep of several (--model repeated or --models FILE)."""
    from mibe.commands import run_config
    from mibe.runner import api, sweep

    chosen = sweep.models(args.model or [], args.models)
    args.model = chosen[0][1]
    config = run_config.from_args(args)
    if len(chosen) > 1 or args.models:
        sweep.run(config, chosen, ["mibe", *argv], api.run)
    else:
        api.run(config, command=["mibe", *argv])
    return 0


COMMAND = options.Command(
    "run",
    "score a model on MIBE tasks and write a run folder",
    formatter=options.Defaults,
)
