"""`mibe import`: other harnesses' saved outputs become run folders that rescore, audit, leaderboard and
compare read unchanged, marked imported so they never share a column with native or published rows."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mibe import cli
from mibe.boards.board import build as build_board
from tests.support.paths import FIXTURES

IMPORTS = FIXTURES / "imports"
CASES = [
    ("lm-eval", "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl", "pubmedqa", "generate"),
    ("lm-eval", "samples_medqa_4options_2024-06-01T10-20-30.123456.jsonl", "medqa", "loglikelihood"),
    ("lm-eval", "pretrained__invented-model_pubmedqa.jsonl", "pubmedqa", "generate"),
    ("me-llama", "PUBMEDQA_write_out_info.json", "pubmedqa", "generate"),
    ("me-llama", "medqa_write_out_info.json", "medqa", "loglikelihood"),
]


def imported(tmp_path: Path, harness: str, name: str, task: str) -> Path:
    out = tmp_path / f"{harness}-{name}"
    assert cli.main(["import", harness, str(IMPORTS / name), "--task", task, "--output-dir", str(out)]) == 0
    return out


@pytest.mark.parametrize(("harness", "name", "task", "scoring"), CASES)
def test_import_then_every_reader(tmp_path: Path, harness: str, name: str, task: str, scoring: str) -> None:
    run = imported(tmp_path, harness, name, task)
    results = json.loads((run / "results.json").read_text())
    entry = results["tasks"][task]
    protocol = entry["protocol"]
    assert protocol["scoring"] == scoring and protocol["imported"]["harness"] == harness
    digest = hashlib.sha256((IMPORTS / name).read_bytes()).hexdigest()
    assert [f["sha256"] for f in protocol["imported"]["files"]] == [digest]
    rows = [json.loads(line) for line in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]
    assert len(rows) == entry["n"] and all(
        {"id", "prompt", "raw_output", "prediction", "gold"} <= set(r) for r in rows
    )
    accuracy = sum(r["prediction"] == r["gold"] for r in rows) / len(rows)
    assert entry["metrics"]["accuracy"]["value"] == pytest.approx(accuracy)
    assert cli.main(["audit", str(run), "-o", str(tmp_path / "audit.md")]) == 0
    assert cli.main(["leaderboard", str(run), "-o", str(tmp_path / "board.md")]) == 0
    assert cli.main(["compare", str(run), str(run), "--format", "json", "-o", str(tmp_path / "c.json")]) == 0
    assert cli.main(["rescore", str(run), "--parser", "paper", "--output-dir", str(tmp_path / "re")]) == 0


def test_imported_numbers_never_share_a_column_with_published_rows(tmp_path: Path) -> None:
    run = imported(tmp_path, "me-llama", "PUBMEDQA_write_out_info.json", "pubmedqa")
    assert not any(x.row.published for s in build_board([run], n_boot=20).sections for x in s.rows)
    board = build_board([run], published="paper_zero_shot", n_boot=20)
    columns = [
        c for s in board.sections for c in s.columns if c.task == "pubmedqa" and c.metric == "accuracy"
    ]
    assert len({c.key for c in columns}) == 2  # the published column and the imported one


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["lm-eval", "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl", "--task", "medqa"],
            "none of medqa's labels",
        ),
        (
            ["me-llama", "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl", "--task", "pubmedqa"],
            "mibe import lm-eval",
        ),
        (["lm-eval", "nowhere.jsonl", "--task", "pubmedqa"], "nowhere.jsonl"),
        (
            ["lm-eval", "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl", "--task", "pubmedq"],
            "--task: 'pubmedq' is not a built-in task; did you mean 'pubmedqa'",
        ),
    ],
)
def test_bad_imports_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], says: str
) -> None:
    args = [a if not a.endswith((".json", ".jsonl")) else str(IMPORTS / a) for a in args]
    assert cli.main(["import", *args, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_credentialed_import_is_owner_only(tmp_path: Path) -> None:
    # Invented MedNLI-shaped rows (not MedNLI): the imported folder is private like a `mibe run` of it.
    rows = [
        {"doc_id": i, "doc": {"sentence1": f"invented premise {i}", "sentence2": f"invented hypothesis {i}"},
         "target": gold, "arguments": {"gen_args_0": {"arg_0": f"Premise {i}. Answer:", "arg_1": {}}},
         "resps": [[out]], "filtered_resps": [out], "filter": "none", "metrics": ["exact_match"]}
        for i, (gold, out) in enumerate([("entailment", "entailment"), ("neutral", "contradiction")])
    ]  # fmt: skip
    source = tmp_path / "samples_mednli.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    argv = ["import", "lm-eval", str(source), "--task", "mednli", "--output-dir", str(out)]
    assert cli.main(argv) == 0
    for name in ("results.json", "run.json", "samples/mednli.jsonl"):
        assert (out / name).stat().st_mode & 0o077 == 0, name
    public = imported(tmp_path, *CASES[0][:3])  # a public task follows the umask
    umask = os.umask(0)
    os.umask(umask)
    assert (public / "results.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_imported_reasoning_traces_are_split_off_as_mibe_run_does(tmp_path: Path) -> None:
    """Outputs holding `<think>` traces: only the final answer is parsed (the traces were parsed as the
    answer), an unfinished trace is no answer, and the split is recorded as `mibe run` records it."""
    lines = (IMPORTS / CASES[0][1]).read_text().splitlines()
    outputs = [
        "<think>It is not no; perhaps maybe.</think>\nyes",  # the whole text names all three labels
        "<think>\nThe answer is yes... or is it?",  # never closed: ran out of tokens while thinking
        "no",  # no trace: read as it is
        "<think>the answer is no</think>the answer is maybe",
    ]
    rows = [json.loads(line) for line in lines]
    for row, output in zip(rows, outputs, strict=True):
        row["resps"], row["filtered_resps"] = [[output]], [output]
    source = tmp_path / "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    assert cli.main(["import", "lm-eval", str(source), "--task", "pubmedqa", "--output-dir", str(out)]) == 0
    samples = [json.loads(line) for line in (out / "samples" / "pubmedqa.jsonl").read_text().splitlines()]
    assert [s["parse_failed"] for s in samples] == [False, True, False, False]
    assert [s["prediction"] for s in samples if not s["parse_failed"]] == ["yes", "no", "maybe"]
    assert [s["reasoning_truncated"] for s in samples] == [False, True, False, False]
    assert samples[0]["reasoning"] == "It is not no; perhaps maybe." and samples[0]["answer_text"] == "yes"
    assert samples[2]["reasoning"] is None and samples[1]["parse_failed"] is True
    entry = json.loads((out / "results.json").read_text())["tasks"]["pubmedqa"]
    assert entry["protocol"]["reasoning"] == {"delimiters": [["<think>", "</think>"]], "budget": None}
    assert entry["reasoning"]["with_trace"] == 3 and entry["reasoning"]["reasoning_truncated"] == 1
    # Rescoring the imported folder reads the same answers.
    assert cli.main(["rescore", str(out), "--output-dir", str(tmp_path / "re")]) == 0
    again = [json.loads(x) for x in (tmp_path / "re" / "samples" / "pubmedqa.jsonl").read_text().splitlines()]
    assert [s["prediction"] for s in again] == [s["prediction"] for s in samples]
    assert [s["parse_failed"] for s in again] == [False, True, False, False]
