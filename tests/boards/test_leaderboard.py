"""`mibe leaderboard` and `mibe compare` on real runs of tiny LLaMAs (zero-shot, 1-shot, LoRA, another
checkpoint) beside the paper's published rows; constructed run folders only for significance cases."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from scipy.stats import binomtest

from mibe import resources
from mibe.boards import compare, compare_text, render
from mibe.boards import table as board_model
from mibe.boards.board import NO_REAL
from mibe.boards.board import build as build_board
from mibe.boards.published import read_table
from mibe.boards.ranking import AVERAGE
from mibe.boards.table import protocol_key
from mibe.types import MibeError
from tests.support.boardruns import COPIES, constructed_run, run_cli
from tests.support.paths import REPO
from tests.support.runfiles import results

# The paper's metrics of these tasks (leaderboards/README.md): what the average is over.
AVERAGED = {("pubmedqa", "accuracy"), ("pubmedqa", "macro_f1"), ("medqa", "accuracy"), ("medqa", "macro_f1")}
AVERAGED |= {("mednli", "accuracy"), ("mednli", "macro_f1"), ("hoc", "macro_f1")}


def section_of(board: board_model.Board, run: Path):
    return next(s for s in board.sections if any(x.row.run_dir == run for x in s.rows))


def test_protocols_never_share_a_column_and_invented_runs_sit_apart(board_runs: dict[str, Path]) -> None:
    board = build_board(list(board_runs.values()), published="paper_zero_shot", n_boot=200)
    titles = [s.title for s in board.sections]
    # The user's runs lead; a named table that shares no column follows them, whole.
    assert titles[0].startswith("Runs") and titles[-2].startswith("Invented data"), titles
    assert titles[-1].startswith("Published rows")
    main = section_of(board, board_runs["zero"])
    assert {x.row.run_dir for x in main.rows} == {board_runs[k] for k in ("zero", "lora", "other", "partial")}
    oneshot = section_of(board, board_runs["oneshot"])
    assert oneshot is not main and {c.protocol["shots"] for c in oneshot.columns} == {1}
    assert section_of(board, board_runs["demo"]).invented and not main.invented
    published = next(s for s in board.sections if s.title.startswith("Published"))
    assert len(published.rows) == 8 and len(published.columns) == 18
    for section in board.sections:
        for ranked in section.rows:
            if ranked.row.published:
                continue
            tasks = results(ranked.row.run_dir)["tasks"]
            for column in ranked.row.cells:  # each number sits under its own run's protocol key
                assert column.key == protocol_key(column.task, tasks[column.task]["protocol"])
        keys_per_column = {(c.task, c.metric, c.key) for c in section.columns}
        assert len(keys_per_column) == len(section.columns)


def test_cells_averages_ranks_and_best_follow_the_results(board_runs: dict[str, Path]) -> None:
    board = build_board(list(board_runs.values()), n_boot=200)
    main = section_of(board, board_runs["zero"])
    assert {(c.task, c.metric) for c in main.columns} == AVERAGED  # the paper's metrics only
    expected = {}
    for ranked in main.rows:
        tasks = results(ranked.row.run_dir)["tasks"]
        for column in main.columns:
            entry = tasks.get(column.task)
            cell = ranked.row.cells.get(column)
            if entry is None:
                assert cell is None
                continue
            metric = entry["metrics"][column.metric]
            assert cell.value == metric["value"] and list(cell.ci95) == metric["ci95"]
            assert cell.n == entry["n"] == (3 if column.task == "hoc" else 3 * COPIES)
        values = [tasks[t]["metrics"][m]["value"] for t, m in sorted(AVERAGED) if t in tasks]
        expected[ranked.row.run_dir] = sum(values) / len(values) if len(values) == len(AVERAGED) else None
    assert {x.row.run_dir: x.average for x in main.rows} == pytest.approx(expected)
    assert next(x for x in main.rows if x.row.run_dir == board_runs["partial"]).rank is None
    complete = sorted((x for x in main.rows if x.average is not None), key=lambda x: -x.average)
    assert [x.rank for x in main.rows if x.rank] == [
        1 + sum(y.average > x.average for y in complete) for x in complete
    ]
    for column in main.columns:
        values = {i: x.row.cells[column].value for i, x in enumerate(main.rows) if column in x.row.cells}
        top = max(values.values())
        winners = {i for i, v in values.items() if v == top}
        if len(winners) == len(values):  # all equal: nothing marked
            assert column not in main.best
        else:  # the marks are the tie group: every best value and the rows not significantly behind
            group = main.ties.get(column)
            assert group is not None and main.best[column] == set(group.members) >= winners
        assert column in main.verdicts
    assert AVERAGE in main.verdicts


def test_published_rows_are_the_papers_table_3() -> None:
    board = build_board([], n_boot=10)
    (section,) = board.sections
    rows = {x.row.label: x for x in section.rows}
    cell = {(c.task, c.metric): c for c in section.columns}
    assert rows["Me-LLaMA-70B-chat"].row.cells[cell["pubmedqa", "accuracy"]].value == 0.768
    assert rows["LLaMA2 13B"].row.cells[cell["i2b2_2010", "entity_f1"]].value == 0.008  # "i2b2 Macro-F1"
    assert rows["Me-LLaMA-13B-chat"].row.cells[cell["emrqa", "exact_match"]].value == 0.048  # "EmrQA Acc"
    assert rows["LLaMA2 70B-instruct"].row.cells[cell["mimic_cxr", "bertscore_f1"]].value == 0.784
    protocol = section.columns[0].protocol
    assert (protocol["shots"], protocol["parser"], protocol["scoring"]) == (0, "paper", "generate")
    assert (protocol["max_new_tokens"], protocol["stop"], protocol["chat_template"]) == (256, [], None)
    table = read_table(resources.shipped("leaderboards") / "paper_zero_shot.csv").lines
    top = rows["Me-LLaMA-70B-chat"]
    assert top.rank == 1 and top.average == pytest.approx(
        sum(float(r["Me-LLaMA-70B-chat"]) for r in table) / 18
    )
    assert all(v.significant is None and "no samples" in v.text for v in section.verdicts.values())


def test_published_csv_copies_the_papers_table_verbatim() -> None:
    # tests/fixtures/paper_table3.csv is Table 3 as printed, transcribed apart from leaderboards/.
    paper = list(csv.reader((REPO / "tests" / "fixtures" / "paper_table3.csv").open()))
    shipped = read_table(REPO / "leaderboards" / "paper_zero_shot.csv")
    assert paper[0][2:] == shipped.models  # the names as the paper prints them
    assert [n for n in paper[0] if n.startswith("LLaMA2") and "instruct" in n] == [
        "LLaMA2 13B-instruct",
        "LLaMA2 70B-instruct",
    ]
    ours = [[r["paper_dataset"], r["paper_metric"], *(r[m] for m in shipped.models)] for r in shipped.lines]
    assert [[r[0], r[1], *r[2:]] for r in paper[1:]] == ours
    assert all(r["source"] == "npj Digit. Med. 2025, Table 3" for r in shipped.lines)  # each row's source
    block = shipped.block
    assert (block["setting"], block["table"], block["shots"]) == ("zero-shot", "3", "0")
    # each model with its header's description, listed on the board
    assert set(shipped.footnotes) == set(shipped.models)
    text = render.text(build_board([], n_boot=10))
    assert "LLaMA2 70B-instruct (backbone + instruction tuning only)" in text


def test_every_format_renders_and_no_sample_text_leaves(board_runs: dict[str, Path]) -> None:
    board = build_board(list(board_runs.values()), published="paper_zero_shot", n_boot=200)
    from mibe.boards.html import html

    outputs = {"table": render.text(board), "md": render.markdown(board), "csv": render.csv_text(board)}
    outputs["html"] = html(board)
    outputs["compare"] = compare_text.render(
        compare.compare(board_runs["zero"], board_runs["other"], 200), "md"
    )
    secrets = set()
    for run in board_runs.values():
        for line in (
            (run / "samples" / "mednli.jsonl").read_text().splitlines()
            if (run / "samples" / "mednli.jsonl").exists()
            else []
        ):
            row = json.loads(line)
            secrets |= (
                {row["prompt"][-60:], row["raw_output"]}
                if len(row["raw_output"]) > 8
                else {row["prompt"][-60:]}
            )
    assert secrets
    for name, text in outputs.items():
        assert not any(s in text for s in secrets), name  # credentialed (any) sample text: never exported
    for name in ("table", "md", "html"):
        assert "Me-LLaMA-70B-chat" in outputs[name] and "+ adapter" in outputs[name] and "—" in outputs[name]
    md_rows = [line for line in outputs["md"].splitlines() if line.startswith("| ") and "rank" not in line]
    assert len(md_rows) == sum(len(s.rows) + 1 for s in board.sections)  # + the significance line
    lines = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert len(lines) == sum(len(s.rows) * len(s.columns) for s in board.sections)
    zero = results(board_runs["zero"])["tasks"]
    mine = [r for r in lines if r["run"] == str(board_runs["zero"]) and r["metric"] == "accuracy"]
    assert {r["task"]: float(r["value"]) for r in mine} == {
        t: zero[t]["metrics"]["accuracy"]["value"] for t in ("pubmedqa", "medqa", "mednli")
    }
    assert {r["shots"] for r in mine} == {"0"} and {r["scoring"] for r in mine} == {"loglikelihood"}
    for name in ("table", "compare_table"):  # a 100-column terminal: every line fits
        text = outputs.get(name) or compare_text.render(
            compare.compare(board_runs["zero"], board_runs["other"], 200), "table"
        )
        assert max(map(len, text.splitlines())) <= 100, name
    for name in ("md", "compare"):  # a real CommonMark+tables renderer draws every table whole
        assert_markdown_tables(outputs[name])


def assert_markdown_tables(text: str) -> None:
    """markdown-it-py (CommonMark + GFM tables): every `|` line is inside a table, and every body row
    has as many cells as the header (an unescaped `|` would add one and break the table)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables, cells, rows = 0, 0, []
    for token in tokens:
        if token.type == "table_open":
            tables += 1
        elif token.type == "tr_open":
            cells = 0
        elif token.type in ("th_open", "td_open"):
            cells += 1
        elif token.type == "tr_close":
            rows.append((tables, cells))
    piped = [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]
    assert tables >= 1 and len(rows) == len(piped)
    for k in range(1, tables + 1):
        widths = {c for t, c in rows if t == k}
        assert len(widths) == 1, widths


