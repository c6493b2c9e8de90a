"""`mibe COMMAND ...`: the top-level parser over mibe/commands/ (a module per command: its arguments
and its entry point), and the one place a failure becomes an exit code and a line on stderr."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from mibe.commands import (
    audit,
    compare,
    data,
    docs,
    import_,
    judge,
    leaderboard,
    merge,
    rescore,
    run,
    scale_out,
    tasks,
    train,
    view,
)
from mibe.log import to_stderr
from mibe.resources import DOCS_EPILOG, cite_docs
from mibe.types import MibeError
from mibe.version import __version__

# `mibe --help` lists them in this order. Each module declares its entry (`COMMAND`), its flags (`add`)
# and its entry point (`command`); importing them stays light (argparse only: see mibe/commands/).
COMMANDS = (
    run, merge, scale_out, leaderboard, compare, tasks, data, rescore, import_, judge, audit, view, train,
    docs,
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mibe", description="Score medical LLMs on MIBE (Me-LLaMA's benchmark)."
    )
    top.add_argument("--version", action="version", version=f"mibe {__version__}")
    top.add_argument("--debug", action="store_true", help="show tracebacks of unexpected failures")
    sub = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        parser = command.COMMAND.parser(sub)
        command.add(parser)
        parser.set_defaults(handler=command.command)
    for parser in (top, *sub.choices.values()):  # help texts cite pages: say how to read them
        parser.epilog = parser.epilog or DOCS_EPILOG
    return top


def one_line(text: str) -> str:
    """An error is one line, whatever a path or name in it holds."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        with to_stderr(args.debug):
            return args.handler(args, argv)
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
