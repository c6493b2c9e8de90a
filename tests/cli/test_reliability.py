"""Bad input, one row each: a clear line and a documented exit code (docs/reliability.md lists them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mibe import resources
from mibe.runfolder import folder
from mibe.runner import api
from mibe.types import MibeError, RunConfig
from tests.support import demo, margins, notes
from tests.support.notes import LABELS as TASK

ROWS = [{"id": str(i), "text": f"note {i}", "label": ["Surgery", "Cardiology"][i % 2]} for i in range(4)]


def workspace(tmp_path: Path, task: str = TASK, rows: list | bytes | str | None = None) -> Path:
    return notes.workspace(tmp_path, task, ROWS if rows is None else rows)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mibe.cli", *args], capture_output=True, text=True, timeout=600
    )


def bad_model_folder(tmp_path: Path, tiny: Path) -> list[str]:
    folder = tmp_path / "bert"
    from transformers import BertConfig

    BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        folder
    )
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, folder / name)
    return ["--model", str(folder)]


def mismatched_adapter(tmp_path: Path, tiny: Path) -> list[str]:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=96,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=3,
            head_dim=32,
        )
    )
    get_peft_model(other, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    return ["--model", str(tiny), "--adapter", str(tmp_path / "adapter")]


def without_chat_template(tmp_path: Path, tiny: Path) -> list[str]:
    folder = tmp_path / "plain"
    shutil.copytree(tiny, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return ["--model", str(folder)]


Build = Callable[[Path, Path], list[str]]


def task_text(text: str) -> Build:
    """The notes task written as `text`."""
    return lambda t, m: ["--tasks", str(workspace(t, text))]


def edited(old: str, new: str) -> Build:
    """The notes task with `old` replaced by `new` in its file."""
    return task_text(TASK.replace(old, new))


def data(rows: list | bytes | str) -> Build:
    """The notes task over a data file of `rows` (JSON lines, or the file's bytes or text)."""
    return lambda t, m: ["--tasks", str(workspace(t, rows=rows))]


# (id, how to build the arguments, expected exit code, text the one stderr line must hold)
Case = tuple[str, Build, int, str]
CASES: list[Case] = [
    ("malformed-yaml", task_text("name: [oops\n"), 2, "YAML error at line"),
    ("unknown-key", task_text(TASK + "metircs: []\n"), 2, "did you mean 'metrics'"),
    ("missing-template-variable", edited("{{ text }}", "{{ body }}"), 2, "'body' is undefined"),
    ("template-syntax", edited("{{ text }}", "{{ text"), 2, "template syntax error"),
    ("unknown-metric", edited("macro_f1", "macro_f2"), 2, "did you mean 'macro_f1'"),
    ("unknown-answer-type", edited("type: choice", "type: chioce"), 2, "answer.type"),
    ("yaml-boolean-labels", edited("Surgery, Cardiology", "yes, no"), 2, "quote yes/no"),
    (
        "unknown-parser",
        lambda t, m: ["--tasks", "pubmedqa", "--parser", "loose"],
        2,
        "invalid choice: 'loose'",
    ),
    ("empty-dataset", data([]), 2, "no usable documents (0 rows"),
    ("wrong-field-names", data([{"id": "1", "txt": "x"}]), 2, "no gold column 'label'"),
    ("invalid-json-line", data('{"id": 1}\n{oops\n'), 2, "notes.jsonl:2: not valid JSON"),
    ("non-utf8-data", data(b'{"id": "1", "text": "caf\xe9"}\n'), 2, "not UTF-8"),
    ("unknown-task", lambda t, m: ["--tasks", "pubmedq"], 2, "did you mean 'pubmedqa'"),
    ("credentialed-without-data", lambda t, m: ["--tasks", "mimic_cxr"], 2, "physionet"),
    (
        "missing-data-dir",
        lambda t, m: ["--tasks", "pubmedqa", "--data-dir", str(t / "nope")],
        2,
        "no such folder",
    ),
    ("bad-data-flag", lambda t, m: ["--tasks", "pubmedqa", "--data", "pubmedqa"], 2, "expected TASK=PATH"),
    (
        "missing-data-path",
        lambda t, m: ["--tasks", "pubmedqa", "--data", f"pubmedqa={t}/none.jsonl"],
        2,
        "no such file",
    ),
    (
        "zero-limit",
        lambda t, m: ["--tasks", "pubmedqa", "--demo", "--limit", "0"],
        2,
        "must be a positive integer",
    ),
    (
        "too-many-shots",
        lambda t, m: ["--tasks", "ddi2013", "--demo", "--num-fewshot", "5"],
        2,
        "only 2 other documents",
    ),
    (
        "missing-model-folder",
        lambda t, m: ["--model", str(t / "no-model"), "--tasks", "pubmedqa", "--demo"],
        2,
        "no such folder",
    ),
    (
        "not-a-causal-lm",
        lambda t, m: [*bad_model_folder(t, m), "--tasks", "pubmedqa", "--demo"],
        2,
        "not a causal LM",
    ),
    (
        "adapter-does-not-fit",
        lambda t, m: [*mismatched_adapter(t, m), "--tasks", "pubmedqa", "--demo"],
        2,
        "does not fit",
    ),
    (
        "unknown-hub-model",
        lambda t, m: ["--model", "no-such-org/no-such-model", "--tasks", "pubmedqa", "--demo"],
        2,
        "--model no-such-org/no-such-model",
    ),
    (
        "no-chat-template",
        # --chat-template auto finds none here (and applies none); a system turn then has nowhere to go
        lambda t, m: [*without_chat_template(t, m), "--tasks", "pubmedqa", "--demo", "--system-prompt", "Hi"],
        2,
        "--system-prompt: no chat template",
    ),
    (
        "unavailable-backend",
        lambda t, m: ["--tasks", "pubmedqa", "--demo", "--backend", "vllm"],
        2,
        "--backend vllm",
    ),
]


@pytest.mark.parametrize(("name", "build", "code", "text"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_code(
    name: str, build: Callable, code: int, text: str, tmp_path: Path, tiny_llama: Path
) -> None:
    args = build(tmp_path, tiny_llama)
    if "--model" not in args:
        args = ["--model", str(tiny_llama), *args]
    result = run_cli("run", *args, "--output-dir", str(tmp_path / "run"))
    lines = [
        line for line in result.stderr.splitlines() if line.startswith("mibe: error") or "usage:" in line
    ]
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert text.lower() in result.stderr.lower()
    assert sum(1 for line in result.stderr.splitlines() if line.startswith("mibe: error")) <= 1, lines
    assert not (tmp_path / "run" / "results.json").exists()  # nothing half-written


def test_gold_outside_choices_is_counted_not_scored(tmp_path: Path, tiny_llama: Path) -> None:
    rows = [*ROWS, {"id": "x", "text": "note x", "label": "Dermatology"}]
    task = workspace(tmp_path, rows=rows)
    out = api.run(
        RunConfig(model=str(tiny_llama), tasks=(str(task),), output_dir=str(tmp_path / "r")),
    )
    entry = out["tasks"]["notes"]
    assert entry["n"] == 4 and entry["n_skipped_rows"] == 1 and "Dermatology" in entry["first_skipped_row"]


def test_document_longer_than_context_is_shortened_and_counted(tmp_path: Path, tiny_llama: Path) -> None:
    rows = [{"id": "long", "text": "word " * 3000, "label": "Surgery"}, *ROWS]
    task = workspace(tmp_path, rows=rows)
    bare = RunConfig(
        model=str(tiny_llama), tasks=(str(task),), output_dir=str(tmp_path / "r"), chat_template="none"
    )
    out = api.run(bare)  # no chat template: the prompt's own ends are checked below
    assert out["tasks"]["notes"]["truncated"] == 1
    first = json.loads((tmp_path / "r" / "samples" / "notes.jsonl").read_text().splitlines()[0])
    assert first["id"] == "long" and first["truncated_tokens"] > 2000
    assert first["prompt"].startswith("Specialty of this note?\nINPUT: word") and first["prompt"].endswith(
        "OUTPUT:"
    )


def test_tokenizer_without_pad_token_still_batches(tiny_llama: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tiny_llama).pad_token is None
    out = api.run(
        RunConfig(
            model=str(tiny_llama),
            tasks=("pubmedqa",),
            demo=True,
            batch_size=3,
            output_dir=str(tmp_path / "r"),
        ),
    )
    assert out["tasks"]["pubmedqa"]["n"] == 3


class OutOfMemoryError(RuntimeError):
    """Named like torch's, raised by a fault-injecting wrapper around the real backend."""


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_matches(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.backends.hf import HFBackend

    real = HFBackend(str(tiny_llama))
    sizes: list[int] = []

    class Tight:  # the real backend, except that batches over 1 document run out of memory
        def __getattr__(self, name: str):
            return getattr(real, name)

        def generate(self, requests):
            sizes.append(len(requests))
            if len(requests) > 1:
                raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return real.generate(requests)

    config = RunConfig(model=str(tiny_llama), tasks=("pubmedqa",), demo=True, batch_size=4, max_new_tokens=6)
    tight = api.run(
        RunConfig(**{**config.__dict__, "output_dir": str(tmp_path / "t")}),
        backend=Tight(),
    )
    plain = api.run(RunConfig(**{**config.__dict__, "output_dir": str(tmp_path / "p")}), backend=real)
    # 3 documents (under --batch-size 4) run out of memory; then each batch holds one.
    assert sizes[:2] == [3, 1]
    # One batch of 3 against three of 1: compare the documents whose greedy path is decided (a
    # near-tie may go either way between batch shapes), and the numbers when every one is.
    keep = margins.unambiguous(margins.greedy_margins(tiny_llama, tmp_path / "p", 6))
    agreement = margins.agreement(tmp_path / "t", tmp_path / "p", keep)
    assert all(same == n and raw == n for n, same, raw in agreement.values()), agreement
    if len(keep) == plain["tasks"]["pubmedqa"]["n"]:
        assert tight["tasks"] == plain["tasks"]


@pytest.mark.slow
def test_disk_full_while_writing_is_one_line_and_resumes(tiny_llama: Path, tmp_path: Path) -> None:
    # A real write failure: the kernel refuses to grow files past RLIMIT_FSIZE (EFBIG, like ENOSPC).
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000)); "
        "from mibe import cli; sys.exit(cli.main(sys.argv[1:]))"
    )
    args = demo.run_argv(tiny_llama, tmp_path / "r", "--batch-size", "1")
    full = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)
    assert full.returncode == 2, full.stderr[-2000:]
    assert "cannot write (File too large)" in full.stderr and "Traceback" not in full.stderr
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = (tmp_path / "r" / "samples" / "pubmedqa.jsonl").read_text().splitlines()
    assert len(rows) == 3 and len({json.loads(r)["id"] for r in rows}) == 3


