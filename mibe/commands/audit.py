"""`mibe audit RUN`: where the paper's and the strict parser disagree (reads the run folder only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mibe.commands import options
from mibe.types import MibeError


def add(audit: argparse.ArgumentParser) -> None:
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


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Reads the run folder only; no model is loaded."""
    from mibe.runfolder import folder, writer
    from mibe.runfolder.audit import audit, render
    from mibe.runfolder.saved import task_specs

    if args.examples < 0:
        raise MibeError(f"--examples {args.examples}: must be 0 or more")
    if args.output:  # checked before the audit is computed: a bad -o costs nothing
        if Path(args.output).suffix.lower() not in (".md", ".markdown", ".txt"):
            raise MibeError(f"-o {args.output}: the audit is written as markdown; name it FILE.md (or .txt)")
        folder.refuse_inside_run(args.output, [args.run_dir])
    names, trusted = task_specs(args.tasks)
    report = audit(args.run_dir, names, args.examples, args.show_credentialed, trusted)
    if args.output:
        out = Path(args.output)
        try:
            writer.write_text_atomic(out, render(report, md=True))
        except OSError as exc:
            raise MibeError(f"-o {out}: cannot write ({exc.strerror}); choose another file") from None
        print(f"mibe: audit written to {out}")
        return 0
    print(render(report, md=args.format == "md"), end="")
    return 0


COMMAND = options.Command(
    "audit",
    "where the paper's and the strict parser disagree",
)
