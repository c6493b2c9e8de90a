"""mibe.training's instruction rows: Me-LLaMA conversations and Alpaca rows become chat messages,
token ids carry labels on the responses only (-100 on every prompt token), and the contamination
guard finds evaluation documents in training text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mibe.training import conversations, guard
from mibe.training.conversations import IGNORE
from mibe.types import MibeError
from tests.support import logs
from tests.support.paths import REPO

SHIPPED = REPO / "training"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"conversations": [{"from": "human", "value": "Q?"}, {"from": "agent", "value": "A."}]},
            [("user", "Q?"), ("assistant", "A.")],
        ),
        (
            {
                "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}],
                "input": None,
            },
            [("user", "Q"), ("assistant", "A")],
        ),
        (
            {"messages": [{"role": r, "content": r[0].upper()} for r in ("system", "user", "assistant")]},
            [("system", "S"), ("user", "U"), ("assistant", "A")],
        ),
        (
            {"instruction": "Do it.", "input": "text", "output": "done"},
            [("user", "Do it.\n\ntext"), ("assistant", "done")],
        ),
        (
            {"instruction": "Do it.", "input": "", "output": "done", "conversations": None},
            [("user", "Do it."), ("assistant", "done")],
        ),
        # Dolly: the context follows the instruction; its category is not part of the conversation.
        (
            {"instruction": "Sum up.", "context": "A long text.", "response": "Short.", "category": "x"},
            [("user", "Sum up.\n\nA long text."), ("assistant", "Short.")],
        ),
        ({"instruction": "N.", "context": "", "response": "A."}, [("user", "N."), ("assistant", "A.")]),
        # ShareGPT: conversations with human/gpt turns and a system turn.
        (
            {"id": "x", "conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                                          {"from": "gpt", "value": "A"}]},
            [("system", "S"), ("user", "Q"), ("assistant", "A")],
        ),
    ],
)  # fmt: skip
def test_rows_become_messages(row: dict, expected: list) -> None:
    assert [(m["role"], m["content"]) for m in conversations.to_messages(row)] == expected


@pytest.mark.parametrize(
    ("row", "layout"),
    [
        ({"conversations": [], "messages": None}, "conversations"),
        ({"messages": []}, "messages"),
        ({"instruction": "i", "input": "", "output": "o"}, "alpaca"),
        ({"instruction": "i", "context": "", "response": "r"}, "dolly"),
        ({"instruction": "i", "context": "c"}, None),
    ],
)
def test_layouts_are_named(row: dict, layout: str | None) -> None:
    assert conversations.layout(row) == layout


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"text": "just text"},
            "expected conversations, messages, instruction/input/output .Alpaca. or "
            "instruction/context/response .Dolly. .has text.",
        ),
        ({"conversations": []}, "non-empty list"),
        ({"conversations": [{"from": "doctor", "value": "x"}]}, "unknown speaker 'doctor'"),
        ({"conversations": [{"from": "human", "value": "only a question"}]}, "no agent/gpt turn"),
        (
            {"conversations": [{"from": "agent", "value": "a"}, {"from": "human", "value": "q"}]},
            "opens with the agent",
        ),
        (
            {"conversations": [{"from": "human", "value": 3}, {"from": "agent", "value": "a"}]},
            "must be a string",
        ),
    ],
)
def test_bad_rows_say_why(row: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        conversations.to_messages(row)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def _render(tokenizer):
    def render(messages, add_generation_prompt):
        return tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    return render


def _trained_text(tokenizer, encoded: dict) -> str:
    return tokenizer.decode(
        [i for i, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label != IGNORE]
    )


@pytest.mark.slow
def test_loss_falls_on_responses_only(tokenizer) -> None:
    row = {
        "conversations": [
            {"from": "human", "value": "Is a fever dangerous?"},
            {"from": "agent", "value": "Mostly not."},
            {"from": "human", "value": "When to see a doctor?"},
            {"from": "agent", "value": "After three days."},
        ]
    }
    segments = conversations.chat_segments(conversations.to_messages(row), _render(tokenizer))
    encoded = conversations.tokenise(segments, tokenizer, max_length=512)
    assert encoded is not None and len(encoded["input_ids"]) == len(encoded["labels"])
    # Every trained token is an agent's answer (plus the template's newline and the EOS that ends it).
    assert _trained_text(tokenizer, encoded) == "Mostly not.\n</s>After three days.\n</s>"
    masked = tokenizer.decode(
        [i for i, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label == IGNORE]
    )
    assert "Is a fever dangerous?" in masked and "When to see a doctor?" in masked and "Mostly" not in masked
    assert encoded["input_ids"][0] == tokenizer.bos_token_id and encoded["labels"][0] == IGNORE
    # The prompt tokens are exactly what `mibe run --chat-template` sends before the first answer.
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is a fever dangerous?"}], tokenize=False, add_generation_prompt=True
    )
    first = encoded["labels"].index(next(label for label in encoded["labels"] if label != IGNORE))
    assert encoded["input_ids"][:first] == tokenizer(prompt).input_ids


def test_task_rows_train_on_the_answer_after_the_exact_prompt(tokenizer) -> None:
    prompt = "INPUT: the patient improved.\nOUTPUT:"
    encoded = conversations.tokenise(conversations.plain_segments(prompt, "positive"), tokenizer, 512)
    assert encoded is not None
    assert _trained_text(tokenizer, encoded) == " positive</s>"
    first = next(i for i, label in enumerate(encoded["labels"]) if label != IGNORE)
    assert encoded["input_ids"][:first] == tokenizer(prompt).input_ids  # as the HF backend encodes it


def test_truncation_that_leaves_no_response_drops_the_row(tokenizer) -> None:
    segments = conversations.plain_segments("word " * 50, "yes")
    assert conversations.tokenise(segments, tokenizer, max_length=10) is None
    kept = conversations.tokenise(segments, tokenizer, max_length=1000)
    answer = len(tokenizer(" yes", add_special_tokens=False).input_ids) + 1  # and the EOS
    assert kept is not None and sum(label != IGNORE for label in kept["labels"]) == answer


def test_the_shipped_default_template_is_prefix_stable(tokenizer) -> None:
    template = (SHIPPED / "chat_templates" / "default.jinja").read_text()

    def render(messages, gen):
        return tokenizer.apply_chat_template(
            list(messages), chat_template=template, tokenize=False, add_generation_prompt=gen
        )

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]
    segments = conversations.chat_segments(messages, render)
    assert segments == [("Be brief.\n\n### Human: Q\n### Assistant: ", False), ("A</s>\n", True)]
    encoded = conversations.tokenise(segments, tokenizer, 100)
    assert encoded is not None and _trained_text(tokenizer, encoded) == "A</s>\n"  # no second EOS


# --- contamination guard -------------------------------------------------------------------------

INSTRUCTION = "Read the note below and say which specialty wrote it, choosing from the list we give here."
NOTES = {
    "e1": (
        "The left knee was replaced under spinal anaesthesia without any complication at all today.",
        "Surgery",
    ),
    "e2": (
        "Echo shows a mildly reduced ejection fraction and a dilated left atrium in this patient.",
        "Cardiology",
    ),
    "e3": (
        "Headache with visual aura for two days and a normal neurological exam on admission here.",
        "Neurology",
    ),
}
EVAL_ROWS = [{"id": key, "note": note, "label": label} for key, (note, label) in NOTES.items()]
FIRST = f"{INSTRUCTION}\nINPUT: {EVAL_ROWS[0]['note']}\nOUTPUT:"


@pytest.fixture
def eval_index(tmp_path: Path) -> Any:
    from mibe import data, tasks

    (tmp_path / "spec.jsonl").write_text("".join(json.dumps(r) + "\n" for r in EVAL_ROWS))
    task_file = tmp_path / "spec.yaml"
    task_file.write_text(
        "name: spec\ndataset: {source: spec.jsonl}\n"
        f'template: "{INSTRUCTION}\\nINPUT: {{{{ note }}}}\\nOUTPUT:"\n'
        "target: label\nanswer: {type: choice, choices: [Surgery, Cardiology, Neurology]}\n"
        "metrics: [accuracy]\n"
    )
    task = tasks.load_task(task_file)
    return guard.build_index([task], {"spec": [data.Location("local", str(tmp_path / "spec.jsonl"))]}, 13)


@pytest.mark.parametrize(
    ("texts", "found"),
    [
        # The evaluation prompt itself with its answer, as a training row: the note (an exact line)
        # with its gold label in the next turn.
        ([FIRST, "Surgery"], {("spec/e1", "question + answer")}),
        # A document's text inside a longer sentence, re-cased and re-spaced: a 13-word run.
        (["In this case " + NOTES["e2"][0].upper().replace(" ", "  ").rstrip(".") + " and more follows."],
         {("spec/e2", "n-gram run")}),
        # The shared instruction alone is boilerplate, not a leak.
        ([INSTRUCTION + " INPUT: an unrelated note about sleep. OUTPUT:"], set()),
        # Twelve words of a document inside other text: below the 13-word run, and not a whole segment.
        (["Intro " + " ".join(EVAL_ROWS[2]["note"].split()[:12]) + " outro"], set()),
    ],
)  # fmt: skip
def test_guard_finds_exact_and_long_ngram_overlap(eval_index, texts, found) -> None:
    hits = guard.row_hits(texts, eval_index)
    assert {(f"{h.task}/{h.doc}", h.how) for h in hits} == found


def test_guard_refuses_leaks_unless_allowed(eval_index) -> None:
    hits = [
        (0, guard.row_hits([FIRST, "Surgery"], eval_index)),
        (4, guard.row_hits([NOTES["e2"][0]], eval_index)),
    ]
    result = guard.report(hits, 10, eval_index)
    assert result["contaminated_rows"] == 2 and result["flagged_rows"] == [1, 5]
    assert result["rows_by_evidence"] == {"question + answer": 1, "exact field": 1, "n-gram run": 0}
    assert result["leaks"] == {"spec": {"rows": 2, "documents": 2}}
    with pytest.raises(MibeError) as err:
        guard.enforce(result, "refuse")
    assert "2 of 10 rows repeat evaluation documents" in str(err.value)
    assert "--allow-contamination" in str(err.value) and "--drop-contaminated" in str(err.value)
    with logs.collected() as said:
        guard.enforce(result, "allow")
    assert "training anyway" in said[0]
    assert guard.outcome(result, "drop")["dropped_rows"] == [1, 5]
    assert guard.outcome(result, "allow")["allowed"] is True
