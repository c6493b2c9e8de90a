"""`mibe scale-out slurm [shard|merge]`: the shipped SLURM templates of a sharded run (docs/scale-out.md)."""

from __future__ import annotations

import argparse

from mibe.commands import options

TEMPLATES = ("shard", "merge")


def add(scale: argparse.ArgumentParser) -> None:
    scale.add_argument("system", choices=("slurm",))
    scale.add_argument(
        "template", nargs="?", choices=TEMPLATES,
        help="print this sbatch file (shard: one array task per shard; merge: the merge job); "
        "without it, where they are and how to submit them",
    )  # fmt: skip


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """A template on stdout, or the list of them."""
    from mibe import resources

    folder = resources.scale_out_dir() / args.system
    if args.template:
        print((folder / f"{args.template}.sbatch").read_text(encoding="utf-8"), end="")
        return 0
    for name in TEMPLATES:
        print(f"{name}.sbatch  {folder / f'{name}.sbatch'}")
    print("mibe scale-out slurm shard > shard.sbatch; mibe scale-out slurm merge > merge.sbatch")
    print("then: sbatch --array=0-<N-1> shard.sbatch; sbatch --dependency=afterok:<job> merge.sbatch")
    return 0


COMMAND = options.Command(
    "scale-out",
    "print the SLURM templates of a sharded run (docs/scale-out.md)",
)
