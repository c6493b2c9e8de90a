"""Answer-order sensitivity (`--choice-permutations K`, docs/statistics.md): the options as a list the
template prints unchanged, cyclic rotations with the gold following its option, consistency and
position bias of a constructed model, refusals, resume per ordering, and the tiny model end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mibe import cli, data, prompts, tasks
from mibe.runner import api
from mibe.scoring import positions
from mibe.types import Doc, MibeError, RunConfig
from tests.support.paths import REPO
from tests.support.scripted import Scripted

DEMO = REPO / "tasks" / "demo"


def _docs(task: str) -> list[Doc]:
    loaded = tasks.load_task(tasks.builtin_paths()[task])
    return data.load_docs(loaded, data.Location("local", str(DEMO / f"{task}.jsonl"))).docs


def _texts(doc: Doc) -> list:
    return [o["text"] for o in doc.fields["options"]]


def test_the_options_list_prints_the_text_the_templates_always_got() -> None:
    pairs = [("A", "Vitamin D"), ("B", None), ("C", "Folate"), ("D", " ")]
    options = prompts.option_list(pairs)
    assert (
        type(options) is list and options[1] == {"letter": "B", "text": None} and options[3]["text"] is None
    )
    loop = "Options:\n" + prompts.OPTIONS_LOOP + "\nThe answer is"
    assert prompts.render(loop, {"options": options}) == "Options:\nA. Vitamin D\nC. Folate\n\nThe answer is"
    assert prompts.options_text(options) == prompts.options_block(pairs) == "A. Vitamin D\nC. Folate"
    # The documents' fingerprint is the one of the text: run folders scored before still resume.
    as_text = Doc("1", {"options": "A. Vitamin D\nC. Folate"}, "A")
    assert data.docs_fingerprint([Doc("1", {"options": options}, "A")]) == data.docs_fingerprint([as_text])


@pytest.mark.parametrize("task", ["medqa", "medmcqa"])
def test_the_hooks_hand_a_list_and_the_template_prints_todays_prompt(task: str) -> None:
    # The template before the options became a list printed `{{ options }}`, the hook's `A. text` lines.
    loaded = tasks.load_task(tasks.builtin_paths()[task])
    before = loaded.template.replace(prompts.OPTIONS_LOOP, "{{ options }}\n")
    assert "{% for o in options" in loaded.template and before != loaded.template
    rows = [json.loads(line) for line in (DEMO / f"{task}.jsonl").open()]
    if task == "medmcqa":  # a row whose option B is blank: no `B.` line, the letters keep their places
        rows.append({"id": "gap", "question": "Q", "opa": "x", "opb": " ", "opc": "y", "opd": "z", "cop": 3})
    for doc in data.load_docs(loaded, data.Location("local", str(_write(rows)))).docs:
        assert type(doc.fields["options"]) is list
        text = {
            **doc.fields,
            "options": prompts.options_block([tuple(o.values()) for o in doc.fields["options"]]),
        }
        assert prompts.doc_prompt(loaded.template, doc) == prompts.render(before, text)
        if doc.id == "gap":
            assert "A. x\nC. y\nD. z\n\nThe answer is" in prompts.doc_prompt(loaded.template, doc)


def _write(rows: list[dict]) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_older_folder_of_the_text_template_resumes(tmp_path: Path) -> None:
    # Folders scored when the template printed `{{ options }}` recorded its hash: the same prompts
    # byte for byte, so they resume (and a template that really changed still blocks the resume).
    from mibe.runfolder import resume

    out = tmp_path / "run"
    config = RunConfig(
        model="s", tasks=("medqa",), data={"medqa": str(DEMO / "medqa.jsonl")}, output_dir=str(out)
    )
    api.run(config, backend=Scripted(reply=_first_option))
    new = tasks.load_task(tasks.builtin_paths()["medqa"]).template_hash
    old = next(k for k, v in resume.RENDERED_ALIKE.items() if v == new)
    for name in ("run.json", "results.json"):
        (out / name).write_text((out / name).read_text().replace(new, old))
    again = Scripted(reply=_first_option)
    assert api.run(config, backend=again)["tasks"]["medqa"]["protocol"]["template_hash"] == new
    assert again.calls == 0
    (out / "run.json").write_text((out / "run.json").read_text().replace(new, "0" * 16))
    with pytest.raises(MibeError, match="different protocols"):
        api.run(config, backend=Scripted(reply=_first_option))


@pytest.mark.parametrize("task", ["medqa", "medmcqa"])
def test_rotations_move_the_gold_with_its_option(task: str) -> None:
    loaded = tasks.load_task(tasks.builtin_paths()[task])
    for doc in _docs(task):
        texts = _texts(doc)
        gold_text = texts["ABCDE".index(doc.gold)]
        assert prompts.permute(doc, 0, loaded.choices) is doc  # the identity: today's prompt
        for k in range(1, len(texts) + 1):
            moved = prompts.permute(doc, k, loaded.choices)
            shown = _texts(moved)
            assert shown == texts[k:] + texts[:k]
            assert shown["ABCDE".index(moved.gold)] == gold_text
            printed = prompts.doc_prompt(loaded.template, moved).splitlines()
            line = next(x for x in printed if x.startswith(moved.gold + "."))
            assert line == f"{moved.gold}. {gold_text}"


def test_a_data_files_option_list_rotates_too() -> None:
    doc = Doc("q", {"question": "?", "options": ["w", "x", "y", "z"]}, "C")
    moved = prompts.permute(doc, 3, ("A", "B", "C", "D"))
    assert moved.fields["options"] == ["z", "w", "x", "y"] and moved.gold == "D"


def _first_option(request) -> str:
    return " A"  # a model that always picks the first option listed


@pytest.mark.parametrize("k", [2, 3, 4])
def test_a_first_option_model_has_consistency_0_and_position_bias_1(tmp_path: Path, k: int) -> None:
    out = tmp_path / "run"
    config = RunConfig(
        model="scripted", tasks=("medqa",), data={"medqa": str(DEMO / "medqa.jsonl")}, output_dir=str(out),
        choice_permutations=k, bootstrap=200,
    )  # fmt: skip
    entry = api.run(config, backend=Scripted(reply=_first_option))["tasks"]["medqa"]
    assert entry["consistency"] == 0.0
    bias = entry["position_bias"]
    assert bias["1"]["chosen"] == 1.0 and all(bias[p]["chosen"] == 0.0 for p in ("2", "3", "4"))
    rows = [json.loads(line) for line in (out / "samples" / "medqa.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * k and {(r["permutation"], r["id"]) for r in rows} == {
        (p, d.id) for p in range(k) for d in _docs("medqa")
    }
    # Each ordering's accuracy: the documents whose gold it shows first; their mean is `value`.
    docs = _docs("medqa")
    wanted = [sum(prompts.permute(d, p, "ABCDE").gold == "A" for d in docs) / 3 for p in range(k)]
    accuracy = entry["metrics"]["accuracy"]
    assert accuracy["values"] == pytest.approx(wanted) and accuracy["value"] == pytest.approx(sum(wanted) / k)
    assert entry["protocol"]["choice_permutations"] == k and entry["choice_permutations"] == k
    gold_share = sum(r["gold"] == "A" for r in rows) / len(rows)
    assert bias["1"]["gold"] == pytest.approx(gold_share)


def test_positions_against_counts_by_hand() -> None:
    letters = ["A", "B", "C", "D"]
    rows = [  # one document under two orderings: option 2 chosen both times (shown at B, then at A)
        [{"prediction": "B", "gold": "C", "option_order": [0, 1, 2, 3]}],
        [{"prediction": "A", "gold": "B", "option_order": [1, 2, 3, 0]}],
    ]
    assert positions.consistency(rows, letters) == 1.0
    rows[1][0]["prediction"] = "missing"
    assert positions.consistency(rows, letters) == 0.0
    bias = positions.position_bias([rows[0][0], rows[1][0]], letters)
    assert bias["2"] == {"chosen": 1.0, "gold": 0.5} and bias["3"] == {"chosen": 0.0, "gold": 0.5}


def test_published_rows_and_draws_are_refused_in_one_line(tmp_path: Path, capsys) -> None:
    rows = tmp_path / "medqa.jsonl"
    row = {"id": "p1", "query": "Question? A. x B. y", "answer": "A", "choices": ["A", "B"], "gold": 0}
    rows.write_text(json.dumps(row) + "\n")
    config = RunConfig(model="scripted", tasks=("medqa",), data={"medqa": str(rows)}, choice_permutations=2)
    with pytest.raises(MibeError, match=r"medqa: --choice-permutations 2: document p1 is a Me-LLaMA row"):
        api.run(config, backend=Scripted(reply=_first_option))
    argv = ["run", "--model", "m", "--tasks", "medqa", "--num-fewshot", "1", "--fewshot-seeds", "1,2"]
    assert cli.main([*argv, "--choice-permutations", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--choice-permutations 2 with --fewshot-seeds" in err[0]
    config = RunConfig(model="scripted", tasks=("medqa",), data={"medqa": str(DEMO / "medqa.jsonl")})
    with pytest.raises(MibeError, match=r"has 4 options, so only 4 orderings differ"):
        api.run(
            RunConfig(**{**config.__dict__, "choice_permutations": 5}), backend=Scripted(reply=_first_option)
        )


def test_an_interrupted_run_resumes_per_ordering(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = RunConfig(
        model="scripted", tasks=("medmcqa",), data={"medmcqa": str(DEMO / "medmcqa.jsonl")},
        output_dir=str(out), choice_permutations=3, batch_size=2, bootstrap=100,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):  # ordering 0 done (two batches), ordering 1 half done
        api.run(config, backend=Scripted(reply=_first_option, fail_after=3))
    rows = [json.loads(line) for line in (out / "samples" / "medmcqa.jsonl").read_text().splitlines()]
    assert sorted(r["permutation"] for r in rows) == [0, 0, 0, 1, 1]
    again = Scripted(reply=_first_option)
    entry = api.run(config, backend=again)["tasks"]["medmcqa"]
    assert again.calls == 3  # the last document of ordering 1, then ordering 2 in two batches
    fresh = tmp_path / "fresh"
    whole = api.run(
        RunConfig(**{**config.__dict__, "output_dir": str(fresh)}), backend=Scripted(reply=_first_option)
    )
    assert entry == whole["tasks"]["medmcqa"] | {"task_file": entry["task_file"]}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["medqa", "medmcqa"])
def test_the_tiny_model_scores_three_orderings_end_to_end(
    tiny_llama: Path, tmp_path: Path, task: str
) -> None:
    out = tmp_path / task
    argv = ["run", "--model", str(tiny_llama), "--tasks", task, "--demo", "--choice-permutations", "3"]
    assert cli.main([*argv, "--max-new-tokens", "4", "--bootstrap", "100", "--output-dir", str(out)]) == 0
    entry = json.loads((out / "results.json").read_text())["tasks"][task]
    assert entry["choice_permutations"] == 3 and sorted(entry["permutations"]) == ["0", "1", "2"]
    assert len(entry["metrics"]["accuracy"]["values"]) == 3 and 0 <= entry["consistency"] <= 1
    rows = [json.loads(line) for line in (out / "samples" / f"{task}.jsonl").read_text().splitlines()]
    by_doc: dict[str, dict[int, str]] = {}
    for r in rows:
        by_doc.setdefault(r["id"], {})[r["permutation"]] = r["prompt"]
    for doc in _docs(task):  # ordering 0 is today's prompt; the others show the options rotated
        prompts_k = by_doc[doc.id]
        texts = _texts(doc)
        assert f"A. {texts[0]}" in prompts_k[0] and f"A. {texts[1]}" in prompts_k[1]
        assert re.search(rf"A\. {re.escape(texts[2])}", prompts_k[2])
    plain = tmp_path / "plain"
    argv = ["run", "--model", str(tiny_llama), "--tasks", task, "--demo", "--max-new-tokens", "4"]
    assert cli.main([*argv, "--bootstrap", "100", "--output-dir", str(plain)]) == 0
    once = {json.loads(line)["id"]: json.loads(line) for line in (plain / "samples" / f"{task}.jsonl").open()}
    assert all(once[r["id"]]["prompt"] == r["prompt"] for r in rows if r["permutation"] == 0)
    assert all(once[r["id"]]["raw_output"] == r["raw_output"] for r in rows if r["permutation"] == 0)


def test_compare_audit_and_rescore_read_a_run_of_several_orderings(tmp_path: Path) -> None:
    from mibe.boards import compare
    from mibe.runfolder import audit, rescore

    base = {"tasks": ("medqa",), "data": {"medqa": str(DEMO / "medqa.jsonl")}, "bootstrap": 100}
    perm, plain = tmp_path / "perm", tmp_path / "plain"
    done = api.run(
        RunConfig(model="s", output_dir=str(perm), choice_permutations=4, **base),
        backend=Scripted(reply=_first_option),
    )
    api.run(RunConfig(model="s", output_dir=str(plain), **base), backend=Scripted(reply=_first_option))
    task = compare.compare(perm, plain, n_boot=100)["tasks"][0]
    assert task["n_shared"] == 3 and task["draws"]["a"] == [f"ordering {k}" for k in range(4)]
    acc = next(m for m in task["metrics"] if m["metric"] == "accuracy")
    assert acc["a"] == pytest.approx(done["tasks"]["medqa"]["metrics"]["accuracy"]["value"])
    report = audit.audit(perm, [])
    strict = report["tasks"][0]["metrics"]["accuracy"]["strict"]
    assert strict == pytest.approx(done["tasks"]["medqa"]["metrics"]["accuracy"]["value"])
    # rescore re-parses every ordering's rows and recomputes the summaries: under the run's own
    # parser it gives the run's entry; under another, what a run with that parser gives.
    same = rescore.rescore(perm, "strict", [], tmp_path / "re")["tasks"]["medqa"]
    for key in ("metrics", "consistency", "position_bias", "parse_failures", "choice_permutations"):
        assert same[key] == done["tasks"]["medqa"][key], key
    assert same["permutations"] == done["tasks"]["medqa"]["permutations"]


@pytest.mark.parametrize("reply", [" B", " The answer is (C).", " D) because", " none"])
def test_a_rescored_permuted_run_equals_a_run_with_that_parser(tmp_path: Path, reply: str) -> None:
    from mibe.runfolder import rescore

    base = {"tasks": ("medmcqa",), "data": {"medmcqa": str(DEMO / "medmcqa.jsonl")}, "bootstrap": 100}
    config = RunConfig(
        model="s", output_dir=str(tmp_path / "strict"), choice_permutations=3, parser="strict", **base
    )
    api.run(config, backend=Scripted(reply=lambda request: reply))
    config = RunConfig(
        model="s", output_dir=str(tmp_path / "paper"), choice_permutations=3, parser="paper", **base
    )
    want = api.run(config, backend=Scripted(reply=lambda request: reply))["tasks"]["medmcqa"]
    got = rescore.rescore(tmp_path / "strict", "paper", [], tmp_path / "re")
    entry = got["tasks"]["medmcqa"]
    for key in ("metrics", "consistency", "position_bias", "parse_failures"):
        assert entry[key] == want[key], key
    assert {k: v["metrics"] for k, v in entry["permutations"].items()} == {
        k: v["metrics"] for k, v in want["permutations"].items()
    }


def test_shards_and_the_viewer_keep_orderings_apart(tmp_path: Path) -> None:
    from mibe.boards import view
    from mibe.runfolder import folder, writer

    rows = [{"id": "d1", "permutation": k, "option_order": [(i + k) % 4 for i in range(4)]} for k in range(3)]
    writer.append_rows(folder.rank_path(tmp_path, "medqa", 0), rows[:2])
    writer.append_rows(folder.rank_path(tmp_path, "medqa", 1), rows[1:])  # ordering 1 twice: kept once
    assert writer.fold_ranks(tmp_path, "medqa", private=False) == 3
    merged = folder.read_samples(folder.samples_path(tmp_path, "medqa"))
    assert sorted(r["permutation"] for r in merged) == [0, 1, 2]
    assert writer.done_ids(folder.samples_path(tmp_path, "medqa"), None, 2) == {"d1"}
    assert writer.done_ids(folder.samples_path(tmp_path, "medqa")) == set()  # a run without orderings
    names = [view.row_key(r) for r in merged]
    assert names[1] == "d1 (ordering 1: options BCDA shown as A, B, ...)" and len(set(names)) == 3


def test_a_users_letter_task_with_an_options_list(tmp_path: Path) -> None:
    rows = [
        {"id": f"q{i}", "q": f"question {i}", "options": ["w", "x", "y"], "a": "ABC"[i % 3]} for i in range(6)
    ]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    template = "{{ q }}\\n{% for o in options %}{{ 'ABC'[loop.index0] }}. {{ o }}\\n{% endfor %}Answer:"
    (tmp_path / "t.yaml").write_text(
        f'name: t\ndataset: {{source: rows.jsonl}}\ntemplate: "{template}"\ntarget: a\n'
        "answer: {type: letter, choices: [A, B, C]}\nmetrics: [accuracy]\n"
    )
    out = tmp_path / "run"
    config = RunConfig(
        model="s", tasks=(str(tmp_path / "t.yaml"),), output_dir=str(out), choice_permutations=3, bootstrap=50
    )
    entry = api.run(config, backend=Scripted(reply=_first_option))["tasks"]["t"]
    assert entry["consistency"] == 0.0 and entry["position_bias"]["1"]["chosen"] == 1.0
    prompts_of = {
        (r["permutation"], r["id"]): r["prompt"]
        for r in map(json.loads, (out / "samples" / "t.jsonl").open())
    }
    assert prompts_of[(0, "q0")] == "question 0\nA. w\nB. x\nC. y\nAnswer:"
    assert prompts_of[(2, "q0")] == "question 0\nA. y\nB. w\nC. x\nAnswer:"
    assert entry["metrics"]["accuracy"]["values"] == [pytest.approx(1 / 3)] * 3  # golds A, B, C: one each