def test_lineage_names_base_and_adapter(board_runs: dict[str, Path]) -> None:
    board = build_board([board_runs["lora"], board_runs["zero"]], published=False, n_boot=50)
    lora = next(x.row for x in board.sections[0].rows if x.row.run_dir == board_runs["lora"])
    model = results(board_runs["lora"])["model"]
    assert lora.label == f"{Path(model['path']).name} + adapter"
    assert lora.lineage["base"] == model["path"] and lora.lineage["adapter"] == model["adapter"]
    assert "adapter " in render.lineage_text(lora)


def test_best_row_significantly_ahead_is_marked_with_the_exact_p(tmp_path: Path) -> None:
    strong = constructed_run(tmp_path / "strong", "strong", set(range(50)), 60)
    weak = constructed_run(tmp_path / "weak", "weak", set(range(15)) | set(range(50, 55)), 60)
    near = constructed_run(tmp_path / "near", "near", set(range(48)) | {55}, 60)
    board = build_board([weak, strong], published=False, n_boot=500)
    (section,) = board.sections
    assert section.rows[0].row.label == "strong" and section.rows[0].rank == 1
    accuracy = next(c for c in section.columns if c.metric == "accuracy")
    verdict = section.verdicts[accuracy]
    assert verdict.significant is True and verdict.test == "McNemar exact" and verdict.n == 60
    assert verdict.p == pytest.approx(binomtest(5, 40, 0.5).pvalue)  # 35 only strong, 5 only weak
    macro = next(c for c in section.columns if c.metric == "macro_f1")
    assert section.verdicts[macro].significant is True and section.verdicts[macro].test == "paired bootstrap"
    assert section.verdicts[AVERAGE].significant is True
    close = build_board([near, strong], published=False, n_boot=500).sections[0]
    verdict = close.verdicts[next(c for c in close.columns if c.metric == "accuracy")]
    assert verdict.significant is False and verdict.p == pytest.approx(binomtest(1, 3, 0.5).pvalue) == 1.0
    assert "no (p=1" in render.text(build_board([near, strong], published=False, n_boot=100))


