"""A leaderboard as one self-contained HTML page: inline CSS, inline JS, inline SVG; no network.

Every piece of text (model names, task names, protocols, notes) goes through `escape`, and no data is
put inside the script, so a name holding `<script>` shows as text and runs nothing. Sorting: click a
header (again to reverse), or open the page with `#sort=c3` (`#sort=c3:asc`) to sort on load.
"""

from __future__ import annotations

from html import escape
from typing import Any

from mibe.boards.ranking import AVERAGE, Section, cluster_lines, general_lines
from mibe.boards.render import (
    DASH,
    SIGNIFICANCE,
    SIGNIFICANCE_NOTE,
    TIE_GROUP,
    contamination_mark,
    describe,
    interval_text,
    lineage_text,
    number,
    rank_text,
    reliability_bins,
    row_name,
    short,
    verdict_groups,
    verdict_short,
)
from mibe.boards.table import KEY_FIELDS, Board, Column, Row
from mibe.version import __version__

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;overflow-wrap:anywhere}
p,li{overflow-wrap:anywhere}
table.board{border-collapse:collapse;font-variant-numeric:tabular-nums;margin-bottom:6px;
  width:100%;table-layout:fixed}
.board col.rank{width:56px}.board col.model{width:200px}.board col.avg{width:80px}
.board th,.board td{border:1px solid #d5dbe3;padding:4px 5px;text-align:right;vertical-align:top;
  overflow-wrap:anywhere}
