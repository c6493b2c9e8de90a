"""`mibe leaderboard --plot FILE`: one figure for a paper (matplotlib), docs/leaderboard.md.

The main view is a dot-and-whisker chart: one small panel per task (its main metric), one line per
model, the value as a dot and its bootstrap 95% interval as a whisker. Chosen over an annotated
heatmap because the intervals are the point: whether two models' whiskers overlap is seen at a glance
on a common scale, where a heatmap turns values into shades and needs every interval printed.
Reference rows (the paper's published numbers) are hollow grey diamonds, without intervals. Extra
views only on request: `--plot-kind calibration` (reliability diagrams), `--plot-kind metrics`
(every metric of every column as bars).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mibe.boards.table import PAPER_METRICS, Board, Column, averaged
from mibe.types import MibeError

COLUMNS = 4  # panels per figure row
WIDTH_IN = 7.0  # a two-column paper's full text width (178 mm)
DPI = 150
KINDS = ("main", "calibration", "metrics")
SUFFIXES = (".png", ".pdf", ".svg")
# Okabe & Ito's colour-blind-safe palette (black left out: it is the whiskers' colour).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
MARKERS = ("o", "s", "^", "v", "D", "P", "X")
RUN, PUBLISHED, BEST = PALETTE[0], "#999999", "#E69F00"


def check_path(path: Path, kind: str = "main") -> None:
    """Before the board is built: a wrong suffix or kind costs nothing."""
    if path.suffix.lower() not in SUFFIXES:
        raise MibeError(f"--plot {path}: name a .png, .pdf or .svg file")
    if kind not in KINDS:
        raise MibeError(f"--plot-kind {kind}: use one of {', '.join(KINDS)}")


def main_metric(column: Column) -> bool:
    """The one metric a task shows in the figure: the paper's first, else the task's first averaged."""
    if column.task in PAPER_METRICS:
        return column.metric == PAPER_METRICS[column.task][0]
    return averaged(column)


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend
    except ImportError:
        raise MibeError("--plot needs matplotlib: pip install matplotlib") from None
    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Any, path: Path) -> None:
    import matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    # Type 42: TrueType fonts embedded whole in PDF/PS, as journals ask (no Type 3 bitmaps).
    # SVG keeps its text as text: searchable, and editable in a figure editor.
    with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}):
        try:
            figure.savefig(path, dpi=DPI)
        except OSError as exc:
            raise MibeError(f"--plot {path}: cannot write ({exc.strerror}); choose a writable path") from None


def plot(board: Board, path: Path, kind: str = "main") -> None:
    check_path(path, kind)
    figure = {"main": _main, "calibration": _calibration, "metrics": _metrics}[kind](board)
    _save(figure, path)


def _panels(board: Board) -> list[tuple[Any, Column]]:
    panels = [
        (section, column)
        for section in board.sections
        for column in section.columns
        if main_metric(column)
        and any(x.row.cells.get(column) and x.row.cells[column].value is not None for x in section.rows)
    ]
    if not panels:
        raise MibeError("--plot: the board has no numbers to draw")
    return panels


def _main(board: Board) -> Any:
    """Models x tasks: a panel per task's main metric, dots with 95% whiskers, references hollow."""
    panels = _panels(board)
    labels: list[str] = []  # every row once, the user's runs first, in board order
    for reference in (False, True):
        for section, _ in panels:
            labels += [
                x.row.label
                for x in section.rows
                if x.row.reference == reference and x.row.label not in labels
            ]
    style = _styles(board, labels)
    columns = min(COLUMNS, len(panels))
    rows = (len(panels) + columns - 1) // columns
    # Four panels a row span a two-column paper's text; fewer fit one column (3.4 in) or so.
    width = WIDTH_IN if columns == COLUMNS else max(3.4, 1.4 + 1.4 * columns)
    figure = _figure(width, rows * (0.45 + 0.17 * len(labels)) + 0.5)
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    several = {c.task for _, c in panels if sum(1 for _, d in panels if d.task == c.task) > 1}
    for ax, (section, column) in zip(axes, panels, strict=False):
        _dots(ax, section, column, labels, style)
        pid = f" ({board.protocol_ids[column.key]})" if column.task in several else ""
        ax.set_title(f"{column.task}{pid}\n{column.metric}", fontsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=6.5)
    axes[0].invert_yaxis()
    invented = any(s.invented for s, _ in panels)
    figure.suptitle(
        "Dots: value; whiskers: bootstrap 95% interval; hollow grey diamonds: published (reference)"
        + ("; invented data: not comparable with real scores" if invented else ""),
        fontsize=6.5,
    )
    return figure


def _styles(board: Board, labels: list[str]) -> dict[str, tuple[str, str, bool]]:
    published = {x.row.label for s in board.sections for x in s.rows if x.row.published}
    out, k = {}, 0
    for label in labels:
        if label in published:
            out[label] = (PUBLISHED, "D", False)
        else:
            out[label] = (PALETTE[k % len(PALETTE)], MARKERS[k % len(MARKERS)], True)
            k += 1
    return out


