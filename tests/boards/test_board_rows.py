"""Rows a board compares (issue 30 item 5): `--reference` tables, `--group`, `--average public`,
`--compare-across template`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mibe.boards import render
from mibe.boards.board import build
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support.boardruns import stand_in_data
from tests.support.loopback import recorder, serving

COMMON: dict[str, Any] = dict(scoring="loglikelihood", max_new_tokens=8, bootstrap=50, batch_size=8)


@pytest.fixture(scope="module")
def runs(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One model's tasks scored in two runs (pubmedqa+medqa, mednli+hoc), and all four in one run."""
    root = tmp_path_factory.mktemp("board-rows")
    data = stand_in_data(root / "data")
    tasks = {
        "qa": ("pubmedqa", "medqa"),
        "rest": ("mednli", "hoc"),
        "whole": ("pubmedqa", "medqa", "mednli", "hoc"),
    }
    out = {}
    for name, chosen in tasks.items():
        out[name] = root / name
        config = RunConfig(
            model=str(tiny_llama), tasks=chosen, data_dir=str(data), output_dir=str(out[name]), **COMMON
        )
        api.run(config)
    return out


def _metrics(run: Path) -> dict[str, dict[str, float]]:
    tasks = json.loads((run / "results.json").read_text())["tasks"]
    return {t: {m: v["value"] for m, v in e["metrics"].items()} for t, e in tasks.items()}


def _reference_file(run: Path, target: Path, values: dict[str, float], model: str = "Earlier model") -> Path:
    """A reference table in the shipped layout whose protocol block is the run's own protocol."""
    protocol = json.loads((run / "results.json").read_text())["tasks"]["pubmedqa"]["protocol"]
    block = {
        "setting": "zero-shot", "shots": protocol["shots"], "scoring": protocol["scoring"],
        "parser": protocol["parser"], "chat_template": protocol["chat_template"] or "none",
        "max_new_tokens": protocol["max_new_tokens"] or "none",
        "stop": "|".join(protocol["stop"] or []) or "none",
        "source": "our lab notebook", "paper_version": "internal v1", "table": "2",
    }  # fmt: skip
    lines = [f"# {k}: {v}" for k, v in block.items()]
    lines.append(f"task,metric,paper_dataset,paper_metric,data,source,{model}")
    lines += [f"pubmedqa,{m},PubMedQA,{m},somewhere,notebook p. 3,{v}" for m, v in values.items()]
    target.write_text("\n".join(lines) + "\n")
    return target


def test_reference_rows_are_marked_and_unranked(runs: dict[str, Path], tmp_path: Path) -> None:
    table = _reference_file(runs["whole"], tmp_path / "mine.csv", {"accuracy": 0.5, "macro_f1": 0.25})
    board = build([runs["whole"], runs["qa"]], published="none", n_boot=20, references=[str(table)])
    section = board.sections[0]
    ref = next(x for x in section.rows if x.row.label == "Earlier model")
    assert ref.row.reference and ref.rank is None
    accuracy = next(c for c in section.columns if (c.task, c.metric) == ("pubmedqa", "accuracy"))
    assert ref.row.cells[accuracy].value == 0.5 and "notebook p. 3" in ref.row.cells[accuracy].note
    assert "ref" in render.text(board) and "our lab notebook, internal v1, Table 2" in render.text(board)
    # A table that shares no column is still shown, in a reference section of its own.
    apart = _reference_file(runs["whole"], tmp_path / "apart.csv", {"accuracy": 0.5}, model="Other")
    apart.write_text(apart.read_text().replace("# shots: 0", "# shots: 5"))
    board = build([runs["whole"]], published="none", n_boot=20, references=[str(apart)])
    last = board.sections[-1]
    assert last.title.startswith("Reference rows") and [x.row.label for x in last.rows] == ["Other"]
    assert last.rows[0].rank is None and last.rows[0].row.reference


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda t: re.sub(r"# parser: .*\n", "", t), "lacks parser"),
        (lambda t: t.replace("# shots: 0", "# shots: few"), "'shots: few' should be a whole number"),
        (lambda t: "# colour: red\n" + t, "key 'colour' is unknown"),
        (lambda t: t.replace(",0.5", ",half"), "'half' is not a number"),
        (lambda t: t.replace("notebook p. 3", ""), "the source column is empty"),
    ],
)
def test_a_bad_reference_table_is_one_line(
    runs: dict[str, Path], tmp_path: Path, edit: Any, says: str
) -> None:
    table = _reference_file(runs["whole"], tmp_path / "t.csv", {"accuracy": 0.5})
    table.write_text(edit(table.read_text()))
    with pytest.raises(MibeError, match=says) as caught:
        build([runs["whole"]], published="none", n_boot=20, references=[str(table)])
    assert str(table) in str(caught.value) and "\n" not in str(caught.value)


