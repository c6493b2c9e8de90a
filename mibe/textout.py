"""Text a person reads: the one aligned-table writer and the one Markdown escaper of every text output.

A terminal is assumed 100 columns wide: a table wider than that is split into blocks that repeat its
leading (key) columns, and a cell too wide for its share is wrapped onto more lines, so no line of a
board or a comparison runs past the edge. Markdown cells are escaped so that a `|`, a `<` or a line
break in a name never breaks the table a CommonMark+tables renderer draws.
"""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Sequence

WIDTH = 100
GAP = "  "
NARROWEST = 12  # a wrapped cell never gets fewer columns than this
WHOLE = 1 << 30  # the width of a table kept in one block, each row one line (rows a script may read)


def md_escape(value: object) -> str:
    """One Markdown table cell (or list item): one line, `|` and `\\` escaped, no raw HTML."""
    text = " ".join(str(value).splitlines())  # a line break inside a cell would end the table row
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table, every cell escaped (header cells included)."""
    out = ["| " + " | ".join(md_escape(c) for c in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return out + ["| " + " | ".join(md_escape(c) for c in line) + " |" for line in rows]


def wrap(text: str, width: int = WIDTH, indent: str = "") -> list[str]:
    """A paragraph (or a list item) folded to the terminal's width; later lines indented two more."""
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=True,
        break_on_hyphens=False,
    ) or [indent.rstrip()]


def _cell_lines(cell: str, width: int) -> list[str]:
    lines: list[str] = []
    for part in cell.split("\n"):
        lines += textwrap.wrap(part, width=width, break_on_hyphens=False) or [""]
    return lines


def _block(
    rows: Sequence[Sequence[str]],
    columns: Sequence[int],
    widths: dict[int, int],
    head: int,
    right: Collection[int],
) -> list[str]:
    out = []
    for k, row in enumerate(rows):
        cells = [_cell_lines(row[i], widths[i]) for i in columns]
        for depth in range(max(len(c) for c in cells)):
            parts = [
                _pad(c[depth] if depth < len(c) else "", widths[i], i in right)
                for c, i in zip(cells, columns, strict=True)
            ]
            out.append(GAP.join(parts).rstrip())
        if k == head - 1:
            out.append(GAP.join("-" * widths[i] for i in columns))
    return out


def _pad(text: str, width: int, right: bool) -> str:
    return text.rjust(width) if right else text.ljust(width)


def _fit(natural: list[int], keep: int, width: int) -> dict[int, int]:
    """Each column's width: its natural one, capped so that the key columns and one other fit."""
    widths = dict(enumerate(natural))
    key = sum(widths[i] for i in range(keep)) + len(GAP) * keep
    while key > width // 2 and max(widths[i] for i in range(keep)) > NARROWEST:  # long keys wrap
        i = max(range(keep), key=lambda j: widths[j])
        widths[i] -= 1
        key -= 1
    room = max(NARROWEST, width - key)
    for i in range(keep, len(natural)):
        widths[i] = min(widths[i], room)
    return widths


def table(
    rows: Sequence[Sequence[str]],
    head: int = 1,
    keep: int = 1,
    width: int = WIDTH,
    right: Collection[int] = (),
) -> list[str]:
    """Aligned columns, `head` header rows underlined (none for 0); when wider than `width`, blocks of
    columns each led by the first `keep` ones, separated by a blank line. Cells may hold line breaks.
    Columns in `right` (numbers) are aligned to the right, their header cells too."""
    if not rows:
        return []
    count = len(rows[0])
    natural = [max(max(len(x) for x in str(r[i]).split("\n")) for r in rows) for i in range(count)]
    widths = _fit(natural, min(keep, count), width)
    before = sum(widths[i] for i in range(count - 1)) + len(GAP) * (count - 1)
    if count > keep and before + 2 * NARROWEST <= width:  # a wide last column wraps in place
        widths[count - 1] = min(widths[count - 1], width - before)
    rows = [[str(c) for c in r] for r in rows]
    blocks: list[list[int]] = []
    current: list[int] = list(range(keep))
    used = sum(widths[i] for i in current) + len(GAP) * max(0, len(current) - 1)
    for i in range(keep, count):
        extra = len(GAP) + widths[i]
        if len(current) > keep and used + extra > width:
            blocks.append(current)
            current = list(range(keep))
            used = sum(widths[j] for j in current) + len(GAP) * max(0, keep - 1)
        current.append(i)
        used += extra
    blocks.append(current)
    out: list[str] = []
    for n, columns in enumerate(blocks):
        if n:
            out.append("")
        out += _block(rows, columns, widths, head, right)
    return out


def p_text(p: float | None) -> str:
    """A p-value, written one way on every surface: three significant digits, and "< 0.001" below
    that (where a bootstrap of 1,000 resamples bottoms out at 1/1001)."""
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def p_is(p: float | None) -> str:
    """ "p=0.032" or "p < 0.001": a p-value inside a sentence."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p={text}"
