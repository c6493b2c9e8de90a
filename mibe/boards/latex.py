"""A leaderboard as a LaTeX table (booktabs): `mibe leaderboard --format latex` or `-o board.tex`.

Every piece of text goes through `escape`, so a model named `A&B_v2 {50%}` compiles as written.
Intervals are printed under the value (`\\makecell`-free: a second `\\scriptsize` line in a
`\\shortstack`), reference rows are set in italics below a `\\midrule`, the best cells in bold.
Needs `\\usepackage{booktabs}` in the preamble (said in the file's first comment line).
"""

from __future__ import annotations

from mibe.boards.ranking import AVERAGE, Section
from mibe.boards.render import DASH, rank_text
from mibe.boards.table import Board

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def escape(text: object) -> str:
    """Any text as LaTeX that prints it verbatim (one line: a line break becomes a space)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in " ".join(str(text).splitlines()))


def _cell(value: float | None, ci: tuple[float, float] | None, best: bool) -> str:
    if value is None:
        return "--"
    shown = f"\\textbf{{{value:.3f}}}" if best else f"{value:.3f}"
    if ci is None:
        return shown
    return f"\\shortstack{{{shown}\\\\\\scriptsize[{ci[0]:.3f}, {ci[1]:.3f}]}}"


def _section(board: Board, section: Section) -> list[str]:
    columns = section.columns
    spec = "rl" + "r" * (len(columns) + 1)
    out = [
        f"% {escape(section.title)}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(["Rank", "Model", "Avg.", *(escape(c.task) for c in columns)]) + " \\\\",
        " & ".join(["", "", "", *(escape(c.metric) for c in columns)]) + " \\\\",
        " & ".join(["", "", "", *(escape(board.protocol_ids[c.key]) for c in columns)]) + " \\\\",
        "\\midrule",
    ]
    ruled = False
    for i, ranked in enumerate(section.rows):
        row = ranked.row
        if row.reference and not ruled:
            out.append("\\midrule")
            ruled = True
        name = f"\\textit{{{escape(row.label)}}}" if row.reference else escape(row.label)
        rank = rank_text(ranked)
        cells = [
            "--" if rank == DASH else escape(rank),
            name,
            _cell(ranked.average, None, i in section.best.get(AVERAGE, ())),
        ]
        for column in columns:
            cell = row.cells.get(column)
            best = i in section.best.get(column, ())
            cells.append(_cell(None, None, False) if cell is None else _cell(cell.value, cell.ci95, best))
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", ""]
    return out


def latex(board: Board) -> str:
    out = [
        "% mibe leaderboard; needs \\usepackage{booktabs}. Bold: the column's tie group; italics: the "
        "paper's published rows (reference, unranked); under a value its bootstrap 95% interval.",
    ]
    for section in board.sections:
        out += _section(board, section)
    out += [f"% {pid}: {escape(key_text)}" for key_text, pid in _protocols(board)]
    return "\n".join(out) + "\n"


def _protocols(board: Board) -> list[tuple[str, str]]:
    from mibe.boards.render import describe

    seen = []
    for section in board.sections:
        for column in section.columns:
            item = (describe(column.protocol), board.protocol_ids[column.key])
            if item not in seen:
                seen.append(item)
    return seen
