"""`mibe run`, `mibe tasks list|show|validate`. Heavy libraries load only inside the commands."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from mibe import __version__
from mibe.types import PARSERS, PROTOCOLS, SCORINGS, MibeError, RunConfig


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mibe", description="Score medical LLMs on MIBE (Me-LLaMA's benchmark)."
    )
    top.add_argument("--version", action="version", version=f"mibe {__version__}")
    top.add_argument("--debug", action="store_true", help="show tracebacks of unexpected failures")
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="score a model on MIBE tasks and write a run folder")
    run.add_argument(
        "--model", required=True, help="HF model folder or hub id, a LoRA adapter folder, or smollm2-135m"
    )
    run.add_argument("--adapter", help="LoRA adapter folder applied on --model")
    run.add_argument("--backend", default="hf", choices=("hf", "vllm", "openai"))
    run.add_argument("--tasks", default="all", help="all, task names, or task-file paths, comma-separated")
    run.add_argument("--data-dir", help="folder with <task>.jsonl/.json/.csv/.tsv/.parquet or <task>/")
    run.add_argument("--data", action="append", default=[], metavar="TASK=PATH", help="data for one task")
    run.add_argument(
        "--demo", action="store_true", help="use the bundled invented documents (results marked invented)"
    )
    run.add_argument("--output-dir", help="the run folder (default runs/<model>-<timestamp>)")
    run.add_argument("--overwrite", action="store_true", help="replace a run folder with another config")
    run.add_argument("--limit", type=int, help="first N usable documents per task (marks the run partial)")
    run.add_argument("--num-fewshot", type=int, default=0)
    run.add_argument("--seed", type=int, default=1234)
    run.add_argument("--scoring", default="generate", choices=SCORINGS)
    run.add_argument(
        "--parser", choices=PARSERS,
        help="default: the protocol's (mibe: strict, paper: paper); model: --extractor reads the answers",
    )  # fmt: skip
    run.add_argument("--protocol", default="mibe", choices=PROTOCOLS)
    run.add_argument("--max-new-tokens", type=int)
    run.add_argument(
        "--chat-template", nargs="?", const="auto", metavar="auto|none|FILE",
        help="the chat template prompts are wrapped in (bare flag: auto). Default under --protocol mibe: "
        "auto (the checkpoint's training record, else the tokenizer's template, else none); under "
        "--protocol paper: none (docs/chat-and-reasoning.md)",
    )  # fmt: skip
    run.add_argument("--system-prompt", help="a system turn before each prompt (needs a chat template)")
    run.add_argument(
        "--batch-size", type=int, default=8,
        help="documents per batch (HF backend; halved on out-of-memory). With --device cuda it sizes "
        "the batch of the longest prompts, and shorter ones share its token budget (up to 8x the rows)",
    )  # fmt: skip
    run.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    run.add_argument("--device", default="cpu")
    run.add_argument("--bertscore-model", default="bert-base-multilingual-cased")
    run.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    run.add_argument("--trust-remote-code", action="store_true", help="run the model repo's own code (off)")
    run.add_argument(
        "--redact-samples", action="store_true", help="keep only ids and scores in samples after scoring"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="show data, prompt lengths and requests; load no model"
    )
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
        "--max-model-len", type=int, metavar="N", help="vllm: context length (default: the model's)"
    )
    engine.add_argument("--base-url", help="openai: the server, e.g. http://127.0.0.1:8000/v1")
    engine.add_argument("--api-key-env", metavar="VAR", help="openai: variable holding the API key")
    engine.add_argument(
        "--max-concurrency", type=int, default=8, metavar="N", help="openai: requests in flight"
    )
    engine.add_argument(
        "--allow-remote-credentialed",
        metavar="REASON",
        help="openai: send credentialed tasks to a non-loopback endpoint, e.g. a DUA-compliant private "
        "deployment; the reason is recorded in results.json",
    )

    from mibe.boards import cli as board_cli  # argparse only; each command imports its modules when it runs

    board_cli.add_leaderboard(sub)
    board_cli.add_compare(sub)

    tasks = sub.add_parser("tasks", help="list, show or validate task files")
    tsub = tasks.add_subparsers(dest="tasks_command", required=True)
    tsub.add_parser("list", help="the built-in tasks")
    show = tsub.add_parser("show", help="a task's rendered prompt, parse rule and metrics")
    show.add_argument("name", help="a task name or task-file path")
    validate = tsub.add_parser("validate", help="check task files; exit 2 on the first bad one")
    validate.add_argument("paths", nargs="+")
    data = sub.add_parser("data", help="check data before a run (loads no model)")
    check = data.add_subparsers(dest="data_command", required=True).add_parser(
        "check", help="per task: where its data comes from, documents, labels, unusable rows"
    )
    check.add_argument("--data-dir", help="folder with <task>.jsonl/.json/.csv/.tsv/.parquet or <task>/")
    check.add_argument("--data", action="append", default=[], metavar="TASK=PATH", help="data for one task")
    check.add_argument("--tasks", default="all", help="all, task names, or task-file paths, comma-separated")

    rescore = sub.add_parser("rescore", help="re-parse a run's saved outputs and recompute its metrics")
    rescore.add_argument("run_dir", help="a run folder written by `mibe run`")
    rescore.add_argument(
        "--parser", default="strict", choices=PARSERS,
        help="the parser to apply (strict); model: --extractor maps each answer to a label, loading only "
        "the extractor, never the evaluated model",
    )  # fmt: skip
    rescore.add_argument("--extractor", metavar="MODEL", help="with --parser model: hf:PATH, vllm:PATH, ...")
    rescore.add_argument(
        "--allow-remote-credentialed", metavar="REASON",
        help="with an openai: extractor, send credentialed tasks to a non-loopback endpoint",
    )  # fmt: skip
    rescore.add_argument("--tasks", help="task names in the run, comma-separated (default: all of them)")
    rescore.add_argument("--output-dir", required=True, help="the new run folder (new or empty)")
    audit = sub.add_parser("audit", help="where the paper's and the strict parser disagree")
    audit.add_argument("run_dir", help="a run folder written by `mibe run`")
    audit.add_argument("--tasks", help="task names in the run, comma-separated (default: all of them)")
    audit.add_argument("-o", "--output", metavar="FILE", help="write the audit as markdown to FILE")
    audit.add_argument("--format", default="text", choices=("text", "md"), help="stdout format (text)")
    audit.add_argument("--examples", type=int, default=3, help="example outputs per kind of disagreement")
    audit.add_argument("--show-credentialed-examples", action="store_true", help="include credentialed text")
    train = sub.add_parser(
        "train",
        help="continual pre-training, LoRA instruction tuning, task fine-tuning (mibe train KIND --help)",
        description="mibe train pretrain|sft|task --config RECIPE.yaml [flags] [--set KEY=VALUE ...]; "
        "`mibe train pretrain --help` lists the flags (docs/training.md)",
    )
    train.add_argument("train_args", nargs=argparse.REMAINDER, metavar="{pretrain,sft,task} ...")
    return top


def _check_run_flags(args: argparse.Namespace) -> None:
    for flag, value in (
        ("--limit", args.limit),
        ("--batch-size", args.batch_size),
        ("--max-new-tokens", args.max_new_tokens),
        ("--tensor-parallel-size", args.tensor_parallel_size),
        ("--pipeline-parallel-size", args.pipeline_parallel_size),
        ("--data-parallel-size", args.data_parallel_size),
        ("--max-model-len", args.max_model_len),
        ("--max-concurrency", args.max_concurrency),
    ):
        if value is not None and value < 1:
            raise MibeError(f"{flag} {value}: must be a positive integer")
    if not 0 < args.gpu_memory_utilization <= 1:
        raise MibeError(f"--gpu-memory-utilization {args.gpu_memory_utilization}: must be in (0, 1]")
    if args.num_fewshot < 0:
        raise MibeError(f"--num-fewshot {args.num_fewshot}: must be 0 or more")
    if (args.parser == "model") != bool(args.extractor):
        raise MibeError(
            "--parser model and --extractor MODEL go together: the extractor is the model that reads "
            "the answers (e.g. --parser model --extractor hf:PATH)"
        )
    if args.reasoning_budget < 0:
        raise MibeError(f"--reasoning-budget {args.reasoning_budget}: must be 0 or more")


def _config(args: argparse.Namespace) -> RunConfig:
    pairs = {}
    for item in args.data:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise MibeError(f"--data {item}: expected TASK=PATH, e.g. --data mednli=~/mednli/")
        pairs[task] = path
    _check_run_flags(args)
    from mibe.backends.chat import parse_kwargs
    from mibe.run.templating import parse_delimiters

    return RunConfig(
        model=args.model,
        adapter=args.adapter,
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
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        max_concurrency=args.max_concurrency,
        allow_remote_credentialed=args.allow_remote_credentialed,
        chat_template_kwargs=parse_kwargs(args.chat_template_kwargs),
        reasoning_delimiters=parse_delimiters(args.reasoning_delimiters),
        reasoning_budget=args.reasoning_budget,
        extractor=args.extractor,
    )


def _tasks_command(args: argparse.Namespace) -> int:
    from mibe import tasks
    from mibe.scoring import kinds

    if args.tasks_command == "list":
        rows = [("name", "kind", "metrics", "credentialed", "data source")]
        for path in tasks.builtin_paths().values():
            t = tasks.load_task(path)
            rows.append(
                (
                    t.name,
                    t.answer_type,
                    ",".join(t.metrics),
                    "yes" if t.credentialed else "no",
                    "local only (credentialed)" if t.credentialed else t.source or "local only",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
        return 0
    if args.tasks_command == "validate":
        for path in args.paths:
            t = tasks.load_task(path)
            metrics = ", ".join(t.metrics)
            print(f"ok  {path}: task {t.name} ({t.answer_type}, {len(t.choices)} choices, metrics {metrics})")
        return 0
    (task,), _ = tasks.resolve([args.name])
    print(f"# {task.name} (version {task.version}): {task.description}")
    print(f"file: {task.path}\ntemplate: {task.template_name} (hash {task.template_hash})")
    print(f"data: {task.source or 'local only'}; split {task.split}; credentialed: {task.credentialed}")
    print(f"access: {task.access}")
    print(f"answer: {task.answer_type}; choices: {', '.join(task.choices) or '-'}")
    print(f"parse rule: {kinds.get(task.answer_type).rule}")
    print(f"generation: max_new_tokens {task.max_new_tokens}, stop {list(task.stop)}")
    print(f"metrics: {', '.join(task.metrics)}")
    print("--- rendered prompt (first bundled invented document) ---")
    print(_example_prompt(task), end="")
    print("\n--- end ---")
    return 0


def _example_prompt(task) -> str:
    from mibe import data, prompts, resources

    try:
        location = data.locate(task, str(resources.demo_dir()), {})
        docs = data.load_docs(task, location).docs
    except (data.NoData, MibeError):
        return "(no bundled example document for this task)\n"
    return prompts.doc_prompt(task.template, docs[0]) if docs else "(no usable example)\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.command in ("leaderboard", "compare"):  # reads run folders only; no model is loaded
            from mibe.boards import cli as board_cli

            return board_cli.leaderboard(args) if args.command == "leaderboard" else board_cli.compare(args)
        if args.command == "tasks":
            return _tasks_command(args)
        if args.command == "data":  # reads data only; no model is loaded
            from mibe import datacheck

            return datacheck.main(args)
        if args.command in ("rescore", "audit"):  # light modules; no model is ever loaded
            from mibe.runs import audit, rescore

            if args.command == "rescore" and args.parser == "model":  # loads the extractor (only it)
                from mibe.run import extract

                return extract.rescore_command(args, argv)
            return rescore.command(args, argv) if args.command == "rescore" else audit.command(args)
        if args.command == "train":  # the training subpackage parses its own flags
            from mibe.training import cli as train_cli

            return train_cli.main(args.train_args)
        from mibe.run import api

        api.run(_config(args), command=["mibe", *argv])
        return 0
    except MibeError as exc:
        print(f"mibe: error: {exc}", file=sys.stderr)
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
