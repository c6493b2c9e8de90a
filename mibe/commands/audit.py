"""`mibe audit RUN`: where the paper's and the strict parser disagree (reads the run folder only)."""

from __future__ import annotations

import argparse
from typing import Any

from mibe.commands import options


def add(sub: Any) -> None:
    audit = sub.add_parser("audit", help="where the paper's and the strict parser disagree")
    options.add_saved_run(audit, tasks=options.TRUSTED_TASKS)
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
    audit.set_defaults(handler=command)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    from mibe.runfolder import audit

    return audit.command(args)
