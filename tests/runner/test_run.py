"""`mibe run` end to end on a tiny LLaMA built here: all 12 tasks, results layout, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, f1_score

from mibe import resources
from mibe.runner import api, batches
from mibe.types import MibeError, RunConfig
from tests.support import demo, logs, margins, runfiles
from tests.support.paths import PUBLIC, REPO, needs_public_data

ALL = sorted(p.stem for p in resources.tasks_dir().glob("*.yaml"))
SINGLE_LABEL = ("pubmedqa", "medqa", "medmcqa", "ddi2013", "mtsample", "bionli", "mednli")
SAMPLE_KEYS = {"id", "prompt", "raw_output", "prediction", "gold", "score"}


def mibe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mibe.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def demo_results(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("demo") / "run"
    return demo.run(tiny_llama, out, batch_size=2, bootstrap=200), out


@pytest.mark.slow
def test_all_twelve_tasks_scored_with_contract_layout(demo_results: tuple[dict, Path]) -> None:
    results, out = demo_results
    assert sorted(results["tasks"]) == ALL and len(ALL) == 12
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["tasks"] == results["tasks"]
    assert json.loads((out / "run.json").read_text())["protocols"].keys() == results["tasks"].keys()
    for name, entry in results["tasks"].items():
        assert entry["invented"] is True, name
        assert entry["n"] == 3 and entry["rescored_from"] is None
        for key in ("max_new_tokens", "stop", "parser", "scoring", "shots", "template_hash", "data"):
            assert key in entry["protocol"], (name, key)
        for metric in entry["metrics"].values():
            assert set(metric) >= {"value", "ci95"}
        rows = runfiles.samples(out, name)
        assert len(rows) == 3 and all(set(r) >= SAMPLE_KEYS for r in rows)
    assert {p.name for p in (out / "samples").iterdir()} == {f"{t}.jsonl" for t in ALL}


@pytest.mark.slow
def test_single_label_metrics_equal_sklearn_on_the_samples(demo_results: tuple[dict, Path]) -> None:
    results, out = demo_results
    for name in SINGLE_LABEL:
        rows = runfiles.samples(out, name)
        golds, preds = [r["gold"] for r in rows], [r["prediction"] for r in rows]
        assert all(r["parse_failed"] for r in rows if r["prediction"] is None)  # no answer: null
        sk = ["\x00no answer" if p is None else p for p in preds]  # a label outside the gold set
        metrics = results["tasks"][name]["metrics"]
        assert metrics["accuracy"]["value"] == pytest.approx(accuracy_score(golds, sk), abs=1e-12)
        expected = f1_score(golds, sk, average="macro", labels=sorted(set(golds)), zero_division=0)
        assert metrics["macro_f1"]["value"] == pytest.approx(expected, abs=1e-12)
        assert metrics["missing_rate"]["value"] == pytest.approx(preds.count(None) / len(preds))


@pytest.mark.slow
def test_credentialed_samples_are_owner_only(demo_results: tuple[dict, Path]) -> None:
    _, out = demo_results
    for name in ("mednli", "emrqa", "mimic_cxr", "i2b2_2010"):
        assert (out / "samples" / f"{name}.jsonl").stat().st_mode & 0o077 == 0, name
    assert (out / "samples" / "pubmedqa.jsonl").stat().st_mode & 0o077 != 0


@pytest.mark.slow
def test_rerun_is_identical_and_refuses_other_config(
    tiny_llama: Path, demo_results: tuple[dict, Path], tmp_path: Path
) -> None:
    results, out = demo_results
    again = demo.run(tiny_llama, tmp_path / "again", batch_size=3, bootstrap=200)
    # Batch size changes no output, up to near-ties a batch's shape may tip either way: compare the
    # documents whose greedy path is decided (tests/support/margins.py), the numbers when all are.
    caps = {task: entry["protocol"]["max_new_tokens"] for task, entry in results["tasks"].items()}
    found = margins.greedy_margins(tiny_llama, out, caps)
    keep = margins.unambiguous(found)
    print(margins.report("batch size 2 against 3", found, keep))
    agreement = margins.agreement(out, tmp_path / "again", keep)
    assert all(same == n and raw == n for n, same, raw in agreement.values()), agreement
    if len(keep) == len(found):
        assert again["tasks"] == results["tasks"]
    with pytest.raises(MibeError, match="different config"):
        demo.run(tiny_llama, out, batch_size=2, bootstrap=200, seed=7)
    resumed = demo.run(tiny_llama, out, batch_size=2, bootstrap=200)  # complete: nothing re-run
    assert resumed["tasks"] == results["tasks"]


@pytest.mark.slow
def test_sigkill_mid_task_then_resume_matches_uninterrupted(tiny_llama: Path, tmp_path: Path) -> None:
    args = [
        "run",
        "--model",
        str(tiny_llama),
        "--tasks",
        "pubmed_sum,pubmedqa",
        "--demo",
        "--batch-size",
        "1",
    ]
    whole = mibe(*args, "--output-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mibe.cli", *args, "--output-dir", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    written = out / "samples" / "pubmed_sum.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (written.exists() and written.read_text().count("\n") >= 1):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = written.read_text().count("\n")
    assert 1 <= done_before < 3, "the kill should land mid-task"
    resumed = mibe(*args, "--output-dir", str(out))
    assert resumed.returncode == 0, resumed.stderr
    first, second = runfiles.results(tmp_path / "whole"), runfiles.results(out)
    assert second["tasks"] == first["tasks"]
    ids = [json.loads(line)["id"] for line in written.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 3


@pytest.mark.slow
def test_user_task_file_anywhere(tiny_llama: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    rows = [
        {"id": str(i), "transcription": f"Patient note {i} about the heart.", "medical_specialty": label}
        for i, label in enumerate(["Cardiology", "Neurology", "Surgery", "Cardiology"])
    ]
    (tmp_path / "data" / "notes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tmp_path / "my_specialty.yaml"
    task.write_text(
        "name: my_specialty\n"
        "dataset: {source: data/notes.jsonl, split: test}\n"
        'template: "Which specialty wrote this note?\\nINPUT: {{ transcription }}\\nOUTPUT:"\n'
        "target: medical_specialty\n"
        "answer: {type: choice, choices: [Surgery, Cardiology, Neurology]}\n"
        "metrics: [accuracy, macro_f1]\n"
    )
    result = mibe(
        "run", "--model", str(tiny_llama), "--tasks", str(task), "--output-dir", str(tmp_path / "r")
    )
    assert result.returncode == 0, result.stderr
    entry = json.loads((tmp_path / "r" / "results.json").read_text())["tasks"]["my_specialty"]
    assert entry["n"] == 4 and set(entry["metrics"]) == {"accuracy", "macro_f1"}
    first = json.loads((tmp_path / "r" / "samples" / "my_specialty.jsonl").read_text().splitlines()[0])
    assert "Which specialty wrote this note?\nINPUT: Patient note" in first["prompt"]  # in its chat template


def test_credentialed_task_without_data_one_line_exit_2(tiny_llama: Path, tmp_path: Path) -> None:
    result = mibe("run", "--model", str(tiny_llama), "--tasks", "mednli", "--output-dir", str(tmp_path / "x"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "physionet" in lines[0].lower() and "--data mednli=PATH" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_all_skips_tasks_without_data_and_succeeds(tiny_llama: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ddi2013.jsonl").write_text((resources.demo_dir() / "ddi2013.jsonl").read_text())
    out = tmp_path / "r"
    result = mibe(
        "run", "--model", str(tiny_llama), "--tasks", "all", "--data-dir", str(data), "--output-dir", str(out)
    )
    assert result.returncode == 0, result.stderr
    written = json.loads((out / "results.json").read_text())
    assert list(written["tasks"]) == ["ddi2013"]
    assert set(written["skipped"]) == set(ALL) - {"ddi2013"}
    assert "physionet" in written["skipped"]["mimic_cxr"].lower()


def test_dry_run_loads_no_model(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.backends.hf import HFBackend

    backend = HFBackend(str(tiny_llama))
    lines: list[str] = []
    config = RunConfig(model=str(tiny_llama), tasks=("pubmedqa", "hoc"), demo=True, dry_run=True)
    with logs.collected(lines):
        api.run(config, backend=backend)
    assert backend._model is None
    # after the protocol lines (mibe/runner/opening.py): one data line per task, then the planning table
    data_lines = [line for line in lines if "documents (" in line]
    assert len(data_lines) == 2 and "3 documents" in data_lines[0] and "prompt tokens" in data_lines[0]
    assert lines.index(data_lines[1]) == len(lines) - 2
    table = lines[-1].splitlines()
    assert table[0].split()[:3] == ["task", "documents", "requests"]
    rows = {line.split()[0]: line.split()[1:] for line in table[2:] if not line.startswith("memory")}
    assert rows["pubmedqa"][:2] == ["3", "3"] and rows["total"][:2] == ["6", "6"]
    # the memory estimate: the tiny model's exact parameter count (counted here on loaded weights)
    from transformers import AutoModelForCausalLM

    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_llama).parameters())
    memory = [line for line in table if line.startswith("memory: weights")]
    assert memory and f"({params:,} parameters at " in memory[0], memory
    assert not Path("runs").exists() or not any(Path("runs").glob("tiny*"))


def test_loglikelihood_scores_equal_full_forward(tiny_llama: Path, tmp_path: Path) -> None:
    import torch

    from mibe.backends.hf import HFBackend

    backend = HFBackend(str(tiny_llama), dtype="float32")
    out = demo.run(tiny_llama, tmp_path / "ll", ("medqa", "pubmedqa"), backend, scoring="loglikelihood")
    assert out["tasks"]["medqa"]["protocol"]["scoring"] == "loglikelihood"
    row = runfiles.samples(tmp_path / "ll", "pubmedqa")[0]
    model = backend.model
    for choice, logprob in zip(["yes", "no", "maybe"], row["logprobs"], strict=True):
        ctx = backend.tokenize(row["prompt"])
        whole = backend.tokenize(row["prompt"] + " " + choice)
        with torch.no_grad():
            logits = model(torch.tensor([whole])).logits[0].log_softmax(-1)
        expected = sum(float(logits[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))
        assert logprob == pytest.approx(expected, abs=1e-4)
    assert row["prediction"] == ["yes", "no", "maybe"][row["logprobs"].index(max(row["logprobs"]))]


def test_fewshot_is_seeded_and_never_the_scored_document(tiny_llama: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        demo.run(tiny_llama, tmp_path / name, ("ddi2013",), num_fewshot=2, max_new_tokens=2)
        runs.append(runfiles.samples(tmp_path / name, "ddi2013"))
    assert [r["shots"] for r in runs[0]] == [r["shots"] for r in runs[1]]
    for row in runs[0]:
        assert len(row["shots"]) == 2 and row["id"] not in row["shots"]
        assert row["prompt"].count("OUTPUT:") == 3


def test_chat_template_wraps_prompt(tiny_llama: Path, tmp_path: Path) -> None:
    options = {"chat_template": True, "system_prompt": "Be brief.", "max_new_tokens": 2}
    out = demo.run(tiny_llama, tmp_path / "c", ("pubmedqa",), **options)
    assert out["tasks"]["pubmedqa"]["protocol"]["chat_template"] is not None
    row = runfiles.samples(tmp_path / "c", "pubmedqa")[0]
    assert row["prompt"].startswith("<|system|>\nBe brief.\n<|user|>\nAs an expert doctor")
    assert row["prompt"].endswith("<|assistant|>\n")


@pytest.mark.slow
def test_paper_protocol_uses_256_tokens_no_stop_paper_parser(tiny_llama: Path, tmp_path: Path) -> None:
    out = demo.run(tiny_llama, tmp_path / "p", ("medqa",), protocol="paper", limit=1)
    protocol = out["tasks"]["medqa"]["protocol"]
    assert (protocol["max_new_tokens"], protocol["stop"], protocol["parser"]) == (256, [], "paper")


@pytest.mark.slow
@needs_public_data()
@pytest.mark.shared
def test_public_samples_limit_50_metrics_equal_sklearn(tiny_llama: Path, tmp_path: Path) -> None:
    tasks = "pubmedqa,medqa,medmcqa,ddi2013,hoc,mtsample"
    out = tmp_path / "public"
    result = mibe(
        "run",
        "--model",
        str(tiny_llama),
        "--tasks",
        tasks,
        "--data-dir",
        str(PUBLIC),
        "--limit",
        "50",
        "--max-new-tokens",
        "8",
        "--chat-template",
        "none",
        "--output-dir",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    written = json.loads((out / "results.json").read_text())
    for name in tasks.split(","):
        entry = written["tasks"][name]
        assert entry["n"] == 50 and entry["partial"] is True and entry["invented"] is False
        rows = [json.loads(x) for x in (out / "samples" / f"{name}.jsonl").read_text().splitlines()]
        # No answer (None) is a label no gold holds, as mibe's metrics count it (docs/scoring-rules.md).
        golds = [r["gold"] for r in rows]
        preds = ["(no answer)" if r["prediction"] is None else r["prediction"] for r in rows]
        if name == "hoc":
            from sklearn.preprocessing import MultiLabelBinarizer

            labels = written["tasks"]["hoc"]["per_class"] or None
            binarizer = MultiLabelBinarizer(classes=list(_hoc_labels()))
            expected = f1_score(
                binarizer.fit_transform(golds), binarizer.transform(preds), average="macro", zero_division=0
            )
            assert entry["metrics"]["macro_f1"]["value"] == pytest.approx(expected, abs=1e-12), labels
            continue
        assert entry["metrics"]["accuracy"]["value"] == pytest.approx(accuracy_score(golds, preds), abs=1e-12)
        expected = f1_score(golds, preds, average="macro", labels=sorted(set(golds)), zero_division=0)
        assert entry["metrics"]["macro_f1"]["value"] == pytest.approx(expected, abs=1e-12)
    # mtsample transcriptions outgrow the tiny model's 1024 tokens: shortened inside the document.
    assert written["tasks"]["mtsample"]["truncated"] > 0
    row = json.loads((out / "samples" / "mtsample.jsonl").read_text().splitlines()[0])
    assert row["prompt"].lstrip().startswith("TASK: The task is to determine the medical specialty")
    assert row["prompt"].endswith("OUTPUT:\n")


def _hoc_labels() -> tuple[str, ...]:
    from mibe.tasks import builtin_paths, load_task

    return load_task(builtin_paths()["hoc"]).choices


def test_cli_start_up_does_not_import_torch() -> None:
    code = "import sys; from mibe import cli; cli.main(['tasks', 'list']); assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "pubmedqa" in result.stdout


@pytest.mark.slow
def test_lora_adapter_changes_outputs_and_loads_from_either_flag(tiny_llama: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)  # a real, non-zero update so the adapter must change logits
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    common = dict(tasks=("pubmedqa",), demo=True, scoring="loglikelihood")
    plain = api.run(RunConfig(model=str(tiny_llama), output_dir=str(tmp_path / "a"), **common))
    flagged = api.run(
        RunConfig(model=str(tiny_llama), adapter=str(adapter), output_dir=str(tmp_path / "b"), **common),
    )
    folder_only = api.run(RunConfig(model=str(adapter), output_dir=str(tmp_path / "c"), **common))
    assert flagged["model"]["adapter"] == str(adapter) and folder_only["model"]["adapter"] == str(adapter)

    def logprobs(run: str) -> list:
        rows = (tmp_path / run / "samples" / "pubmedqa.jsonl").read_text().splitlines()
        return [value for x in rows for value in json.loads(x)["logprobs"]]

    assert logprobs("b") == pytest.approx(logprobs("c"), abs=1e-5)
    assert logprobs("a") != pytest.approx(logprobs("b"), abs=1e-3)
    assert plain["model"]["adapter"] is None


@pytest.mark.parametrize(
    ("costs", "start", "size", "budget", "rows"),
    [
        ([100] * 20, 0, 8, None, 8),  # no budget (vLLM, endpoints): --batch-size requests
        ([100] * 5, 0, 8, None, 5),  # the last batch takes what is left
        ([100] * 20, 0, 8, 800, 8),  # the longest prompts: --batch-size of them
        ([100] * 8 + [50] * 20, 8, 8, 800, 16),  # half as long: twice as many
        ([100] * 8 + [1] * 200, 8, 8, 800, 64),  # never more than 8 times --batch-size
        ([900, 100], 0, 8, 800, 1),  # one prompt over the budget still runs, alone
        ([100] * 8 + [30] * 3, 8, 8, 800, 3),  # the budget allows 26; 3 are left
    ],
)
def test_batch_rows_keeps_the_token_budget(costs, start, size, budget, rows) -> None:
    assert batches.batch_rows(costs, start, size, budget) == rows


@pytest.mark.slow
def test_token_budget_batches_grow_for_short_prompts_and_change_no_result(
    tiny_llama: Path, tmp_path: Path
) -> None:
    from mibe.backends.hf import HFBackend

    real = HFBackend(str(tiny_llama))
    sizes: list[int] = []

    class Counting:  # the real backend, counting the documents in each call
        def __getattr__(self, name: str):
            return getattr(real, name)

        def loglikelihood(self, requests):
            sizes.append(len(requests))
            return real.loglikelihood(requests)

    words = [400, 390, 100, 95, 90, 85, 80, 20, 20, 20, 20, 20, 20, 20, 20, 20]
    rows = [{"id": str(i), "note": " ".join(["heart"] * n), "label": "yes"} for i, n in enumerate(words)]
    (tmp_path / "notes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tmp_path / "budget.yaml"
    task.write_text(
        "name: budget\ndataset: {source: notes.jsonl, split: test}\n"
        'template: "{{ note }}\\nAnswer:"\ntarget: label\n'
        "answer: {type: choice, choices: ['yes', 'no', maybe]}\nmetrics: [accuracy]\n"
    )
    common = dict(model=str(tiny_llama), tasks=(str(task),), scoring="loglikelihood", batch_size=2)
    # device "cuda" turns the token budget on; the model itself stays on the CPU here.
    grown = api.run(RunConfig(**common, device="cuda", output_dir=str(tmp_path / "g")), backend=Counting())
    assert sizes[0] == 2 and max(sizes) > 2 and sum(sizes) == len(words)
    sizes.clear()
    fixed = api.run(RunConfig(**common, output_dir=str(tmp_path / "f")), backend=Counting())
    assert set(sizes) == {2}
    # Calibration reads the log-probs themselves, which batch shapes move in the last float digits.
    calibrated = [r["tasks"]["budget"].pop("calibration") for r in (grown, fixed)]
    assert calibrated[0]["ece"]["value"] == pytest.approx(calibrated[1]["ece"]["value"], abs=1e-5)
    assert calibrated[0]["brier"]["value"] == pytest.approx(calibrated[1]["brier"]["value"], abs=1e-5)
    # Two batch shapes: a choice whose two best log-probs are nearly tied may go either way, so the
    # predictions compared are the decided documents' (tests/support/margins.py), the numbers when
    # every document is decided.
    decided = margins.choice_margins(tmp_path / "f")
    keep = margins.unambiguous(decided)
    print(margins.report("token budget", decided, keep))
    agreement = margins.agreement(tmp_path / "g", tmp_path / "f", keep)
    assert all(same == n for n, same, _ in agreement.values()), agreement
    if len(keep) == len(decided):
        assert grown["tasks"] == fixed["tasks"]
    read = [
        [json.loads(x) for x in (tmp_path / d / "samples" / "budget.jsonl").read_text().splitlines()]
        for d in "gf"
    ]
    by_id = [{r["id"]: r["logprobs"] for r in run} for run in read]
    for doc, logprobs in by_id[0].items():
        assert logprobs == pytest.approx(by_id[1][doc], abs=1e-4)


def test_batched_loglikelihoods_equal_one_full_forward_per_choice(tiny_llama: Path) -> None:
    """Contexts of different lengths in one batch, choices of one and of several tokens."""
    import torch

    from mibe.backends.hf import HFBackend
    from mibe.types import Request

    backend = HFBackend(str(tiny_llama), dtype="float32")
    notes = ["The patient has chest pain.", "Follow-up visit " * 30, "Knee surgery was done " * 9]
    choices = (" Surgery", " Cardiovascular / Pulmonary", " A", " Neurology")
    requests = [Request(str(i), f"{n}\nAnswer:", 0, (), choices) for i, n in enumerate(notes)]
    got = backend.loglikelihood(requests)
    lengths = {len(c) for _, conts in backend.tokenize_with_choices(requests) for c in conts}
    assert min(lengths) == 1 and max(lengths) > 2
    for request, values in zip(requests, got, strict=True):
        ctx, conts = backend.tokenize_with_choices([request])[0]
        for cont, value in zip(conts, values, strict=True):
            whole = ctx + cont
            with torch.no_grad():
                logp = backend.model(torch.tensor([whole])).logits[0].log_softmax(-1)
            expected = sum(float(logp[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))
            assert value == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("task", "options", "passes"),
    [
        ("medqa", {"choice_permutations": 3}, 3),
        ("pubmedqa", {"num_fewshot": 1, "fewshot_seeds": (1, 2)}, 2),
        ("medqa", {"num_fewshot": 1, "fewshot_seeds": (1, 2, 3)}, 3),
    ],
)
def test_dry_run_counts_every_draw_and_ordering(
    tiny_llama: Path, task: str, options: dict, passes: int
) -> None:
    """--dry-run plans what the run sends: each document once per few-shot draw and per option ordering,
    so requests and prompt tokens are the single pass's, times the passes (counted here pass by pass)."""
    from mibe.backends.hf import HFBackend

    backend = HFBackend(str(tiny_llama))
    lines: list[str] = []
    config = RunConfig(model=str(tiny_llama), tasks=(task,), demo=True, dry_run=True, **options)
    with logs.collected(lines):
        api.run(config, backend=backend)
    (line,) = [x for x in lines if "documents (" in x]
    docs = int(line.split(" documents (")[0].rsplit(" ", 1)[1])
    assert f"requests {docs * passes} ({passes} passes" in line
    table = lines[-1].splitlines()
    row = next(x.split() for x in table if x.startswith(task))
    assert row[1:3] == [str(docs), str(docs * passes)], row
    # one pass without the draws and orderings: the documents once each
    single = RunConfig(model=str(tiny_llama), tasks=(task,), demo=True, dry_run=True)
    said: list[str] = []
    with logs.collected(said):
        api.run(single, backend=backend)
    (one,) = [x for x in said if "documents (" in x]
    assert f"requests {docs};" in one + ";" and "passes" not in one
