"""`mibe train sft` and `mibe train task` for real on the tiny LLaMA, then `mibe run` on what they
wrote: LoRA adapters, merged weights, the chat template, lineage, and the contamination guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe.commands import train as train_cli
from mibe.runner import api
from mibe.training import provenance
from mibe.types import MibeError, RunConfig
from tests.support.paths import REPO

pytestmark = pytest.mark.slow  # trains LoRA adapters on the tiny LLaMA

EXAMPLES = REPO / "training" / "examples"

CONVERSATIONS = [
    ("What does a beta blocker do to heart rate?", "It lowers it."),
    ("Name a side effect of a diuretic.", "Frequent urination."),
    ("What is a placebo?", "A dummy treatment."),
    ("What does LDL stand for?", "Low-density lipoprotein."),
]
ALPACA = [
    ("Give the opposite word.", "hypertension", "hypotension"),
    ("Answer yes or no.", "Is aspirin a drug?", "yes"),
]


def write_rows(path: Path) -> Path:
    rows = [
        {
            "id": f"c{i}",
            "conversations": [{"from": "human", "value": q}, {"from": "agent", "value": a}],
            "text": q,
        }
        for i, (q, a) in enumerate(CONVERSATIONS)
    ]
    rows += [{"instruction": i, "input": x, "output": o} for i, x, o in ALPACA]
    rows.append({"conversations": [{"from": "human", "value": "a question nobody answered"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def doc(folder: Path) -> dict:
    return json.loads((folder / provenance.FILE).read_text())


def score(model: Path, task: str, out: Path, **options: object) -> dict:
    config = RunConfig(
        model=str(model), tasks=(task,), demo=True, output_dir=str(out), bootstrap=50, **options
    )
    return api.run(config)


@pytest.fixture(scope="module")
def chain(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tiny LLaMA -> 2 pre-training steps -> LoRA SFT merged: (pre-trained, sft) folders."""
    root = tmp_path_factory.mktemp("chain")
    pre, sft = root / "pre", root / "sft"
    train_cli.main(
        ["pretrain", "--config", str(EXAMPLES / "tiny-pretrain.yaml"), "--model", str(tiny_llama),
         "--output-dir", str(pre), "--max-steps", "2", "--set", "held_out=0",
         "--set", f"cache_dir={root / 'cache'}"]
    )  # fmt: skip
    train_cli.main(
        ["sft", "--config", str(EXAMPLES / "tiny-sft.yaml"), "--model", str(pre), "--output-dir", str(sft),
         "--data", str(write_rows(root / "rows.jsonl")), "--merge", "--set", "learning_rate=5e-3",
         "--set", "batch_size=2", "--set", "log_every=1", "--set", f"cache_dir={root / 'cache'}"]
    )  # fmt: skip
    return pre, sft


def test_sft_trains_a_lora_adapter_on_both_row_kinds(chain: tuple[Path, Path]) -> None:
    _, sft = chain
    record = doc(sft)
    data = record["data"]
    assert data["rows"] == 6 and data["skipped_rows"] == 1 and "no agent/gpt turn" in data["first_problem"]
    assert data["train_rows"] == 6 and 0 < data["response_tokens"] < data["train_tokens"]
    assert record["recipe"]["resolved"]["lora"]["r"] == 8 and record["hyperparameters"]["epochs"] == 3
    assert record["progress"]["steps"] == 9  # 6 rows, batch 2, 3 epochs
    losses = [
        row["loss"]
        for row in map(json.loads, (sft / "metrics.jsonl").read_text().splitlines())
        if "loss" in row
    ]
    assert losses[-1] < losses[0], losses


