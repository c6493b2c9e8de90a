"""The one run-folder writer (mibe/runfolder/writer.py): every kind of run folder (run, rescore, judge,
import) is written through it and through nothing else; its rules (lock, links, --overwrite, caches,
juries, resume of an import) hold for every command. Scripted backends and a loopback jury; no model
is loaded."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from mibe import cli
from mibe.runfolder import writer
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support import judging
from tests.support.loopback import JSONHandler, serving
from tests.support.paths import FIXTURES, REPO
from tests.support.scripted import Scripted

PACKAGE = REPO / "mibe"
IMPORTS = FIXTURES / "imports"
LM_EVAL = IMPORTS / "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl"
NOTES = [
    {"id": f"d{i}", "text": f"note {i} on the heart and lungs", "answer": f"summary {i}"} for i in range(4)
]

# Modules that write files, none of them into a run folder: a task file (`mibe tasks new`), training
# checkpoints, board and plot files (-o, refused inside run folders), the bundled demo model's cache,
# a contamination scan's --state folder, the JSON Schemas written into docs/schemas/.
NOT_RUN_FOLDERS = {
    "taskfiles.py",
    "corpusscan.py",
    "runfolder/schemas.py",
    "commands/output.py",
    "boards/plot.py",
    "backends/embedded.py",
    *(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "training").rglob("*.py")),
}
WRITING_CALLS = {"write_text", "write_bytes", "mkdir", "unlink", "rmdir", "touch", "chmod", "symlink_to"}
WRITING_FUNCTIONS = {"replace", "rename", "remove", "unlink", "makedirs", "open", "chmod", "truncate"}


def _writes(tree: ast.AST) -> list[str]:
    """File-writing calls: Path methods, os.* and shutil.*, tempfile.mkstemp, open() for writing."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        at = 0 if isinstance(func, ast.Attribute) else 1  # Path.open(mode) / open(file, mode)
        modes = [a.value for a in node.args[at : at + 1] if isinstance(a, ast.Constant)]
        modes += [
            k.value.value for k in node.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)
        ]
        writing_mode = any(isinstance(m, str) and set(m) & set("wax+") for m in modes)
        if isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if func.attr in WRITING_CALLS or (owner == "os" and func.attr in WRITING_FUNCTIONS):
                found.append(f"{node.lineno}: .{func.attr}()")
            elif owner in ("shutil", "tempfile") and func.attr != "TemporaryFile":
                found.append(f"{node.lineno}: {owner}.{func.attr}()")
            elif func.attr == "open" and (
                writing_mode or any(isinstance(m, str) and "w" in m for m in modes)
            ):
                found.append(f"{node.lineno}: .open({modes[0]!r})")
        elif isinstance(func, ast.Name) and func.id == "open" and writing_mode:
            found.append(f"{node.lineno}: open(..., {modes[0]!r})")
    return found


