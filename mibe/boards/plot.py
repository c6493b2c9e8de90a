"""`mibe leaderboard --plot FILE.png|svg`: the board as small multiples for a paper (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mibe.boards.model import Board
from mibe.types import MibeError

COLUMNS = 4  # panels per figure row
RUN, PUBLISHED, BEST = "#3b6fb6", "#9aa5b1", "#c98a00"


def check_path(path: Path) -> None:
    """Before the board is built: a wrong suffix costs nothing."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise MibeError(f"--plot {path}: name a .png or .svg file")


def plot(board: Board, path: Path) -> None:
    """One panel per (section, task, metric, protocol) that has a value: bars with 95% whiskers; then
    one reliability diagram per row and log-likelihood-scored task (results.json's calibration bins)."""
    check_path(path)
    try:
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend
    except ImportError:
        raise MibeError("--plot needs matplotlib: pip install matplotlib") from None
    panels = [
        (section, column)
        for section in board.sections
        for column in section.columns
        if any(x.row.cells.get(column) and x.row.cells[column].value is not None for x in section.rows)
    ]
    if not panels:
        raise MibeError("--plot: the board has no numbers to draw")
    diagrams = [
        (x.row.label, task, x.row.calibration[task])
        for section in board.sections
        for x in section.rows
        for task in dict.fromkeys(c.task for c in section.columns)
        if task in x.row.calibration
    ]
    rows = (len(panels) + COLUMNS - 1) // COLUMNS
    extra = (len(diagrams) + COLUMNS - 1) // COLUMNS
    tallest = max(len(section.rows) for section, _ in panels)
    figure = Figure(
        figsize=(4.2 * COLUMNS, rows * (0.9 + 0.28 * tallest) + extra * 3.6), layout="constrained"
    )
    heights = [0.9 + 0.28 * tallest] * rows + [3.6] * extra
    axes = figure.subplots(rows + extra, COLUMNS, squeeze=False, height_ratios=heights)
    bar_axes, cal_axes = axes[:rows].ravel(), axes[rows:].ravel()
    for ax, (section, column) in zip(bar_axes, panels, strict=False):
        _bars(ax, board, section, column)
    for ax, diagram in zip(cal_axes, diagrams, strict=False):
        _reliability(ax, *diagram)
    for ax in [*bar_axes[len(panels) :], *cal_axes[len(diagrams) :]]:
        ax.set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(path, dpi=200)
    except OSError as exc:
        raise MibeError(f"--plot {path}: cannot write ({exc.strerror}); choose a writable path") from None


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
    ax.set_yticks(y, [r.label for _, r, _ in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, *(c.ci95[1] if c.ci95 else c.value for _, _, c in bars)))
    pid = board.protocol_ids[column.key]
    kind = " (invented data)" if section.invented else ""
    ax.set_title(f"{column.task} · {column.metric} · {pid}{kind}", fontsize=8)
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
