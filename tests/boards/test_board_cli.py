"""`mibe leaderboard` on hostile input: -o never writes into a run folder, output suffixes and
--bootstrap are checked, NaN values, odd names and spreadsheet formulas in every export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mibe import cli
from tests.support.notes import main, one_line, run, workspace


def test_leaderboard_never_writes_into_a_run_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out)
    before = (out / "results.json").read_text()
    for target in (out / "results.json", out / "samples" / "notes.jsonl", out / "board.md"):
        code, err = main("leaderboard", str(out), "-o", str(target), "--format", "md", capsys=capsys)
        one_line(code, err, "inside the run folder")
    code, err = main("leaderboard", "--no-published", str(out), "-o", str(tmp_path / "b" / "results.json"),
                     "--format", "md", capsys=capsys)  # fmt: skip
    assert code == 0 and (out / "results.json").read_text() == before
    code, err = main("compare", str(out), str(out), "-o", str(out / "results.json"), capsys=capsys)
    one_line(code, err, "inside the run folder")
    assert (out / "results.json").read_text() == before


def test_an_unknown_output_suffix_names_the_allowed_ones(tmp_path: Path, capsys) -> None:
    code, err = main("leaderboard", "-o", str(tmp_path / "board.xlsx"), capsys=capsys)
    one_line(code, err, "unknown suffix .xlsx; use .txt, .md, .markdown, .csv, .html, .htm")
    code, err = main("compare", "a", "b", "-o", str(tmp_path / "c.html"), capsys=capsys)
    one_line(code, err, "use .txt, .md, .markdown, .csv, .json")
    assert not (tmp_path / "board.xlsx").exists()


def test_nan_values_odd_names_and_formulas_in_exports(tmp_path: Path) -> None:
    from mibe.boards import board, render

    runs = []
    for name, accuracy in (('=HYPERLINK("http://x")', 0.4), ("two\nlines", float("nan")), ("ok", 0.6)):
        out = tmp_path / str(len(runs))
        run(workspace(tmp_path / "w"), out)
        results = json.loads((out / "results.json").read_text())
        results["model"]["name"] = name
        for metric in results["tasks"]["notes"]["metrics"].values():
            metric["value"] = accuracy
        (out / "results.json").write_text(json.dumps(results))
        runs.append(str(out))
    built = board.build(runs, False, False, n_boot=10, seed=1)
    ranked = built.sections[0].rows
    assert [r.row.label for r in ranked if r.rank is not None] == ["ok", '=HYPERLINK("http://x")']
    table = render.text(built).replace(str(tmp_path), "")
    cells = "\n".join(line for line in table.splitlines() if "results.json holds" not in line)
    assert not re.search(r"\bnan\b|\binf\b", cells, re.IGNORECASE)
    assert "notes accuracy: results.json holds nan, not a number" in table
    md = render.markdown(built)
    body = [line for line in md.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in body) and any("two lines" in line for line in body)
    csv_rows = render.csv_text(built).splitlines()
    assert any(
        line.startswith("notes") and ",'=HYPERLINK" in line.replace('"', "") for line in csv_rows
    ) or any("'=HYPERLINK" in line for line in csv_rows)
    assert not any(",=HYPERLINK" in line or ',"=HYPERLINK' in line for line in csv_rows)


def test_a_board_bootstrap_past_the_cap_is_one_line(tmp_path: Path, capsys) -> None:
    assert cli.main(["leaderboard", "--bootstrap", "10000000000000"]) == 2
    assert "--bootstrap 10000000000000: must be a positive integer up to 100,000" in capsys.readouterr().err