def test_only_the_writer_writes_files_of_a_run_folder() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(PACKAGE))
        if name == "runfolder/writer.py" or name in NOT_RUN_FOLDERS:
            continue
        found = _writes(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[name] = found
    assert not offenders, offenders
    assert _writes(ast.parse((PACKAGE / "runfolder" / "writer.py").read_text())), "the walker sees nothing"


def test_the_walker_sees_each_kind_of_write() -> None:
    code = "p.write_text('x')\nos.replace(a, b)\nopen(p, 'a')\np.open('w')\nshutil.rmtree(p)\nopen(p)\n"
    assert [line.split(":")[0] for line in _writes(ast.parse(code))] == ["1", "2", "3", "4", "5"]


# ------------------------------------------------------------------------------------ the jury server


class _Jury(JSONHandler):
    """An OpenAI-compatible judge: model `a` gives 4 and 2, model `b` 2 and 5; counts its calls."""

    calls: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self._reply({"data": [{"id": "a"}, {"id": "b"}]})

    def do_POST(self) -> None:
        model = self._body()["model"]
        type(self).calls.append(model)
        text = "faithfulness: 4\nconcision: 2" if model == "a" else "faithfulness: 2\nconcision: 5"
        self._reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


@pytest.fixture
def jury() -> Iterator[str]:
    _Jury.calls = []
    with serving(_Jury) as url:
        yield url


def _workspace(tmp_path: Path) -> Path:
    return judging.task_file(tmp_path, "notes_sum", NOTES)


def _run(task_file: Path, out: Path, **options: object) -> dict:
    config = RunConfig(
        model="scripted", tasks=(str(task_file),), output_dir=str(out), bootstrap=20, **options
    )
    return api.run(config, backend=Scripted(reply=lambda r: "summary of the note"))


def _judge(run: Path, out: Path, *specs: str, extra: tuple[str, ...] = ()) -> int:
    argv = ["judge", str(run), *[x for s in specs for x in ("--judge", s)], "--output-dir", str(out)]
    return cli.main([*argv, *extra])


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _files(folder: Path) -> set[Path]:
    return {p.resolve() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------ one writer, all kinds


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> set[Path]:
    """Every path the writer's two primitives wrote (whole files and appended lines)."""
    seen: set[Path] = set()
    whole, append = writer.write_text_atomic, writer.append_rows

    def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
        seen.add(Path(path).resolve())
        whole(path, text, mode)

    def append_rows(path: Path, rows: object, private: bool = False) -> None:
        seen.add(Path(path).resolve())
        append(path, rows, private)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "write_text_atomic", write_text_atomic)
    monkeypatch.setattr(writer, "append_rows", append_rows)
    return seen


def test_every_kind_of_run_folder_passes_through_the_one_writer(
    tmp_path: Path, jury: str, spied: set[Path]
) -> None:
    task = _workspace(tmp_path)
    folders = {"run": tmp_path / "run", "rescore": tmp_path / "rescored", "judge": tmp_path / "judged"}
    folders["import"] = tmp_path / "imported"
    _run(task, folders["run"], judge=(f"openai:{jury}#a",))
    assert (
        cli.main(
            ["rescore", str(folders["run"]), "--parser", "paper", "--output-dir", str(folders["rescore"])]
        )
        == 0
    )
    assert _judge(folders["run"], folders["judge"], f"openai:{jury}#b") == 0
    argv = ["import", "lm-eval", str(LM_EVAL), "--task", "pubmedqa", "--output-dir", str(folders["import"])]
    assert cli.main(argv) == 0
    for kind, folder in folders.items():
        files = _files(folder)
        assert {folder.resolve() / "run.json", folder.resolve() / "results.json"} <= files, kind
        assert files <= spied, (kind, sorted(map(str, files - spied)))
    assert any(p.parent.name == "judges" for p in _files(folders["run"]))  # the caches too


# ----------------------------------------------------------------------------------------- mibe import


def _import(out: Path, *extra: str, path: Path = LM_EVAL) -> int:
    return cli.main(["import", "lm-eval", str(path), "--task", "pubmedqa", "--output-dir", str(out), *extra])


def test_an_import_takes_the_lock_and_never_doubles_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "imp"
    with writer.locked(out):  # another process writing the folder: refused, not interleaved
        assert _import(out) == 2
    assert "another mibe process" in capsys.readouterr().err
    assert _import(out) == 0 and _import(out) == 0  # the same import again: each row once
    n = _results(out)["tasks"]["pubmedqa"]["n"]
    assert len((out / "samples" / "pubmedqa.jsonl").read_text().splitlines()) == n
    other = tmp_path / "other.jsonl"
    other.write_text("".join(LM_EVAL.read_text().splitlines(keepends=True)[:2]))
    assert _import(out, path=other) == 2  # another import into the folder: refused, not mixed
    assert "holds another run" in capsys.readouterr().err
    assert _import(out, "--overwrite", path=other) == 0
    assert len((out / "samples" / "pubmedqa.jsonl").read_text().splitlines()) == 2


def test_an_import_stopped_by_a_full_disk_resumes_with_the_same_command(tmp_path: Path) -> None:
    done = tmp_path / "done"
    assert _import(done) == 0
    limit = (done / "run.json").stat().st_size + 200  # run.json fits; the samples file does not
    assert (done / "samples" / "pubmedqa.jsonl").stat().st_size > limit
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "from mibe import cli; sys.exit(cli.main(sys.argv[1:]))"
    )
    out = tmp_path / "imp"
    args = ["import", "lm-eval", str(LM_EVAL), "--task", "pubmedqa", "--output-dir", str(out)]
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    full = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert full.returncode == 2 and "run the same command to resume" in full.stderr, full.stderr[-2000:]
    assert (out / "run.json").is_file() and not (out / "results.json").exists()
    assert cli.main(args) == 0  # what the message promised
    assert _results(out)["tasks"] == _results(done)["tasks"]
    assert (out / "samples" / "pubmedqa.jsonl").read_bytes() == (
        done / "samples" / "pubmedqa.jsonl"
    ).read_bytes()


