"""Readers of other harnesses' outputs: each fixture read into the rows it holds, and every damaged or
misdirected file refused in one line naming the file and the line."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from mibe.runfolder.harness_readers import (
    Imported,
    me_llama_row_order,
    read_import,
    read_lm_eval,
    read_me_llama,
)
from mibe.types import MibeError
from tests.support.paths import FIXTURES

IMPORTS = FIXTURES / "imports"
LM_GEN = "samples_pubmedqa_2024-06-01T10-20-30.123456.jsonl"
LM_MC = "samples_medqa_4options_2024-06-01T10-20-30.123456.jsonl"
LM_EARLY = "pretrained__invented-model_pubmedqa.jsonl"
ME_GEN = "PUBMEDQA_write_out_info.json"
ME_MC = "medqa_write_out_info.json"
READERS: dict[str, Callable[[list[Path]], Imported]] = {"lm-eval": read_lm_eval, "me-llama": read_me_llama}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (IMPORTS / name).read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("harness", "name", "scoring", "layout", "hint", "n"),
    [
        ("lm-eval", LM_GEN, "generate", "lm-eval-0.4-jsonl", "pubmedqa", 4),
        ("lm-eval", LM_MC, "loglikelihood", "lm-eval-0.4-jsonl", "medqa_4options", 3),
        ("lm-eval", LM_EARLY, "generate", "lm-eval-0.4-array", None, 2),
        ("me-llama", ME_GEN, "generate", "write-out-0.3", "PUBMEDQA", 3),
        ("me-llama", ME_MC, "loglikelihood", "write-out-0.3", "medqa", 3),
    ],
)
def test_each_fixture_reads_whole(harness, name, scoring, layout, hint, n):
    imported = READERS[harness]([IMPORTS / name])
    (source,) = imported.files
    assert (imported.harness, imported.scoring, source.scoring) == (harness, scoring, scoring)
    assert (source.layout, source.task_hint, source.n_rows, len(imported.rows)) == (layout, hint, n, n)
    assert source.sha256 == hashlib.sha256((IMPORTS / name).read_bytes()).hexdigest()
    assert [row.id for row in imported.rows] == [str(i) for i in range(n)]
    for row in imported.rows:
        assert (row.raw_output is None) == (scoring == "loglikelihood")
        assert (row.logprobs is None) == (scoring == "generate")


def test_lm_eval_generation_rows_are_the_prompt_sent_and_the_unfiltered_text():
    rows = read_lm_eval([IMPORTS / LM_GEN]).rows
    for row, written in zip(rows, lines(LM_GEN), strict=True):
        # the harness's own hash of the context it sent: the prompt is exactly that text
        assert sha256(row.prompt) == written["prompt_hash"]
        assert row.raw_output == written["resps"][0][0]
        assert row.gold == written["target"] and row.doc == written["doc"]
    assert (
        rows[0].raw_output
        == "yes. The walking group showed a lower resting heart rate.\n\nThe trial was small."
    )
    assert rows[3].raw_output == ""
    assert rows[0].where == f"{IMPORTS / LM_GEN}:1"


def test_lm_eval_choice_rows_hold_one_log_likelihood_per_option():
    rows = read_lm_eval([IMPORTS / LM_MC]).rows
    assert rows[1].logprobs == (-3.05, -2.71, -0.33, -4.18)
    assert rows[1].continuations == (" A", " B", " C", " D")
    assert rows[1].gold == "2"  # the file's own text: the gold option's index
    for row, written in zip(rows, lines(LM_MC), strict=True):
        assert sha256(row.prompt) == written["prompt_hash"]
        assert row.prompt.endswith("\nAnswer:")


def test_early_lm_eval_array_reads_like_the_later_lines():
    early = read_lm_eval([IMPORTS / LM_EARLY]).rows
    later = read_lm_eval([IMPORTS / LM_GEN]).rows[:2]
    assert [(r.id, r.prompt, r.raw_output, r.gold) for r in early] == [
        (r.id, r.prompt, r.raw_output, r.gold) for r in later
    ]
    assert early[1].where == f"{IMPORTS / LM_EARLY}:43"  # where the second element opens


def test_me_llama_generation_drops_the_until_its_evaluator_appends():
    imported = read_me_llama([IMPORTS / ME_GEN])
    written = json.loads((IMPORTS / ME_GEN).read_text(encoding="utf-8"))
    for row, entry in zip(imported.rows, written, strict=True):
        assert row.prompt + "until" == entry["prompt_0"]
        assert row.prompt.endswith("\nOUTPUT:")
        assert (row.raw_output, row.gold) == (entry["logit_0"], entry["truth"])
    assert "removed" in imported.files[0].notes[0]
    assert [r.where.rsplit(":", 1)[1] for r in imported.rows] == ["2", "12", "22"]


def test_me_llama_choice_rows_split_each_prompt_into_context_and_option():
    rows = read_me_llama([IMPORTS / ME_MC]).rows
    written = json.loads((IMPORTS / ME_MC).read_text(encoding="utf-8"))
    assert rows[1].logprobs == (-3.05, -2.71, -0.33, -4.18)
    assert rows[1].gold == 2
    assert rows[1].continuations == (" Retinol", " Ascorbic acid", " Calciferol", " Phylloquinone")
    for row, entry in zip(rows, written, strict=True):
        assert row.prompt.endswith("\nAnswer:")
        assert [row.prompt + c for c in row.continuations] == [entry[f"prompt_{i}"] for i in range(4)]


def write_out(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows, indent=4, ensure_ascii=False), encoding="utf8")
    return path


def letter_rows(context: str) -> list[dict]:
    """0.3 write_out rows whose options (letters) are the same for every document."""
    rows = []
    for doc_id in range(2):
        row: dict = {"doc_id": doc_id}
        row.update({f"prompt_{i}": f"{context}{doc_id}\nAnswer: {x}" for i, x in enumerate("ABCD")})
        row.update({f"logit_{i}": -1.0 - i for i in range(4)})
        rows.append({**row, "truth": 1, "acc": "0.0"})
    return rows


def test_given_choices_make_the_write_out_prompt_exact(tmp_path):
    # the guess would also keep "Answer:" here; the choices are what proves it
    path = write_out(tmp_path / "x_write_out_info.json", letter_rows("Q"))
    rows = read_me_llama([path], choices=["A", "B", "C", "D"]).rows
    assert [r.prompt for r in rows] == ["Q0\nAnswer:", "Q1\nAnswer:"]
    with pytest.raises(MibeError, match=rf"^{path}:2: prompt_0 does not end in ' B'; "):
        read_me_llama([path], choices=["B", "A", "C", "D"])


def test_a_write_out_prompt_without_the_until_tail_is_kept_as_written(tmp_path):
    entry = {"doc_id": 0, "prompt_0": "Say yes.\n", "logit_0": "yes", "truth": "yes", "acc": "1.0"}
    imported = read_me_llama([write_out(tmp_path / "t_write_out_info.json", [entry])])
    assert imported.rows[0].prompt == "Say yes.\n"
    assert "kept as written" in imported.files[0].notes[0]


def test_one_document_under_several_filters_is_one_row(tmp_path):
    path = tmp_path / "samples_gsm_2024-01-01T00-00-00.jsonl"
    rows = lines(LM_GEN)
    other = [{**row, "filter": "strict-match", "filtered_resps": ["x"]} for row in rows]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + other), encoding="utf-8")
    assert [r.id for r in read_lm_eval([path]).rows] == ["0", "1", "2", "3"]


def test_several_files_of_one_task_are_read_in_turn(tmp_path):
    rows = lines(LM_GEN)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]), encoding="utf-8")
    second.write_text("".join(json.dumps(r) + "\n" for r in rows[2:]), encoding="utf-8")
    imported = read_lm_eval([first, second])
    assert [r.id for r in imported.rows] == ["0", "1", "2", "3"]
    assert [f.n_rows for f in imported.files] == [2, 2]
    again = tmp_path / "c.jsonl"
    again.write_bytes(first.read_bytes())
    with pytest.raises(MibeError, match=rf"^{again}:1: doc_id 0 again \(first at {first}:1\); "):
        read_lm_eval([first, again])


def test_files_of_both_scorings_are_refused_together():
    with pytest.raises(MibeError, match=rf"^{IMPORTS / LM_MC}:1: log-likelihood rows, but .* generated-text"):
        read_lm_eval([IMPORTS / LM_GEN, IMPORTS / LM_MC])


def test_me_llama_doc_ids_follow_its_seeded_shuffle():
    docs = [f"row {i}" for i in range(25)]
    shuffled = list(docs)
    rnd = random.Random()
    rnd.seed(42)  # as both 0.3-era evaluators do before numbering the documents
    rnd.shuffle(shuffled)
    order = me_llama_row_order(len(docs))
    assert [docs[order[k]] for k in range(len(docs))] == shuffled
    assert sorted(order) == list(range(25))
    assert me_llama_row_order(10) == (7, 3, 2, 8, 5, 6, 9, 4, 0, 1)  # pinned: a Python change would show


def test_an_unknown_harness_is_named():
    with pytest.raises(MibeError, match=r"^harness 'helm': unknown; use one of lm-eval, me-llama$"):
        read_import("helm", [IMPORTS / LM_GEN])


# --- damaged and misdirected files ---------------------------------------------------------------------


def replace_line(number: int, edit: Callable[[dict], object]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        out = text.splitlines()
        out[number - 1] = json.dumps(edit(json.loads(out[number - 1])))
        return "\n".join(out) + "\n"

    return apply


def without(key: str) -> Callable[[dict], dict]:
    return lambda row: {k: v for k, v in row.items() if k != key}


def array_edit(index: int, edit: Callable[[dict], dict]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        rows = json.loads(text)
        rows[index] = edit(rows[index])
        return json.dumps(rows, indent=4, ensure_ascii=False)

    return apply


RESULTS = json.dumps({"results": {"pubmedqa": {"acc,none": 0.5}}, "versions": {"pubmedqa": 1}}, indent=2)
BAD = [
    # (case, harness, fixture, edit of its text, line, what the message says)
    ("empty", "lm-eval", LM_GEN, lambda t: "", 1, "empty file"),
    ("blank", "me-llama", ME_GEN, lambda t: "\n  \n", 1, "empty file"),
    ("empty array", "me-llama", ME_GEN, lambda t: "[]", 1, "no rows"),
    (
        "cut line",
        "lm-eval",
        LM_GEN,
        lambda t: t[: t.index("\n", t.index("\n") + 1) + 40],
        3,
        "not valid JSON",
    ),
    ("cut array", "me-llama", ME_MC, lambda t: t[: len(t) // 2], None, "not valid JSON"),
    ("no resps", "lm-eval", LM_GEN, replace_line(2, without("resps")), 2, "no 'resps' key"),
    ("no target", "lm-eval", LM_MC, replace_line(3, without("target")), 3, "no 'target' key"),
    ("no arguments", "lm-eval", LM_GEN, replace_line(4, without("arguments")), 4, "no 'arguments' key"),
    ("no doc_id", "lm-eval", LM_MC, replace_line(2, without("doc_id")), 2, "no 'doc_id' key"),
    ("no truth", "me-llama", ME_GEN, array_edit(1, without("truth")), 12, "no 'truth' key"),
    ("no logit_2", "me-llama", ME_MC, array_edit(2, without("logit_2")), 30, "no logit_2 key"),
    ("no answer", "me-llama", ME_GEN, array_edit(2, without("logit_0")), 22, "0 logit_<i>"),
    ("not an object", "lm-eval", LM_GEN, replace_line(2, lambda r: [r]), 2, "a JSON list, not an object"),
    (
        "unknown keys",
        "lm-eval",
        LM_GEN,
        replace_line(1, lambda r: {"id": 1}),
        1,
        "neither harness's row keys",
    ),
    ("write_out to lm-eval", "lm-eval", ME_GEN, lambda t: t, 2, "use `mibe import me-llama`"),
    ("log_samples to me-llama", "me-llama", LM_MC, lambda t: t, 1, "use `mibe import lm-eval`"),
    ("results file", "lm-eval", LM_GEN, lambda t: RESULTS, 1, "summary results file"),
    ("results file", "me-llama", ME_GEN, lambda t: RESULTS, 1, "summary results file"),
    (
        "mixed rows",
        "lm-eval",
        LM_MC,
        lambda t: t + json.dumps({**lines(LM_GEN)[0], "doc_id": 9}),
        4,
        "a generated-text row",
    ),
    (
        "two runs",
        "lm-eval",
        LM_GEN,
        replace_line(3, lambda r: {**r, "doc_id": 0, "resps": [["other"]]}),
        3,
        "doc_id 0 again with other outputs (first at line 1)",
    ),
    ("repeats", "lm-eval", LM_GEN, replace_line(2, lambda r: {**r, "resps": [["a", "b"]]}), 2, "repeats > 1"),
    (
        "word for logprob",
        "lm-eval",
        LM_MC,
        replace_line(2, lambda r: {**r, "resps": [[["high", "False"]]] * 4}),
        2,
        "resps[0] is 'high', not a number",
    ),
    (
        "positive logprob",
        "me-llama",
        ME_MC,
        array_edit(0, lambda r: {**r, "logit_1": 2.5}),
        2,
        "those are <= 0",
    ),
    (
        "rolling",
        "lm-eval",
        LM_GEN,
        replace_line(1, lambda r: {**r, "arguments": {"gen_args_0": {"arg_0": "text"}}}),
        1,
        "loglikelihood_rolling",
    ),
    (
        "one choice",
        "me-llama",
        ME_MC,
        lambda t: json.dumps([{"doc_id": 0, "prompt_0": "a b", "logit_0": -1.0, "truth": " b"}]),
        1,
        "one log-likelihood per document",
    ),
    (
        "prompts differ",
        "lm-eval",
        LM_MC,
        replace_line(
            1, lambda r: {**r, "arguments": {**r["arguments"], "gen_args_3": {"arg_0": "x", "arg_1": " D"}}}
        ),
        1,
        "scored after different prompts",
    ),
]


@pytest.mark.parametrize(
    ("harness", "name", "edit", "line", "what"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_damaged_files_are_one_line_naming_file_and_line(tmp_path, harness, name, edit, line, what):
    path = tmp_path / name
    path.write_text(edit((IMPORTS / name).read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(MibeError) as caught:
        READERS[harness]([path])
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{path}:{line if line is not None else ''}")
    assert what in message
    assert "; " in message  # what is wrong; what to do


@pytest.mark.parametrize("harness", ["lm-eval", "me-llama"])
def test_unreadable_paths_are_one_line(tmp_path, harness):
    cases = {
        tmp_path / "absent.jsonl": "no such file",
        tmp_path: "is a folder",
    }
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"doc_id": 0}\n\xff\xfe\n')
    cases[binary] = ":2: not UTF-8 text"
    for path, what in cases.items():
        with pytest.raises(MibeError, match=rf"^{path}[:;].*"):
            READERS[harness]([path])
        with pytest.raises(MibeError) as caught:
            READERS[harness]([path])
        assert what in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(MibeError, match="no file given"):
        READERS[harness]([])