def test_published_rows_are_unranked_references_in_the_columns_of_any_data_source(tmp_path: Path) -> None:
    paper = dict(parser="paper", max_new_tokens=256, stop=[])
    hub = constructed_run(
        tmp_path / "hub", "mine", set(range(40)), 60, data="hub:clinicalnlplab/pubmedqa_test@abc123", **paper
    )
    local = constructed_run(tmp_path / "local", "local", set(range(30)), 60, limit=60, **paper)
    apart = constructed_run(
        tmp_path / "apart", "mine-128", set(range(40)), 60, **{**paper, "max_new_tokens": 128}
    )
    board = build_board([hub, local, apart], n_boot=100, labels={str(hub): "My model (hub)"})
    first, second, third = board.sections  # no column shared: each run its own section, in order
    for section, label in ((first, "My model (hub)"), (second, "local")):
        assert section.title.startswith("Runs, with published rows for reference")
        assert section.rows[0].row.label == label and section.rows[0].rank == 1  # the user's row leads
        refs = section.rows[1:]
        assert len(refs) == 8 and all(x.row.reference and x.rank is None for x in refs)
        assert all(i == 0 for best in section.best.values() for i in best)  # never best
        assert all("published" not in v.text for v in section.verdicts.values())  # never tested
    assert not any(x.row.published for x in third.rows)  # 128 new tokens: not the paper's protocol
    accuracy = next(c for c in first.columns if c.metric == "accuracy")
    me70 = next(x.row for x in first.rows if x.row.label == "Me-LLaMA-70B-chat")
    assert me70.cells[accuracy].value == 0.768 and me70.cells[accuracy].ci95 is None
    assert "at revision abc123" in me70.cells[accuracy].note
    local_accuracy = next(c for c in second.columns if c.metric == "accuracy")
    note = next(x.row for x in second.rows if x.row.label == "Me-LLaMA-70B-chat").cells[local_accuracy].note
    assert "runs read a local copy (sha256:constructed)" in note and "the first 60 (60 documents)" in note
    text = render.text(board)
    assert "ref: the paper's published numbers" in text and "never ranked or tested" in text
    assert max(map(len, text.splitlines())) <= 100


