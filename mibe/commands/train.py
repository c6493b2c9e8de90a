"""`mibe train pretrain|sft|task`: a recipe file (default: the paper's, in training/) plus overrides.

The top-level parser hands everything after `train` to this command's own parser (`parser()`), so
`mibe train --help` and a bad training flag never load the recipes or torch."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mibe.commands import options

HELP = {
    "pretrain": "continual pre-training of a causal LM on a domain mix (Me-LLaMA: 15:1:4)",
    "sft": "instruction tuning (LoRA by default) on conversation or Alpaca rows",
    "task": "instruction tuning on one MIBE task's training split, ready for `mibe run --tasks TASK`",
}


def add(train: argparse.ArgumentParser) -> None:
    train.add_argument("train_args", nargs=argparse.REMAINDER, metavar="{pretrain,sft,task} ...")


def command(args: argparse.Namespace, argv: list[str]) -> int:
    return main(args.train_args)


def parser() -> argparse.ArgumentParser:
    """`mibe train`'s own parser: its flags are parsed once `mibe train` runs (the recipes load then)."""
    from mibe.training import recipe as recipes

    top = argparse.ArgumentParser(
        prog="mibe train",
        description="Train the checkpoints `mibe run --model` scores. Values come from the paper's defaults, "
        "then the recipe file, then the flags and --set KEY=VALUE (see docs/training.md).",
    )
    sub = top.add_subparsers(dest="kind", required=True)
    for kind in recipes.KINDS:
        p = sub.add_parser(kind, help=HELP[kind], description=HELP[kind])
        if kind == "task":
            p.add_argument(
                "task",
                nargs="?",
                help="a MIBE task name or task-file path (else the recipe's task:); all or T1,T2,... "
                "trains one adapter per task into --output-dir/<task>/",
            )
        p.add_argument("--config", help=f"recipe YAML (default: the shipped training/{kind}.yaml)")
        p.add_argument(
            "--model", help="base model: an HF folder or hub id (a mibe checkpoint keeps its lineage)"
        )
        p.add_argument("--output-dir", help="the checkpoint folder; rerunning the command resumes it")
        if kind == "pretrain":
            p.add_argument("--mix", help="data-mix spec YAML (domains, ratios, sources)")
        else:
            p.add_argument(
                "--data",
                action="append",
                help="training rows: a file, folder, glob or hub id (repeatable)"
                if kind == "sft"
                else "the task's training rows: a file, or a folder with train.* (default: its source); "
                "for all or T1,T2,...: TASK=PATH, repeatable",
            )
            p.add_argument(
                "--merge", action="store_true", help="also save the LoRA adapter merged into full weights"
            )
        p.add_argument("--deepspeed", help="zero2, zero3 or a DeepSpeed JSON file")
        p.add_argument("--max-steps", type=int, help="stop after N optimiser steps (overrides epochs)")
        p.add_argument(
            "--allow-contamination",
            action="store_true",
            help="train even when rows overlap MIBE evaluation documents (recorded)",
        )
        p.add_argument(
            "--drop-contaminated",
            action="store_true",
            help="train on the rows that overlap no MIBE evaluation document (the dropped ones are recorded)",
        )
        p.add_argument(
            "--exclude-ids",
            metavar="FILE",
            help="ids (one a line) no training row may carry, e.g. test study ids",
        )
        p.add_argument(
            "--overwrite", action="store_true", help="discard a different or finished run in --output-dir"
        )
        p.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override any recipe key"
        )
    return top


def main(argv: Sequence[str]) -> int:
    """`mibe train KIND [flags]` without the `mibe train`: parse, apply the overrides, train."""
    from mibe.training import recipe as recipes
    from mibe.training import suite

    args = parser().parse_args(list(argv))
    config = args.config or str(recipes.shipped_recipe(args.kind))
    overrides = {
        "model": args.model,
        "output_dir": args.output_dir,
        "deepspeed": args.deepspeed,
        "max_steps": args.max_steps,
        "allow_contamination": True if args.allow_contamination else None,
        "drop_contaminated": True if args.drop_contaminated else None,
        "exclude_ids": args.exclude_ids,
    }
    if args.kind == "pretrain":
        overrides["mix"] = args.mix
    else:
        overrides["merge"] = True if args.merge else None
        if args.data:
            overrides["data"] = args.data if args.kind == "sft" and len(args.data) > 1 else args.data[-1]
    if args.kind == "task" and suite.is_suite(args.task):
        overrides.pop("data", None)
        suite.run(args.task, config, overrides, args.set, suite.per_task_data(args.data),
                  ["mibe", "train", *argv], args.overwrite)  # fmt: skip
        return 0
    if args.kind == "task":
        overrides["task"] = args.task
    recipe, recipe_file = recipes.load(args.kind, config, overrides, args.set)
    from mibe.training import train

    train.run(args.kind, recipe, recipe_file, ["mibe", "train", *argv], overwrite=args.overwrite)
    return 0


COMMAND = options.Command(
    "train",
    "continual pre-training, LoRA instruction tuning, task fine-tuning (mibe train KIND --help)",
    description="mibe train pretrain|sft|task --config RECIPE.yaml [flags] [--set KEY=VALUE ...]; "
    "`mibe train pretrain --help` lists the flags (docs/training.md)",
)