.wrap{overflow-x:auto;max-width:100%}
.board td.model,.board th.model{text-align:left}
.board thead th{background:#eef2f7;cursor:pointer;user-select:none;font-weight:600}
.board thead th:hover{background:#dde6f1}
.board th .metric,.board th .proto{display:block;font-weight:400;color:#4a5566;font-size:12px}
.board th[aria-sort=descending]::after{content:" \\25BC"}
.board th[aria-sort=ascending]::after{content:" \\25B2"}
.board td.best{background:#fff3c4;font-weight:700}
.board .ci{display:block;color:#5b6778;font-size:11px;font-weight:400}
.board.compact .ci{display:none}
.board small{display:block;color:#5b6778;font-size:11px;white-space:normal;overflow-wrap:anywhere}
.board tr.published td{background:#f6f7f9}.board tr.published td.best{background:#fff3c4}
.board tfoot td,.board tfoot th{font-size:12px;background:#fafbfc}
.tag{display:inline-block;font-size:11px;padding:0 5px;border-radius:3px;background:#dfe4ea;margin-left:4px}
.charts{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0;border:1px solid #e1e6ec;padding:6px;
  max-width:100%;box-sizing:border-box}
figure svg{max-width:100%;height:auto}
figcaption{font-size:12px;font-weight:600;margin-bottom:2px;overflow-wrap:anywhere}
.protocols td,.protocols th{border:1px solid #e1e6ec;padding:3px 6px;font-size:12px;text-align:left}
.protocols{border-collapse:collapse}ul.notes{font-size:12px;color:#3d4756;padding-left:18px}
@media (max-width:899px){body{margin:10px}table.board{table-layout:auto;width:auto}
  .board td.model,.board th.model{min-width:140px}}
"""

JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null||v==='')return null;
    var n=Number(v);return isNaN(n)?v.toLowerCase():n;}
  function sortBy(th,dir){
    var table=th.closest('table'),body=table.tBodies[0],i=th.cellIndex;
    var rows=Array.prototype.slice.call(body.rows);
    if(!dir){dir=th.getAttribute('aria-sort')==='descending'?'ascending':'descending';
      if(th.getAttribute('data-type')==='text'&&!th.hasAttribute('aria-sort'))dir='ascending';}
    rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      var c=x<y?-1:x>y?1:0;return dir==='ascending'?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',dir);
    table.setAttribute('data-sorted',th.getAttribute('data-col')+':'+(dir==='ascending'?'asc':'desc'));
  }
  document.querySelectorAll('table.board thead th').forEach(function(th){
    th.addEventListener('click',function(){sortBy(th);});});
  var m=/#sort=([\\w-]+)(?::(asc|desc))?/.exec(location.hash);
  if(m){var th=document.querySelector('th[data-col="'+m[1]+'"]');
    if(th)sortBy(th,m[2]==='asc'?'ascending':'descending');}
})();
"""


def _attr(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _header(board: Board, s: int, section: Section) -> str:
    cells = [
        f'<th data-col="rank-{s + 1}" data-type="num">rank</th>',
        f'<th class="model" data-col="model-{s + 1}" data-type="text">model</th>',
        f'<th data-col="avg-{s + 1}" data-type="num" title="over the paper\'s metrics, complete rows only">'
        "average</th>",
    ]
    for column in section.columns:
        pid = board.protocol_ids[column.key]
        cells.append(
            f'<th data-col="{board.column_ids[s, column]}" data-type="num" '
            f'title="{_attr(pid + ": " + describe(column.protocol))}">{escape(column.task)}'
            f'<span class="metric">{escape(column.metric)}</span>'
            f'<span class="proto">{escape(pid)} {escape(short(column.protocol))}</span></th>'
        )
    return "<thead><tr>" + "".join(cells) + "</tr></thead>"


def _cell(row: Row, column: Column, best: bool) -> str:
    cell = row.cells.get(column)
    klass = ' class="best"' if best else ""
    if cell is None or cell.value is None:
        title = f' title="{_attr(cell.note)}"' if cell is not None and cell.note else ""
        return f'<td data-v=""{title}>{DASH}</td>'
    ci, interval = "", ""
    if cell.ci95 is not None:
        interval = f"[{cell.ci95[0]:.3f}, {cell.ci95[1]:.3f}]"
        ci = f'<span class="ci">{interval}</span>'
    hover = "; ".join(x for x in (interval and f"95% interval {interval}", cell.note) if x)
    title = f' title="{_attr(hover)}"' if hover else ""
    sd = "" if cell.sd is None else f" ± {cell.sd:.3f}"  # over few-shot draws
    return f'<td data-v="{cell.value!r}"{klass}{title}>{cell.value:.3f}{sd}{ci}</td>'


COMPACT = 10  # more task columns than this: intervals move into the cells' hover text to fit 1,400 px


def _colgroup(section: Section) -> str:
    return (
        '<colgroup><col class="rank"><col class="model"><col class="avg">'
        + "<col>" * len(section.columns)
        + "</colgroup>"
    )


def _body(section: Section) -> str:
    lines = []
    for i, ranked in enumerate(section.rows):
        row = ranked.row
        tag = (
            f'<span class="tag">{"reference" if row.reference else "published"}</span>'
            if row.published
            else ""
        )
        if contamination_mark(row):
            tag += f'<span class="tag">{escape(contamination_mark(row).strip(" []"))}</span>'
        best_avg = ' class="best"' if i in section.best.get(AVERAGE, ()) else ""
        avg = "" if ranked.average is None else repr(ranked.average)
        # Published rows share one source, said once under the table; runs show their lineage.
        lineage = "" if row.published else f"<small>{escape(lineage_text(row))}</small>"
        cells = [
            f'<td data-v="{ranked.rank or ""}">{escape(rank_text(ranked))}</td>',
            f'<td class="model" data-v="{_attr(row.label)}">{escape(row.label)}{tag}{lineage}</td>',
            f'<td data-v="{avg}"{best_avg}>{number(ranked.average)}</td>',
        ]
        cells += [_cell(row, c, i in section.best.get(c, ())) for c in section.columns]
        klass = ' class="published"' if row.published else ""
        lines.append(f"<tr{klass}>{''.join(cells)}</tr>")
    return "<tbody>" + "".join(lines) + "</tbody>"


def _foot(section: Section) -> str:
    def cell(key: Any) -> str:
        verdict = section.verdicts.get(key)
        if verdict is None:
            return "<td></td>"
        return f'<td title="{_attr(verdict.text)}">{escape(verdict_short(section, key))}</td>'

    cells = [f'<th colspan="2" class="model">{escape(SIGNIFICANCE)}</th>', cell(AVERAGE)]
    cells += [cell(c) for c in section.columns]
    return "<tfoot><tr>" + "".join(cells) + "</tr></tfoot>"


def _chart(board: Board, s: int, section: Section, column: Column) -> str:
    """Horizontal bars with 95% interval whiskers, one per row that has a value."""
    rows = [(i, x.row, x.row.cells[column]) for i, x in enumerate(section.rows) if column in x.row.cells]
    rows = [(i, r, c) for i, r, c in rows if c.value is not None]
    if not rows:
        return ""
    left, width, line = 170, 200, 18
    top = max([1.0, *(c.ci95[1] if c.ci95 else c.value for _, _, c in rows)])
    scale = width / top
    parts = []
    for k, (i, row, cell) in enumerate(rows):
        y = 4 + k * line
        label = row.label if len(row.label) <= 26 else row.label[:25] + "…"
        colour = "#9aa5b1" if row.published else "#3b6fb6"
        stroke = ' stroke="#c98a00" stroke-width="2"' if i in section.best.get(column, ()) else ""
        parts.append(
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" font-size="11">'
            f"<title>{escape(row_name(row))}</title>{escape(label)}</text>"
            f'<rect class="bar" x="{left}" y="{y + 2}" width="{cell.value * scale:.1f}" height="{line - 6}" '
            f'fill="{colour}"{stroke}/>'
        )
        end = left + (cell.ci95[1] if cell.ci95 else cell.value) * scale
        if cell.ci95 is not None:
            lo, hi, mid = left + cell.ci95[0] * scale, left + cell.ci95[1] * scale, y + line / 2 - 1
            parts.append(
                f'<g class="whisker" stroke="#1d2430" stroke-width="1.2"><line x1="{lo:.1f}" y1="{mid}" '
                f'x2="{hi:.1f}" y2="{mid}"/><line x1="{lo:.1f}" y1="{mid - 4}" x2="{lo:.1f}" y2="{mid + 4}"/>'
                f'<line x1="{hi:.1f}" y1="{mid - 4}" x2="{hi:.1f}" y2="{mid + 4}"/></g>'
            )
        parts.append(f'<text x="{end + 4:.1f}" y="{y + 12}" font-size="10">{cell.value:.3f}</text>')
    height = 8 + len(rows) * line
    pid = board.protocol_ids[column.key]
    caption = f"{column.task} · {column.metric} · {pid}"
    return (
        f'<figure data-col="{board.column_ids[s, column]}"><figcaption>{escape(caption)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 50}" height="{height}" '
        f'viewBox="0 0 {left + width + 50} {height}" '
        f'role="img" aria-label="{_attr(caption)}">'
        f'<line x1="{left}" y1="0" x2="{left}" y2="{height}" stroke="#8893a2"/>{"".join(parts)}</svg>'
        "</figure>"
    )


def _reliability_block(section: Section) -> str:
    """Reliability diagrams of the section's log-likelihood-scored tasks (results.json's bins)."""
    tasks = list(dict.fromkeys(c.task for c in section.columns))
    figures = [
        _reliability(x.row.label, task, x.row.calibration[task])
        for x in section.rows
        for task in tasks
        if task in x.row.calibration
    ]
    if not figures:
        return ""
    return (
        "<h3>Calibration (log-likelihood scoring)</h3><p>Reliability diagrams: per bin of the top choice's "
        "probability (softmax over the choices' log-likelihoods, 10 equal bins), the share answered "
        "right (bars) against the diagonal of perfect calibration; bar width grows with the bin's "
        "documents. ECE and Brier with bootstrap 95% intervals.</p>"
        f'<div class="charts">{"".join(figures)}</div>'
    )


def _reliability(label: str, task: str, cal: dict[str, Any]) -> str:
    size, pad = 150, 22
    parts = [
        f'<line x1="{pad}" y1="{pad + size}" x2="{pad + size}" y2="{pad}" stroke="#8893a2" '
        'stroke-dasharray="3,3"/>',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#8893a2"/>',
    ]
    bins = reliability_bins(cal)
    most = max([1, *(count for _, _, count, _, _ in bins)])
    for lo, hi, count, confidence, accuracy in bins:
        x0, width = pad + lo * size, (hi - lo) * size
        height, shrink = accuracy * size, width * 0.7 * (1 - count / most) / 2  # fewer documents: thinner
        parts.append(
            f'<rect class="bin" x="{x0 + shrink:.1f}" y="{pad + size - height:.1f}" '
            f'width="{width - 2 * shrink:.1f}" height="{height:.1f}" fill="#3b6fb6">'
            f"<title>{lo:.1f}-{hi:.1f}: {count} documents, confidence {confidence:.3f}, "
            f"accuracy {accuracy:.3f}</title></rect>"
        )
    caption = (
        f"{label} · {task} · ECE {interval_text(cal.get('ece'))} · Brier {interval_text(cal.get('brier'))}"
    )
    middle = pad + size / 2
    return (
        f'<figure class="reliability"><figcaption>{escape(caption)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 2 * pad}" height="{size + 2 * pad}" '
        f'role="img" aria-label="{_attr(caption)}">{"".join(parts)}'
        f'<text x="{middle}" y="{size + 2 * pad - 4}" font-size="10" text-anchor="middle">confidence</text>'
        f'<text x="10" y="{middle}" font-size="10" transform="rotate(-90 10 {middle})" '
        'text-anchor="middle">accuracy</text></svg></figure>'
    )


def _protocols(board: Board) -> str:
    fields = [f for f in KEY_FIELDS if f != "task"]
    head = "".join(f"<th>{escape(f)}</th>" for f in ("id", "task", *fields))
    lines, seen = [], set()
    for section in board.sections:
        for column in section.columns:
            if column.key in seen:
                continue
            seen.add(column.key)
            p = column.protocol
            values = [board.protocol_ids[column.key], p["task"], *(p[f] for f in fields)]
            lines.append("<tr>" + "".join(f"<td>{escape(_show(v))}</td>" for v in values) + "</tr>")
    return f'<table class="protocols"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


def _show(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _notes(board: Board, section: Section) -> str:
    items = []
    published = [x.row for x in section.rows if x.row.published]
    if published:
        items.append(f"published rows: {lineage_text(published[0])}")
    items.append(SIGNIFICANCE_NOTE)
    items += general_lines(section) + cluster_lines(section)
    for text, names in verdict_groups(board, section):
        items.append(f"{SIGNIFICANCE}: {text}: {', '.join(names)}")
    for ranked in section.rows:
        for column in section.columns:
            cell = ranked.row.cells.get(column)
            if cell is not None and cell.note and not ranked.row.published:
                items.append(f"{ranked.row.label}, {column.task} {column.metric}: {cell.note}")
    return '<ul class="notes">' + "".join(f"<li>{escape(x)}</li>" for x in items) + "</ul>"


def html(board: Board, title: str = "mibe leaderboard") -> str:
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Written by mibe {escape(__version__)}. Each column is one task, metric and protocol "
        "(hover a header for it in full; all are listed at the end): numbers scored two ways never share "
        "a column. Cells: value and bootstrap 95% interval (on wide boards in the cell's hover text); "
        "published rows have none, and beside runs they are reference rows, never ranked. Average: over the "
        "paper's metrics of each task, complete rows only. Highlighted: the column's tie group, "
        f"{escape(TIE_GROUP)}. Value ± sd: mean and sd over few-shot draws. Click a header to sort.</p>",
    ]
    parts += [f"<p><strong>{escape(said)}</strong></p>" for said in board.heading]
    for s, section in enumerate(board.sections):
        charts = "".join(_chart(board, s, section, c) for c in section.columns)
        klass = "board compact" if len(section.columns) > COMPACT else "board"
        parts += [
            f'<section id="s{s + 1}"><h2>{escape(section.title)}</h2>',
            f'<div class="wrap"><table class="{klass}" id="t{s + 1}">{_colgroup(section)}'
            f"{_header(board, s, section)}{_body(section)}{_foot(section)}</table></div>",
            _notes(board, section),
            f'<div class="charts">{charts}</div>',
            _reliability_block(section),
            "</section>",
        ]
    parts += [f"<p>{escape(note)}</p>" for note in board.notes]
    parts += [
        "<h2>Protocols</h2>",
        f'<div class="wrap">{_protocols(board)}</div>',
        f"<script>{JS}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"
