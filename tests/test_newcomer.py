"""A new user's path: the task-file guide's tutorial as written, `tasks new` / `tasks show`, warnings for
broken outputs, one-line messages with their fix, `--help` defaults, run-file modes, progress."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mibe import cli, resources
from mibe.runfolder import summary
from mibe.scoring import output_checks
from mibe.types import Request
from tests.support.paths import REPO

KINDS = ("choice", "letter", "multi_label", "span", "entities", "text")


def tutorial_blocks() -> list[str]:
    text = (REPO / "docs" / "task-files.md").read_text(encoding="utf-8")
    section = text[text.index("## Five-minute tutorial") :]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def shim(folder: Path) -> dict[str, str]:
    """`mibe` on PATH running this checkout (the venv's entry point may point at another one)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    script = bin_dir / "mibe"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mibe "$@"\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}


def test_tutorial_runs_as_written(tiny_llama: Path, tmp_path: Path) -> None:
    blocks = tutorial_blocks()
    assert len(blocks) >= 5 and any("mibe run --model smollm2-135m" in b for b in blocks)
    script = "set -euo pipefail\n" + "\n".join(blocks).replace("smollm2-135m", str(tiny_llama))
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        ["bash", "-c", script], cwd=work, env=shim(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((work / "runs" / "triage" / "results.json").read_text())
    entry = results["tasks"]["triage"]
    assert (
        entry["n"] == 4
        and entry["invented"]
        and set(entry["metrics"]) == {"accuracy", "macro_f1", "missing_rate"}
    )
    assert "Note: Crushing chest pain" in done.stdout  # tasks show rendered the first document
    lines = (work / "runs" / "triage" / "samples" / "triage.jsonl").read_text().splitlines()
    first = next(r for r in map(json.loads, lines) if r["id"] == "n1")
    # The template's last line break stayed out of the prompt; the chat template wraps it after,
    # though the tutorial passes no --chat-template: auto is the default (docs/task-files.md says so).
    assert "Note: Crushing chest pain for 20 minutes, sweating.\nAnswer:\n<|assistant|>" in first["prompt"]
    assert entry["protocol"]["chat_template"] is not None
    assert "next:" in done.stderr and "mibe view runs/triage -o triage.html" in done.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_tasks_new_validates_and_runs(kind: str, tiny_llama: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "mine"
    assert cli.main(["tasks", "new", "probe", "--kind", kind, "--dir", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["probe.jinja", "probe.jsonl", "probe.yaml"]
    assert '"invented": true' in (folder / "probe.jsonl").read_text()
    assert (folder / "probe.yaml").read_text().startswith("# ")  # commented
    assert cli.main(["tasks", "validate", str(folder / "probe.yaml")]) == 0
    assert cli.main(["tasks", "show", str(folder / "probe.yaml")]) == 0
    shown = capsys.readouterr().out
    assert "rendered prompt (the first document" in shown and "Answer:\n--- end ---" in shown
    out = tmp_path / "run"
    argv = ["run", "--model", str(tiny_llama), "--tasks", str(folder / "probe.yaml"), "--limit", "1"]
    assert cli.main([*argv, "--output-dir", str(out), "--bootstrap", "10"]) == 0
    entry = json.loads((out / "results.json").read_text())["tasks"]["probe"]
    assert entry["n"] == 1 and entry["invented"] and isinstance(entry["warnings"], list)


def test_tasks_new_never_overwrites_and_checks_the_name(tmp_path: Path, capsys) -> None:
    assert cli.main(["tasks", "new", "mine", "--dir", str(tmp_path)]) == 0
    before = (tmp_path / "mine.jinja").read_text()
    (tmp_path / "other.jsonl").write_text("keep\n")
    assert cli.main(["tasks", "new", "mine", "--kind", "text", "--dir", str(tmp_path)]) == 2
    assert cli.main(["tasks", "new", "other", "--dir", str(tmp_path)]) == 2
    assert cli.main(["tasks", "new", "My-Task", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "never overwrites" in err[0] and "other.jsonl" in err[1] and "lower-case" in err[2]
    assert (tmp_path / "mine.jinja").read_text() == before and (
        tmp_path / "other.jsonl"
    ).read_text() == "keep\n"
    assert not (tmp_path / "other.yaml").exists()


def test_tasks_show_sources_and_reasons(tmp_path: Path, capsys) -> None:
    assert cli.main(["tasks", "show", "nonexist"]) == 2
    err = capsys.readouterr().err
    assert "--tasks" not in err and "nonexist" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["tasks", "show", "PubMedQA"]) == 2
    assert "did you mean 'pubmedqa'" in capsys.readouterr().err
    # A built-in task: its bundled invented row; with --data, the user's own row.
    assert cli.main(["tasks", "show", "ddi2013"]) == 0
    assert "demo" in capsys.readouterr().out
    row = json.loads((resources.demo_dir() / "ddi2013.jsonl").read_text().splitlines()[1])
    (tmp_path / "ddi.jsonl").write_text(json.dumps(row) + "\n")
    assert cli.main(["tasks", "show", "ddi2013", "--data", f"ddi2013={tmp_path / 'ddi.jsonl'}"]) == 0
    assert str(tmp_path / "ddi.jsonl") in capsys.readouterr().out
    # A user task whose data is on the hub: never fetched, and said why.
    hub = tmp_path / "hubtask.yaml"
    hub.write_text(
        "name: hubtask\ndataset: {source: someone/some-data}\ntemplate: '{{ q }}'\n"
        "answer: {type: text}\nmetrics: [rouge_l]\n"
    )
    assert cli.main(["tasks", "show", str(hub)]) == 0
    assert "never fetches" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("outputs", "cut", "expected"),
    [
        (["", " ", "\n", "", "x"], [False] * 5, ["4 of 5 outputs are empty"]),
        (["", "", "a", "b", "c"], [False] * 5, []),
        (["yes"] * 4 + ["no"], [False] * 5, ["4 of 5 outputs are the same text ('yes')"]),
        (["yes", "yes"], [False] * 2, []),  # two documents agreeing say nothing
        (["a", "b", "c", "d", "e"], [True] * 4 + [False], ["4 of 5 outputs were cut at the 16-token limit"]),
        (["a", "b", "c", "d", "e"], [True] * 3 + [False] * 2, []),
        ([], [], []),
    ],
)
def test_output_checks_table(outputs: list[str], cut: list[bool], expected: list[str]) -> None:
    found = output_checks.check(outputs, cut, "Q: x\nThe answer is:", ["\n\n"], False, 16)
    assert len(found) == len(expected)
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start) and "likely cause" in line and "\n" not in line


@pytest.mark.parametrize(
    ("stop", "chat", "has", "lacks"),
    [
        (["\n\n"], False, ["The answer is:'", "stop string", "--chat-template"], []),
        ([], True, ["The answer is:'"], ["stop string", "--chat-template"]),
    ],
)
def test_empty_output_causes(stop: list[str], chat: bool, has: list[str], lacks: list[str]) -> None:
    (line,) = output_checks.check([""] * 5, [False] * 5, "Q: x\nThe answer is:", stop, chat, 16)
    assert all(h in line for h in has) and not any(x in line for x in lacks)


def test_summary_shows_warnings_and_why_a_metric_is_na() -> None:
    entry = {
        "protocol": {"scoring": "generate"},
        "n": 5,
        "parse_failures": 0,
        "metrics": {"rouge_l": {"value": 0.1, "ci95": [0, 0.2]}, "bertscore_f1": {
            "value": None, "ci95": None, "unavailable": "BERTScore model 'bert' unavailable: offline"}},
        "warnings": ["5 of 5 outputs are empty; likely cause: x"],
    }  # fmt: skip
    text = summary.table({"tasks": {"t": entry}})
    assert "warning: t: 5 of 5 outputs are empty" in text
    assert "bertscore_f1=n/a (note below)" in text and "--bertscore-model PATH" in text


def mibe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "mibe", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_model_that_is_not_a_model_says_so_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "notamodel").mkdir()
    for model, said in (
        (tmp_path / "notamodel", "has no config.json"),
        (tmp_path / "config.json", "is a file"),
    ):
        result = mibe(
            "run", "--model", str(model), "--tasks", "ddi2013", "--demo", "--output-dir", str(tmp_path / "r")
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "not a causal LM mibe can load" in lines[0] and said in lines[0] and "smollm2-135m" in lines[0]


def test_messages_name_the_fix(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["run", "--model", "x", "--tasks", "PubMedQA"]) == 2
    assert "did you mean 'pubmedqa'" in capsys.readouterr().err
    assert cli.main(["run", "--model", "x", "--data-dir", str(empty)]) == 2
    assert "--demo" in capsys.readouterr().err
    assert cli.main(["data", "check", "--demo", "--tasks", "pubmedqa,mednli"]) == 0
    assert "2 of 2 tasks have usable data" in capsys.readouterr().out


def test_run_help_shows_help_and_defaults() -> None:
    text = mibe("run", "--help").stdout
    flat = " ".join(text.split())
    for flag, default in (
        ("--num-fewshot", "0"),
        ("--seed", "1234"),
        ("--scoring", "generate"),
        ("--protocol", "mibe"),
        ("--dtype", "auto"),
        ("--device", "auto"),
        ("--tasks", "all"),
    ):
        assert re.search(rf"{flag} \S+ .*?\(default: {default}\)", flat), flag
    assert "--max-new-tokens MAX_NEW_TOKENS cap on each answer" in flat  # fmt: skip


def test_run_files_follow_umask_unless_credentialed_and_lock_goes(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.runner import api
    from mibe.types import RunConfig

    old = os.umask(0o022)
    try:
        for tasks, mode in (("ddi2013", 0o644), ("ddi2013,mednli", 0o600)):
            out = tmp_path / tasks.replace(",", "-")
            config = RunConfig(model=str(tiny_llama), tasks=(tasks,), demo=True, limit=1, output_dir=str(out),
                               bootstrap=10, max_new_tokens=2)  # fmt: skip
            api.run(config, say=lambda line: None)
            for name in ("results.json", "run.json"):
                assert (out / name).stat().st_mode & 0o777 == mode, (tasks, name)
            assert not (out / ".lock").exists()
    finally:
        os.umask(old)


def test_evaluate_says_where_it_wrote(tiny_llama: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    import mibe

    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mibe"):
        results = mibe.evaluate(
            str(tiny_llama), tasks="ddi2013", demo=True, limit=1, bootstrap=10, max_new_tokens=2
        )
    assert results.run_dir.parent == Path("runs") and (tmp_path / results.run_dir / "results.json").is_file()
    assert json.loads((tmp_path / results.run_dir / "results.json").read_text()) == json.loads(
        json.dumps(results)
    )
    assert str(results.run_dir) in caplog.text
    small = {"demo": True, "limit": 1, "bootstrap": 10, "max_new_tokens": 2}
    chosen = mibe.evaluate(str(tiny_llama), tasks="ddi2013", output_dir=str(tmp_path / "mine"), **small)
    assert chosen.run_dir == tmp_path / "mine"


def test_hf_backend_reports_each_step(tiny_llama: Path) -> None:
    from mibe.backends.hf import HFBackend

    backend = HFBackend(str(tiny_llama))
    steps: list[int] = []
    backend.on_step = steps.append
    backend.generate([Request("a", "Question: is it?", 5), Request("b", "Another question here", 5)])
    assert 1 <= len(steps) <= 5 and set(steps) == {2}  # one call per step, two rows each
    steps.clear()
    backend.loglikelihood([Request("a", "Is it?", 0, (), (" yes", " no"))])
    assert steps and all(n > 0 for n in steps)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["a" * 300], "a task name is up to 64 lower-case letters"),
        (["pubmedqa"], "a built-in task has that name; pick another, e.g. my_pubmedqa"),
        (["fine", "--dir", "/proc/no/such"], "--dir /proc/no/such: cannot write"),
    ],
)
def test_tasks_new_odd_names_and_folders_are_one_line(argv: list[str], said: str, capsys) -> None:
    assert cli.main(["tasks", "new", *argv]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1


def test_tasks_new_never_writes_through_a_dangling_link(tmp_path: Path, capsys) -> None:
    (tmp_path / "probe.yaml").symlink_to(tmp_path / "elsewhere" / "x.yaml")
    assert cli.main(["tasks", "new", "probe", "--dir", str(tmp_path)]) == 2
    assert "never overwrites" in capsys.readouterr().err and not (tmp_path / "elsewhere").exists()


def test_progress_counts_whole_documents_one_bar_at_a_time_and_the_run_ends_with_next_steps(
    tiny_llama: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo run"
    done = subprocess.run(
        [sys.executable, "-m", "mibe", "run", "--model", str(tiny_llama), "--demo", "--tasks",
         "pubmedqa,mtsample", "--max-new-tokens", "4", "--bootstrap", "20", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stderr  # a pipe, as in a log file
    assert "\x1b[A" not in log  # no second bar moving the cursor up
    counts = re.findall(r"\| ([\d.]+)/(\d+) doc", log)
    assert counts and all("." not in n for n, _ in counts)  # whole documents only
    assert {total for _, total in counts} == {"3"} and ("3", "3") in counts
    assert re.search(r"\d+ tok", log)
    assert "Loading" not in log  # the model's loading bar is off under the task's bar
    tail = log[log.index("next:") :]
    assert f"mibe view '{out}' -o 'demo run.html'" in tail and f"mibe leaderboard '{out}'" in tail
    ids = [json.loads(line)["id"] for line in (out / "samples" / "mtsample.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["demo-mtsample-1", "demo-mtsample-2", "demo-mtsample-3"]