# ------------------------------------------------------------------------------ links and --overwrite


def test_overwrite_clears_every_cache_and_nothing_else(tmp_path: Path, jury: str) -> None:
    task, out = _workspace(tmp_path), tmp_path / "run"
    _run(task, out, judge=(f"openai:{jury}#a",))
    (out / "extractions").mkdir()
    (out / "extractions" / "notes_sum.jsonl").write_text('{"id": "k", "value": "x"}\n')
    (out / "mine.txt").write_text("the user's own file")
    assert list((out / "judges").glob("*.jsonl"))
    _run(task, out, overwrite=True, seed=7)
    assert not (out / "judges").exists() and not (out / "extractions").exists()
    assert (out / "mine.txt").read_text() == "the user's own file"
    assert _results(out)["config"]["seed"] == 7


def test_judge_never_writes_through_a_link_in_its_folder(tmp_path: Path, jury: str) -> None:
    run, out, elsewhere = tmp_path / "run", tmp_path / "judged", tmp_path / "elsewhere"
    _run(_workspace(tmp_path), run)
    assert _judge(run, out, f"openai:{jury}#a") == 0
    (out / "samples").rename(elsewhere)
    (out / "samples").symlink_to(elsewhere)
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    with pytest.raises(MibeError, match=r"samples: is a link"):
        _judge_api(run, out, f"openai:{jury}#b")
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before


def test_a_link_above_the_folder_is_allowed(tmp_path: Path) -> None:
    real = tmp_path / "scratch"
    real.mkdir()
    (tmp_path / "home").symlink_to(real)  # clusters reach scratch space through links
    _run(_workspace(tmp_path), tmp_path / "home" / "run")
    assert (real / "run" / "results.json").is_file()


def _judge_api(run: Path, out: Path, spec: str) -> None:
    from mibe.runner import judge_calls, judge_run

    settings = judge_calls.Settings(judge_run.parse_specs([spec]), machine=RunConfig(model=""))
    judge_run.judge_run(run, out, settings)


# --------------------------------------------------------------------------------------------- juries


def test_a_second_jury_gets_its_own_columns_and_the_first_stays(tmp_path: Path, jury: str) -> None:
    run, out = tmp_path / "run", tmp_path / "judged"
    _run(_workspace(tmp_path), run)
    assert _judge(run, out, f"openai:{jury}#a") == 0
    first = _results(out)["tasks"]["notes_sum"]
    assert _judge(run, out, f"openai:{jury}#b") == 0
    entry = _results(out)["tasks"]["notes_sum"]
    later = entry["protocol"]["juries"]
    (other,) = later
    assert entry["protocol"]["jury"] == first["protocol"]["jury"] and other != first["protocol"]["jury"]["id"]
    assert entry["metrics"]["judge_faithfulness"] == first["metrics"]["judge_faithfulness"]
    assert entry["metrics"]["judge_faithfulness"]["value"] == 4
    assert entry["metrics"][f"judge_faithfulness@{other}"]["value"] == 2
    rows = [json.loads(x) for x in (out / "samples" / "notes_sum.jsonl").read_text().splitlines()]
    assert all(r["judge"]["concision"] == 2 and r[f"judge@{other}"]["concision"] == 5 for r in rows)
    assert _judge(run, out, f"openai:{jury}#a") == 0  # the first jury again: nothing sent, nothing moved
    assert _results(out)["tasks"]["notes_sum"]["metrics"] == entry["metrics"]
    assert _Jury.calls.count("a") == len(NOTES)


