"""`mibe merge SHARD_RUN... --output-dir RUN`: one run of the folders of `mibe run --shard I/N`."""

from __future__ import annotations

import argparse
from typing import Any


def add(sub: Any) -> None:
    merge = sub.add_parser(
        "merge",
        help="merge the run folders of `mibe run --shard I/N` into one run (docs/scale-out.md)",
    )
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
    merge.set_defaults(handler=command)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Reads shard folders only; no model is loaded (BERTScore's aside)."""
    from mibe.runner import merge

    return merge.command(args, argv)