def board_runs_demo(tmp_path: Path, run: Path) -> Path:
    """A copy of `run` marked invented, under the paper's protocol (it would share the paper's column)."""
    import shutil

    copy = tmp_path / "invented"
    shutil.copytree(run, copy)
    data = json.loads((copy / "results.json").read_text())
    for entry in data["tasks"].values():
        entry["invented"] = True
        entry["protocol"].update(parser="paper", max_new_tokens=256, stop=[])
    (copy / "results.json").write_text(json.dumps(data))
    return copy


def test_published_choice_and_labels(tmp_path: Path) -> None:
    run = constructed_run(tmp_path / "r", "r", set(range(40)), 60)  # mibe's protocol: no paper column
    board = build_board([run], n_boot=20)
    assert len(board.sections) == 1 and not any(x.row.published for x in board.sections[0].rows)
    assert "share no column" in render.text(board) and "--published paper_zero_shot" in board.notes[0]
    assert len(build_board([run], published="paper_zero_shot", n_boot=20).sections) == 2
    assert len(build_board([run], published="none", n_boot=20).sections) == 1
    demo = build_board([board_runs_demo(tmp_path, run)], n_boot=20)
    assert demo.notes == [NO_REAL] and all(not x.row.published for s in demo.sections for x in s.rows)
    for bad, says in (
        ("nope", "--published nope: no such table; use reference, none, or one of paper_zero_shot"),
        ("reference,none", "give reference, none, or a comma list"),
    ):
        with pytest.raises(MibeError, match=says):
            build_board([run], published=bad, n_boot=20)
    with pytest.raises(MibeError, match="is not one of the run folders given"):
        build_board([run], labels={str(tmp_path / "other"): "x"}, n_boot=20)
    code, out, _ = run_cli("leaderboard", str(run), "--label", f"{run}=Mine, tuned", "--bootstrap", "20")
    assert code == 0 and "#1 Mine, tuned" in out
    code, _, err = run_cli("leaderboard", str(run), "--label", "Mine", "--bootstrap", "20")
    assert code == 2 and "--label Mine: write RUN=NAME" in err and len(err.strip().splitlines()) == 1