def test_a_changed_judge_under_an_existing_jury_is_refused(
    tmp_path: Path, jury: str, capsys: pytest.CaptureFixture
) -> None:
    run, out = tmp_path / "run", tmp_path / "judged"
    _run(_workspace(tmp_path), run)
    assert _judge(run, out, f"openai:{jury}#a") == 0
    before = (out / "results.json").read_bytes()
    assert _judge(run, out, f"openai:{jury}#a", extra=("--judge-max-new-tokens", "40")) == 2
    err = capsys.readouterr().err
    assert "scored differently" in err and "--overwrite" in err
    assert (out / "results.json").read_bytes() == before
    assert _judge(run, out, f"openai:{jury}#a", extra=("--judge-max-new-tokens", "40", "--overwrite")) == 0
    assert "juries" not in _results(out)["tasks"]["notes_sum"]["protocol"]


# --------------------------------------------------------------------------------------------- caches


def _forge(cache_dir: Path, score: int) -> None:
    for path in cache_dir.glob("*.jsonl"):
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        forged = [{"key": r["key"], "id": r["id"], "scores": dict.fromkeys(r["scores"], score)} for r in rows]
        path.write_text("".join(json.dumps(r) + "\n" for r in forged))


def test_a_received_judge_cache_is_never_read(tmp_path: Path, jury: str) -> None:
    run, received, new = tmp_path / "run", tmp_path / "received", tmp_path / "new"
    _run(_workspace(tmp_path), run, judge=(f"openai:{jury}#a",))
    _forge(run / "judges", 999)  # a folder someone sent: its cache says 999 on a 1-5 rubric
    run.rename(received)
    assert _judge(received, new, f"openai:{jury}#a") == 0
    assert _results(new)["tasks"]["notes_sum"]["metrics"]["judge_faithfulness"]["value"] == 4
    assert _Jury.calls.count("a") == 2 * len(NOTES)  # asked again, not read from the received cache


def test_a_cached_score_the_rubric_cannot_give_is_asked_again(tmp_path: Path, jury: str) -> None:
    run, out = tmp_path / "run", tmp_path / "judged"
    _run(_workspace(tmp_path), run)
    assert _judge(run, out, f"openai:{jury}#a") == 0
    _forge(out / "judges", 999)
    assert _judge(run, out, f"openai:{jury}#a") == 0
    assert _results(out)["tasks"]["notes_sum"]["metrics"]["judge_faithfulness"]["value"] == 4
    assert _Jury.calls.count("a") == 2 * len(NOTES)


def test_redaction_strips_the_judges_replies(tmp_path: Path, jury: str) -> None:
    task, out = _workspace(tmp_path), tmp_path / "run"
    judged = _run(task, out, judge=(f"openai:{jury}#a",))
    (cache,) = (out / "judges").glob("*.jsonl")
    assert all("reply" in json.loads(x) for x in cache.read_text().splitlines())
    again = _run(task, out, redact_samples=True)
    assert not any("reply" in json.loads(x) for x in cache.read_text().splitlines())
    assert not re.search("faithfulness: 4", cache.read_text())
    assert again["tasks"]["notes_sum"]["metrics"] == judged["tasks"]["notes_sum"]["metrics"]


# ------------------------------------------------------------------- every refusal before the first write


def _tiny(tiny_llama: Path, out: Path, *extra: str) -> int:
    argv = ["run", "--model", str(tiny_llama), "--tasks", "pubmedqa", "--demo", "--limit", "1"]
    return cli.main([*argv, "--max-new-tokens", "2", "--output-dir", str(out), *extra])


def test_a_chat_template_that_raises_is_refused_before_the_folder_is_written(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    template, out = tmp_path / "bad.jinja", tmp_path / "run"
    template.write_text("{{ raise_exception('this template takes no user turn') }}")
    assert _tiny(tiny_llama, out, "--chat-template", str(template)) == 2
    assert "this template takes no user turn" in capsys.readouterr().err
    assert not (out / "run.json").exists()
    assert _tiny(tiny_llama, out) == 0  # the corrected command is not refused as "another run"


def test_a_reasoning_budget_that_fills_the_context_is_refused_before_the_folder_is_written(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    assert _tiny(tiny_llama, out, "--reasoning-budget", "100000") == 2
    assert "leaves no room for a prompt" in capsys.readouterr().err
    assert not (out / "run.json").exists()
    assert _tiny(tiny_llama, out, "--reasoning-budget", "4") == 0