def test_sft_records_its_chat_template(chain: tuple[Path, Path], tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    _, sft = chain
    used = AutoTokenizer.from_pretrained(sft).chat_template
    assert used == AutoTokenizer.from_pretrained(tiny_llama).chat_template and used
    assert doc(sft)["chat_template"]["source"] == "tokenizer"
    assert (sft / "adapter" / provenance.FILE).is_file()


def test_merge_saves_full_weights_equal_to_base_plus_adapter(chain: tuple[Path, Path]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    pre, sft = chain
    assert (sft / "config.json").is_file() and (sft / "model.safetensors").is_file()
    assert (sft / "adapter" / "adapter_config.json").is_file() and not (sft / "adapter_config.json").exists()
    assert json.loads((sft / "adapter" / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ] == str(pre)
    ids = torch.tensor([[1, 50, 60, 70, 80]])
    merged = AutoModelForCausalLM.from_pretrained(sft).eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(pre), str(sft / "adapter")
    ).eval()
    base = AutoModelForCausalLM.from_pretrained(pre).eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)
        assert not torch.allclose(
            merged(ids).logits, base(ids).logits, atol=1e-4
        )  # the adapter learned something


def test_mibe_run_scores_merged_and_adapter_checkpoints_with_their_lineage(
    chain: tuple[Path, Path], tmp_path: Path
) -> None:
    pre, sft = chain
    for model in (sft, sft / "adapter"):
        results = score(model, "mednli", tmp_path / model.name)
        assert results["tasks"]["mednli"]["n"] == 3
        # What a leaderboard reads: the provenance beside the model it scored.
        where = Path(results["model"]["adapter"] or results["model"]["path"])
        record = provenance.read(where)
        assert record is not None and provenance.lineage_line(record) == "tiny-llama0 -> pretrain -> sft"
        assert [step["base_model"] for step in record["lineage"]][1:] == [str(pre)]


TASK_ROWS = [
    ("Does a stretching class lower back pain in cashiers?", "yes"),
    ("Does a blue light filter change sleep onset in pilots?", "no"),
    ("Does chewing gum shorten ileus after bowel surgery?", "maybe"),
    ("Does a standing desk lower neck pain in typists?", "yes"),
    ("Does a night snack change morning glucose in bakers?", "no"),
    ("Does humming lower heart rate before exams?", "maybe"),
]


def pubmedqa_rows(path: Path) -> Path:
    rows = [
        {"pmid": f"t{i}", "QUESTION": q, "CONTEXTS": [f"An invented study of {q.lower()} Results were {a}."],
         "final_decision": a, "invented": True}
        for i, (q, a) in enumerate(TASK_ROWS)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_task_fine_tuning_is_ready_for_mibe_run(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "task"
    # Bare prompts, as the task checkpoint (trained without a template) is scored below.
    before = score(tiny_llama, "pubmedqa", tmp_path / "before", chat_template="none")["tasks"]["pubmedqa"]
    assert before["parse_failures"] == 3  # a random tiny model answers nothing usable
    rows = pubmedqa_rows(tmp_path / "train.jsonl")
    with monkeypatch.context() as inside:
        inside.chdir(tiny_llama.parent)  # the base named relative to where the command runs
        train_cli.main(
            ["task", "pubmedqa", "--config", str(EXAMPLES / "tiny-task.yaml"), "--model", tiny_llama.name,
             "--output-dir", str(out), "--data", str(rows)]
        )  # fmt: skip
    record = doc(out)
    assert record["data"]["task"] == "pubmedqa" and record["data"]["documents"] == 6
    # A LoRA adapter folder whose base `mibe run --model` finds from anywhere.
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == record["base_model"] == str(tiny_llama.resolve())
    after = score(out, "pubmedqa", tmp_path / "after")
    entry = after["tasks"]["pubmedqa"]
    assert entry["protocol"]["template_hash"] == record["data"]["template_hash"]
    # Trained on `prompt + " " + label + EOS`, the model now answers with a label and stops.
    assert entry["parse_failures"] == 0
    samples = [
        json.loads(line)
        for line in (tmp_path / "after" / "samples" / "pubmedqa.jsonl").read_text().splitlines()
    ]
    assert all(s["raw_output"].strip() in ("yes", "no", "maybe") for s in samples), [
        s["raw_output"] for s in samples
    ]


def test_training_on_evaluation_documents_is_refused_unless_allowed(tiny_llama: Path, tmp_path: Path) -> None:
    demo = REPO / "tasks" / "demo" / "pubmedqa.jsonl"
    args = ["task", "pubmedqa", "--config", str(EXAMPLES / "tiny-task.yaml"), "--model", str(tiny_llama)]
    args += ["--output-dir", str(tmp_path / "leak"), "--data", str(demo)]
    with pytest.raises(MibeError) as err:
        train_cli.main(args)
    message = str(err.value)
    assert message.startswith(
        "contamination guard: 3 of 3 rows repeat evaluation documents (3 by question + answer;"
    )
    assert "pubmedqa: 3 rows touch 3 documents" in message and "--allow-contamination" in message
    assert not (tmp_path / "leak").exists()  # refused before anything was written
    train_cli.main([*args, "--allow-contamination", "--max-steps", "1"])
    record = doc(tmp_path / "leak")
    assert record["contamination"]["allowed"] is True
    assert record["contamination"]["leaks"] == {"pubmedqa": {"rows": 3, "documents": 3}}
    assert record["lineage"][-1]["contaminated"] == ["pubmedqa"]
