"""`mibe merge SHARD_RUN... --output-dir RUN`: one run of the folders of `mibe run --shard I/N`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mibe.commands import options
from mibe.log import logger
from mibe.types import MibeError


def add(merge: argparse.ArgumentParser) -> None:
    merge.add_argument("shards", nargs="+", metavar="SHARD_RUN", help="the shards' run folders")
    merge.add_argument("--output-dir", help="the merged run folder (required unless --status)")
    merge.add_argument(
        "--status", action="store_true", help="list what each shard still lacks; writes nothing"
    )
    merge.add_argument("--overwrite", action="store_true", help="replace a merged run already there")
    merge.add_argument(
        "--bertscore-model", metavar="PATH",
        help="the BERTScore model on this machine, where the path the shards recorded differs",
    )  # fmt: skip


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Reads shard folders only; no model is loaded (BERTScore's aside)."""
    from mibe.runfolder import summary
    from mibe.runner import merge

    shards = [merge.read(p) for p in args.shards]
    if args.status:
        merge.same_cut(shards)
        lines, complete = merge.status(shards)
        print("\n".join(lines))
        return 0 if complete else 1
    if not args.output_dir:
        raise MibeError(
            "mibe merge: give --output-dir RUN for the merged run (or --status to check the shards)"
        )
    out_dir = Path(args.output_dir)
    out = merge.merge(shards, out_dir, args.overwrite, args.bertscore_model, ["mibe", *argv])
    logger.info(summary.table(out))
    logger.info(f"mibe: merged {len(shards)} shards into {out_dir / 'results.json'}")
    logger.info(summary.next_commands(out_dir))
    return 0


COMMAND = options.Command(
    "merge",
    "merge the run folders of `mibe run --shard I/N` into one run (docs/scale-out.md)",
)