def test_cli_writes_every_format_and_a_figure(board_runs: dict[str, Path], tmp_path: Path) -> None:
    zero, lora, oneshot = (str(board_runs[k]) for k in ("zero", "lora", "oneshot"))
    for suffix, marker in ((".md", "| rank |"), (".csv", "section,rank,row"), (".html", "<!doctype html>")):
        code, _, err = run_cli(
            "leaderboard", zero, lora, oneshot, "-o", str(tmp_path / f"board{suffix}"), "--bootstrap", "100"
        )
        assert code == 0, err
        assert (tmp_path / f"board{suffix}").read_text().startswith(marker) or marker in (
            tmp_path / f"board{suffix}"
        ).read_text()
    code, out, err = run_cli(
        "leaderboard", zero, lora, "--no-published", "--plot", str(tmp_path / "fig.png"), "--bootstrap", "50"
    )
    assert code == 0 and out.startswith("== Runs"), err
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_cli(
        "leaderboard", zero, "--plot", str(tmp_path / "fig.svg"), "--format", "md", "--bootstrap", "50"
    )
    assert code == 0 and ">pubmedqa<" in (tmp_path / "fig.svg").read_text(), err
    code, out, err = run_cli("compare", zero, lora, "--format", "json", "--bootstrap", "100")
    report = json.loads(out)
    assert code == 0 and report["b"]["label"].endswith("+ adapter") and len(report["tasks"]) == 4, err
    code, out, _ = run_cli("compare", zero, lora)
    assert code == 0 and out.splitlines()[0].split()[:3] == ["task", "metric", "n"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("leaderboard", "{missing}"), "no such run folder"),
        (("leaderboard", "{bad}"), "not valid JSON"),
        (("leaderboard", "--no-published"), "nothing to show"),
        (("leaderboard", "{run}", "--bootstrap", "0"), "--bootstrap 0"),
        (("leaderboard", "{run}", "--plot", "{tmp}/fig.gif"), "name a .png, .pdf or .svg"),
        (("compare", "{run}", "{missing}"), "no such run folder"),
        (("compare", "{run}", "{notasks}"), "no 'tasks' mapping"),
        (("leaderboard", "{badvalue}"), "field 'tasks.pubmedqa.metrics.accuracy.value' must be a number"),
        (("leaderboard", "{noprotocol}"), "field 'tasks.pubmedqa.protocol' is missing"),
        (("leaderboard", "{run}", "-o", "{run}/results.json/x.md"), "inside the run folder"),
        (("leaderboard", "{run}", "-o", "{tmp}/notes.md/x.md"), "cannot write"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    run = constructed_run(tmp_path / "run", "m", {1, 2}, 6)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    (tmp_path / "notes.md").write_text("a file, so notes.md/x.md cannot be written")
    (tmp_path / "notasks").mkdir()
    (tmp_path / "notasks" / "results.json").write_text("[]")
    for name, change in (("badvalue", {"value": "0.5"}), ("noprotocol", None)):
        data = json.loads((run / "results.json").read_text())
        if change is None:
            del data["tasks"]["pubmedqa"]["protocol"]
        else:
            data["tasks"]["pubmedqa"]["metrics"]["accuracy"] = change
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(data))
    names = dict(missing=tmp_path / "nowhere", bad=tmp_path / "bad", run=run, tmp=tmp_path)
    names |= dict(
        notasks=tmp_path / "notasks", badvalue=tmp_path / "badvalue", noprotocol=tmp_path / "noprotocol"
    )
    code, _, err = run_cli(*(a.format(**names) for a in args))
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