def test_group_joins_runs_and_average_public_leaves_credentialed_tasks_out(runs: dict[str, Path]) -> None:
    board = build(
        [runs["qa"], runs["rest"], runs["whole"]], published="none", n_boot=20,
        groups={"split runs": [str(runs["qa"]), str(runs["rest"])]},
    )  # fmt: skip
    section = board.sections[0]
    grouped = next(x for x in section.rows if x.row.label == "split runs")
    assert {c.task for c in grouped.row.cells} == {"pubmedqa", "medqa", "mednli", "hoc"}
    assert grouped.rank is not None and len(section.rows) == 2  # one complete row, beside the whole run
    scored = {**_metrics(runs["qa"]), **_metrics(runs["rest"])}
    paper = [("pubmedqa", "accuracy"), ("pubmedqa", "macro_f1"), ("medqa", "accuracy"), ("medqa", "macro_f1")]
    public = [*paper, ("hoc", "macro_f1")]
    every = [*public, ("mednli", "accuracy"), ("mednli", "macro_f1")]
    assert grouped.average == pytest.approx(sum(scored[t][m] for t, m in every) / len(every))
    board = build(
        [runs["qa"], runs["rest"]], published="none", n_boot=20, average="public",
        groups={"split runs": [str(runs["qa"]), str(runs["rest"])]},
    )  # fmt: skip
    grouped = board.sections[0].rows[0]
    assert grouped.average == pytest.approx(sum(scored[t][m] for t, m in public) / len(public))
    assert "--average public" in board.heading[0] and "mednli" not in board.heading[0]
    assert render.text(board).startswith("Average (and ranks) over the public tasks")
    with pytest.raises(MibeError, match="is scored by two of its runs"):
        build(
            [runs["qa"], runs["whole"]],
            published="none",
            n_boot=20,
            groups={"g": [str(runs["qa"]), str(runs["whole"])]},
        )


def test_compare_across_template_puts_a_hosted_and_a_local_row_in_one_column(
    tiny_llama: Path, tmp_path: Path
) -> None:
    options: dict[str, Any] = dict(tasks=("pubmedqa",), demo=True, limit=2, max_new_tokens=4, bootstrap=20)
    local = tmp_path / "local"
    api.run(RunConfig(model=str(tiny_llama), output_dir=str(local), **options))
    hosted = tmp_path / "hosted"
    with serving(recorder()) as url:
        config = RunConfig(model="m", backend="openai", base_url=url, output_dir=str(hosted), **options)
        api.run(config)
    apart = build([local, hosted], published="none", n_boot=20)
    assert all(len(s.rows) == 1 for s in apart.sections) and not apart.heading  # two templates: apart
    together = build([local, hosted], published="none", n_boot=20, compare_across=["template"])
    (section,) = together.sections
    column = next(c for c in section.columns if c.metric == "accuracy")
    assert all(column in x.row.cells for x in section.rows) and len(section.rows) == 2
    assert together.heading and "Compared across chat_template" in together.heading[0]
    assert "server" in together.heading[0]  # each row's own template, said above the table
    assert render.text(together).startswith("Compared across chat_template")
