"""`mibe view RUN [RUN_B] -o FILE.html`: read run folders through the run-folder owner and write the
self-contained page of mibe.boards.view. A run folder is data: no task hook is imported for it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mibe.boards.view import ViewRun, render_view
from mibe.runfolder import folder, saved, writer
from mibe.types import MibeError


def _task_meta(run: saved.SavedRun, name: str) -> dict[str, Any]:
    entry = run.results["tasks"][name]
    task = saved.task_file(name, entry, say=lambda line: None)
    path = folder.samples_path(run.path, name)
    # From the run's record (a task of unknown status is credentialed); owner-only samples too: safe side.
    private = saved.credentialed(name, entry, task) or (path.is_file() and path.stat().st_mode & 0o077 == 0)
    labels = ((entry.get("per_class") or {}).get("labels")) or []
    return {
        "answer_type": saved.kind(run, name),
        "choices": list(task.choices) if task else list(labels),
        "credentialed": bool(private),
        "paper_match": task.paper_match if task else "first",
    }


def load(path: str | Path) -> ViewRun:
    run = saved.read_run(path)
    names = [t for t in run.results["tasks"] if saved.rows(run, t) is not None]
    return ViewRun(
        label=saved.label(run),
        results=run.results,
        samples={t: list(saved.rows(run, t) or ()) for t in names},
        tasks={t: _task_meta(run, t) for t in names},
        run=run,
    )


def command(args: Any) -> int:
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
