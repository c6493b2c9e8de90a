"""`mibe view RUN [RUN_B] -o FILE.html`: one self-contained page to read a run's samples, or where two
runs differ (mibe/boards/view.py)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mibe.commands import options
from mibe.types import MibeError


def add(view: argparse.ArgumentParser) -> None:
    view.add_argument("run", help="a run folder")
    view.add_argument("run_b", nargs="?", help="a second run folder: shows the documents scored differently")
    view.add_argument("-o", "--output", required=True, metavar="FILE.html", help="the page to write")
    view.add_argument(
        "--show-credentialed",
        action="store_true",
        help="include prompts and outputs of credentialed tasks (off: ids, scores and labels only)",
    )


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Reads run folders only; no model is loaded."""
    from mibe.boards.view import render_view
    from mibe.boards.view_runs import load
    from mibe.runfolder import folder, writer

    out = Path(args.output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise MibeError(f"-o {out}: the page is HTML; name it FILE.html")
    folder.refuse_inside_run(out, [r for r in (args.run, args.run_b) if r])
    runs = [load(args.run)] + ([load(args.run_b)] if args.run_b else [])
    text = render_view(runs, show_credentialed=args.show_credentialed)
    # A page with credentialed text is owner-only; otherwise it follows the umask like any file.
    umask = os.umask(0)
    os.umask(umask)
    try:
        writer.write_text_atomic(out, text, mode=0o600 if args.show_credentialed else 0o666 & ~umask)
    except OSError as exc:  # a parent that is a file, a folder of that name, no permission
        raise MibeError(f"-o {out}: cannot write ({exc.strerror}); choose a writable FILE.html") from None
    shown = "with credentialed text" if args.show_credentialed else "credentialed text left out"
    print(f"mibe: wrote {out} ({len(text) // 1024} KiB; {shown})")
    return 0


COMMAND = options.Command(
    "view",
    "a self-contained HTML page to read a run's samples, or where two runs differ",
)
