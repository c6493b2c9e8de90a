"""`mibe tasks new` / `tasks show` and the task-file guide's tutorial run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mibe import cli, resources
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


@pytest.mark.slow
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