def _dots(ax: Any, section: Any, column: Column, labels: list[str], style: dict) -> None:
    top = 1.0
    for x in section.rows:
        cell = x.row.cells.get(column)
        if cell is None or cell.value is None:
            continue
        y = labels.index(x.row.label)
        colour, marker, filled = style[x.row.label]
        if cell.ci95:
            low, high = min(cell.ci95[0], cell.value), max(cell.ci95[1], cell.value)
            ax.plot([low, high], [y, y], color="#333333", linewidth=0.9, solid_capstyle="butt")
            top = max(top, high)
        ax.plot(
            [cell.value], [y], marker=marker, markersize=4, linestyle="none",
            color=colour, markerfacecolor=colour if filled else "white", markeredgewidth=0.9,
        )  # fmt: skip
        top = max(top, cell.value)
    ax.set_xlim(0, top * 1.02)
    ax.grid(axis="x", linewidth=0.4, color="#dddddd")
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=6.5, length=2)


def _metrics(board: Board) -> Any:
    """Every metric of every column as bars (--plot-kind metrics)."""
    panels = [
        (section, column)
        for section in board.sections
        for column in section.columns
        if any(x.row.cells.get(column) and x.row.cells[column].value is not None for x in section.rows)
    ]
    if not panels:
        raise MibeError("--plot: the board has no numbers to draw")
    rows = (len(panels) + COLUMNS - 1) // COLUMNS
    tallest = max(len(section.rows) for section, _ in panels)
    figure = _figure(WIDTH_IN, rows * (0.6 + 0.16 * tallest))
    axes = figure.subplots(rows, COLUMNS, squeeze=False).ravel()
    for ax, (section, column) in zip(axes, panels, strict=False):
        _bars(ax, board, section, column)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return figure


def _calibration(board: Board) -> Any:
    """Reliability diagrams of log-likelihood-scored tasks (--plot-kind calibration)."""
    diagrams = [
        (x.row.label, task, x.row.calibration[task])
        for section in board.sections
        for x in section.rows
        for task in dict.fromkeys(c.task for c in section.columns)
        if task in x.row.calibration
    ]
    if not diagrams:
        raise MibeError("--plot-kind calibration: no run on the board was scored by log-likelihood")
    rows = (len(diagrams) + COLUMNS - 1) // COLUMNS
    figure = _figure(WIDTH_IN, rows * 1.9)
    axes = figure.subplots(rows, COLUMNS, squeeze=False).ravel()
    for ax, diagram in zip(axes, diagrams, strict=False):
        _reliability(ax, *diagram)
    for ax in axes[len(diagrams) :]:
        ax.set_visible(False)
    return figure


def _bars(ax: Any, board: Board, section: Any, column: Any) -> None:
    bars = [
        (i, x.row, x.row.cells[column])
        for i, x in enumerate(section.rows)
        if column in x.row.cells and x.row.cells[column].value is not None
    ]
    values = [c.value for _, _, c in bars]
    # No interval (published rows): NaN draws no whisker at all, where 0 would draw a cap.
    # A percentile interval need not hold its point estimate (a ratio metric on few documents):
    # the whisker then starts at the value, never below it (matplotlib refuses negative lengths).
    low = [max(0.0, c.value - c.ci95[0]) if c.ci95 else float("nan") for _, _, c in bars]
    high = [max(0.0, c.ci95[1] - c.value) if c.ci95 else float("nan") for _, _, c in bars]
    colours = [PUBLISHED if r.published else RUN for _, r, _ in bars]
    edges = [BEST if i in section.best.get(column, ()) else "none" for i, _, _ in bars]  # the tie group
    y = list(range(len(bars)))
    ax.barh(y, values, xerr=[low, high], color=colours, edgecolor=edges, linewidth=1.5, capsize=3)
    ax.set_yticks(y, [r.label for _, r, _ in bars], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, *(c.ci95[1] if c.ci95 else c.value for _, _, c in bars)))
    pid = board.protocol_ids[column.key]
    kind = " (invented data)" if section.invented else ""
    ax.set_title(f"{column.task} · {column.metric} · {pid}{kind}", fontsize=6.5)
    ax.tick_params(axis="x", labelsize=7)


def _reliability(ax: Any, label: str, task: str, cal: dict[str, Any]) -> None:
    """Accuracy per confidence bin against the diagonal; the bars' width follows the bin's documents."""
    from mibe.boards.render import interval_text, reliability_bins  # as the HTML board reads them

    bins = reliability_bins(cal)
    most = max([1, *(count for _, _, count, _, _ in bins)])
    for lo, hi, count, _, accuracy in bins:
        width = (hi - lo) * (0.3 + 0.7 * count / most)
        ax.bar((lo + hi) / 2, accuracy, width=width, color=RUN)
    ax.plot([0, 1], [0, 1], linestyle="--", color=PUBLISHED, linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence", fontsize=7)
    ax.set_ylabel("accuracy", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_title(
        f"{label} · {task}\nECE {interval_text(cal.get('ece'))} · Brier {interval_text(cal.get('brier'))}",
        fontsize=7,
    )