def test_second_process_on_one_folder_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.runfolder import writer

    with writer.locked(tmp_path / "r"):
        other = run_cli(*demo.run_argv(tiny_llama, tmp_path / "r"))
    assert other.returncode == 2 and "another mibe process" in other.stderr


def test_corrupt_results_json_on_resume(tiny_llama: Path, tmp_path: Path) -> None:
    config = RunConfig(
        model=str(tiny_llama),
        tasks=("pubmedqa",),
        demo=True,
        max_new_tokens=2,
        output_dir=str(tmp_path / "r"),
    )
    api.run(config)
    (tmp_path / "r" / "results.json").write_text("{ half")
    with pytest.raises(MibeError, match="not valid JSON; delete it or pass --overwrite"):
        api.run(config)
    assert api.run(RunConfig(**{**config.__dict__, "overwrite": True}))["tasks"]["pubmedqa"]["n"] == 3


def test_redact_samples_keeps_ids_labels_and_scores_only(tiny_llama: Path, tmp_path: Path) -> None:
    config = RunConfig(
        model=str(tiny_llama),
        tasks=("mednli",),
        demo=True,
        max_new_tokens=2,
        redact_samples=True,
        output_dir=str(tmp_path / "r"),
    )
    out = api.run(config)
    rows = [json.loads(x) for x in (tmp_path / "r" / "samples" / "mednli.jsonl").read_text().splitlines()]
    kept = set(folder.REDACTED_KEYS) | {"prediction", "gold", "redacted"}
    assert len(rows) == 3 and all(set(r) <= kept and "prompt" not in r for r in rows)
    assert out["tasks"]["mednli"]["metrics"]["accuracy"]["value"] is not None
    assert (tmp_path / "r" / "samples" / "mednli.jsonl").stat().st_mode & 0o077 == 0


def test_hooks_only_beside_the_task_file(tmp_path: Path) -> None:
    # A hook is the task file's same-stem .py: nothing else on disk is ever imported.
    from mibe import tasks

    task = tasks.load_task(workspace(tmp_path))
    assert task.hook is None
    (tmp_path / "notes.py").write_text("raise SystemExit('imported')\n")
    assert tasks.load_task(tmp_path / "notes.yaml").hook == tmp_path / "notes.py"
    assert all(p.hook is None or p.hook.parent == resources.tasks_dir() for p in tasks.resolve(["all"])[0])
