"""`mibe docs [PAGE] [--path]`: the documentation pages shipped with mibe, listed or printed."""

from __future__ import annotations

import argparse

from mibe.commands import options


def add(docs: argparse.ArgumentParser) -> None:
    docs.add_argument("page", nargs="?", metavar="PAGE", help="a page's name, e.g. statistics")
    docs.add_argument("--path", action="store_true", help="print where the page is instead of its text")


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """The pages with their titles; with PAGE, one page's text or path."""
    from mibe import resources

    if args.page:
        page = resources.doc_page(args.page)
        print(page if args.path else page.read_text(encoding="utf-8").rstrip("\n"))
        return 0
    pages = resources.doc_pages()
    width = max(map(len, pages), default=0)
    for name, path in pages.items():
        print(f"{name:<{width}}  {resources.doc_title(path)}")
    print(f"`mibe docs PAGE` prints a page, `--path` where it is (in {resources.docs_dir()})")
    return 0


COMMAND = options.Command(
    "docs",
    "list the documentation pages, or print one (they ship with mibe)",
)
