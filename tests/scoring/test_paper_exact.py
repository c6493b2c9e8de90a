"""Paper-exact against the authors' own code (BIDS-Xu-Lab/Me-LLaMA src/tasks/vital_measure.py): the
worked cases of the three deviations, each value derived by hand from their rules, scored the same by
every route: the scorers themselves, `mibe import me-llama` (+ `mibe rescore --parser paper`) and
`mibe run --protocol paper` through a loopback endpoint with canned outputs.

Their rules, as the values below apply them:
- i2b2: NER.process_results scores the raw output against doc["answer"] (html2bio, unstripped), while
  the evaluator's --write_out `truth` is doc_to_target(doc) = "\\nAnswer: " + doc["answer"].
- emrQA: NormQA, lower-case, punctuation out, one token per character; F1 = distinct shared characters
  over all characters.
- summaries: ROUGE-L F-measure of the output against doc["answer"].
- "missing" is a word like any other: no answer is out of band (None), never that text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mibe import cli
from mibe.scoring import kinds, metrics
from tests.support.loopback import JSONHandler, serving
from tests.support.runfiles import samples_by_id


def _span(cls: str, text: str) -> str:
    return f'<span class="{cls}">{text}</span>'


CABG = "He underwent " + _span("treatment", "CABG x3") + " in 2005 ."
VITALS = "Afebrile , " + _span("test", "vital signs") + " stable ."

# (gold = doc["answer"], output, paper (TP, predicted, gold), strict, mibe's paper value before the fix
# by the route that differed: "import" took the evaluator's truth "\nAnswer: " + gold as the gold,
# "native" read the word "missing" as no answer and stripped every output)
I2B2 = [
    # 1. a perfect output pairs every token: (1, 1, 1). Before, an import took "\nAnswer: " + gold as
    #    the gold, so the walk paired "He"/"Answer:" (a mismatch, both dropped) and every later token
    #    against the wrong neighbour: (0, 0, 0).
    pytest.param(CABG, CABG, (1, 1, 1), (1, 1, 1), (0, 0, 0), "import", id="perfect"),
    # 2. "Answer:" before the sentence: "Answer:"/"Afebrile" mismatch drops both, then every pair is
    #    shifted by one and the gold ends first: nothing pairs, (0, 0, 0). Before (wrong gold
    #    "Answer:"-prefixed too): every token paired, (1, 1, 1). Strict's window skips the prefix.
    pytest.param(VITALS, "Answer: " + VITALS, (0, 0, 0), (1, 1, 1), (1, 1, 1), "import", id="answer-prefix"),
    # 3. the word "missing" against a gold entity "missing": "missing"/"missing" pairs (O, B-problem),
    #    "." is left over: predicted 0, gold 1. Before, the word read as no answer: (0, 0, 0).
    pytest.param(
        _span("problem", "missing") + " .", "missing", (0, 0, 1), (0, 0, 1), (0, 0, 0), "native", id="missing"
    ),
    # 4. an open <span class="test"> holding two spaces: spaCy makes "  " a token (B-test); the gold's
    #    "chest  pain" is chest, " ", pain. Pairs: chest/chest (B-problem, B-problem), "  "/" "
    #    ("  " starts with " ": pair (B-test, I-problem), the prediction keeps " " as I-test), then
    #    " "/pain mismatch. Predicted chunks chest, test: 2; gold chunk chest+" ": 1; TP 0.
    #    Stripped (before), the open span is empty: chest pairs, then the walk ends: (1, 1, 1).
    pytest.param(
        _span("problem", "chest  pain") + " today .",
        _span("problem", "chest") + ' <span class="test">  ',
        (0, 2, 1),
        (0, 1, 1),
        (1, 1, 1),
        "native",
        id="open-span-two-spaces",
    ),
    # 5. an open <span class="problem"> holding "\n": chest/chest (B-treatment, B-problem), "\n"/"\n"
    #    (B-problem, I-problem): predicted treatment + problem = 2, gold problem(chest \n) = 1, TP 0.
    #    Stripped (before): only chest pairs: (0, 1, 1).
    pytest.param(
        _span("problem", "chest\npain") + " .",
        _span("treatment", "chest") + '<span class="problem">\n',
        (0, 2, 1),
        (0, 1, 1),
        (0, 1, 1),
        "native",
        id="open-span-newline",
    ),
]

# (gold, output, paper (EM, F1), strict (EM, F1), paper before the fix)
EMRQA = [
    # "missing" = m,i,s,s,i,n,g (7); "tylenol 3" = t,y,l,e,n,o,l,3 (8); shared {n}: 2·(1/7)(1/8)/(15/56)
    pytest.param("Tylenol #3", "missing", (0.0, 2 / 15), (0.0, 0.0), (0.0, 0.0), id="missing-output"),
    # a blank output against the word "missing": one side empty, 0 (before: both read as empty, 1)
    pytest.param("missing", "", (0.0, 0.0), (0.0, 0.0), (1.0, 1.0), id="blank-vs-missing-gold"),
    # "mis" (3) against "missing" (7): shared {m, i, s}: p = 1, r = 3/7, F1 = 0.6 (before 0)
    pytest.param("missing", "mis", (0.0, 0.6), (0.0, 0.0), (0.0, 0.0), id="mis"),
    # strict: tokens [missing] against [missing, pills]: common 1, p 1, r 1/2, F1 2/3.
    # paper: 7 characters against 12 (m,i,s,s,i,n,g,p,i,l,l,s), shared {m,i,s,n,g} = 5: F1 = 2·(5/7)(5/12)
    # /(5/7 + 5/12) = 10/19 (before: "missing" was no answer, 0)
    pytest.param("missing pills", "missing", (0.0, 10 / 19), (0.0, 2 / 3), (0.0, 0.0), id="missing-pills"),
]

# (gold, output, ROUGE-L under both parsers, before the fix)
TEXT = [
    # LCS "missing" = 1 token of the prediction's 1 and the gold's 6: 2·1·(1/6)/(1 + 1/6) = 2/7
    pytest.param("Prior study is missing for comparison.", "missing", 2 / 7, 0.0, id="missing-output"),
    pytest.param("missing", "missing", 1.0, 0.0, id="missing-both"),  # before: two empty texts, ROUGE-L 0
]


def _old(value: str) -> str | None:
    """What mibe read before the fix: the text "missing" as no answer (None, scored as empty)."""
    return None if value == "missing" else value


@pytest.mark.parametrize(("gold", "output", "paper", "strict", "before", "route"), I2B2)
def test_i2b2_worked_cases(
    gold: str, output: str, paper: tuple, strict: tuple, before: tuple, route: str
) -> None:
    for parser, expected in (("paper", paper), ("strict", strict)):
        value = kinds.parse(output, "entities", (), parser).value
        assert metrics.entity_counts(gold, value, parser) == expected, parser
    old_gold = "\nAnswer: " + gold if route == "import" else gold
    assert metrics.entity_counts(old_gold, _old(output.strip()), "paper") == before


@pytest.mark.parametrize(("gold", "output", "paper", "strict", "before"), EMRQA)
def test_emrqa_worked_cases(gold: str, output: str, paper: tuple, strict: tuple, before: tuple) -> None:
    for parser, expected in (("paper", paper), ("strict", strict)):
        value = kinds.parse(output, "span", (), parser).value
        assert metrics.span_scores(gold, value, parser) == pytest.approx(expected, abs=1e-12), parser
        assert kinds.doc_score("span", gold, value, parser) == pytest.approx(expected[1], abs=1e-12)
    assert metrics.span_scores(_old(gold), _old(output), "paper") == pytest.approx(before, abs=1e-12)


@pytest.mark.parametrize(("gold", "output", "rouge", "before"), TEXT)
def test_text_worked_cases(gold: str, output: str, rouge: float, before: float) -> None:
    for parser in ("paper", "strict"):
        value = kinds.parse(output, "text", (), parser).value
        assert value == "missing" or value == output
        assert kinds.doc_score("text", gold, value, parser) == pytest.approx(rouge, abs=1e-12)
    assert metrics.rouge_l(_old(gold), _old(output)) == pytest.approx(before, abs=1e-12)


def test_no_answer_is_none_and_scores_as_empty() -> None:
    assert kinds.parse("maybe so", "choice", ("yes", "no"), "strict").value is None
    assert kinds.parse("missing", "choice", ("yes", "no", "missing"), "strict").value == "missing"
    # None is what the paper saw as an empty output; the word is text
    assert metrics.span_scores("missing", None, "paper") == (0.0, 0.0)
    assert metrics.entity_counts(_span("problem", "missing") + " .", None, "paper") == (0, 0, 0)
    assert metrics.rouge_l("missing", None) == 0.0


# ---------------------------------------------------------------------------------------------------
# The same cases by every route: import (+ rescore) and a native run through a loopback endpoint.

TEXT_TASK = """name: cxr_words
description: Summarise a radiology report (a user's task with ROUGE-L only, so no BERT model is needed).
dataset: {source: cxr_words.jsonl, split: test}
template: "{{ query }}"
answer: {type: text}
metrics: [rouge_l]
"""
# task -> its cases (gold, output): the gold is doc["answer"]
ROUTED = {
    "i2b2_2010": [(p.values[0], p.values[1]) for p in I2B2],
    "emrqa": [(p.values[0], p.values[1]) for p in EMRQA],
    "cxr_words": [(p.values[0], p.values[1]) for p in TEXT],
}
KIND = {"i2b2_2010": "entities", "emrqa": "span", "cxr_words": "text"}
OUTPUTS: dict[str, str] = {}  # prompt -> canned output


def _query(task: str, k: int) -> str:
    return f"[{task} document {k}] Answer the request.\nINPUT: some note.\nOUTPUT:"


class _Canned(JSONHandler):
    def do_GET(self) -> None:
        self._reply({"data": [{"id": "canned", "max_model_len": 100000}]})

    def do_POST(self) -> None:
        self._reply({"choices": [{"index": 0, "text": OUTPUTS[self._body()["prompt"]]}]})


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run folders of every route: native, import --parser paper, import strict + rescore --parser paper."""
    base = tmp_path_factory.mktemp("exact")
    (base / "cxr_words.yaml").write_text(TEXT_TASK)
    spec = {"i2b2_2010": "i2b2_2010", "emrqa": "emrqa", "cxr_words": str(base / "cxr_words.yaml")}
    data = []
    for task, cases in ROUTED.items():
        docs = [{"id": str(k), "query": _query(task, k), "answer": gold} for k, (gold, _) in enumerate(cases)]
        (base / f"{task}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        written = [
            {
                "doc_id": k,
                "prompt_0": _query(task, k) + "until",
                "logit_0": output,
                # the evaluator writes doc_to_target(doc): "\nAnswer: " + answer for i2b2 (SequentialLabeling)
                "truth": ("\nAnswer: " if task == "i2b2_2010" else "") + gold,
            }
            for k, (gold, output) in enumerate(cases)
        ]
        (base / f"{task}_write_out_info.json").write_text(json.dumps(written, indent=4))
        OUTPUTS.update({_query(task, k): output for k, (_, output) in enumerate(cases)})
        if task != "cxr_words":
            data += ["--data", f"{task}={base / f'{task}.jsonl'}"]
    runs = {"native": base / "native"}
    with serving(_Canned) as url:
        argv = ["run", "--backend", "openai", "--base-url", url, "--model", "canned", "--protocol", "paper"]
        tasks = ",".join(spec.values())
        assert cli.main([*argv, "--tasks", tasks, *data, "--output-dir", str(runs["native"])]) == 0
    for task, name in spec.items():
        source = str(base / f"{task}_write_out_info.json")
        for parser in ("paper", "strict"):
            out = base / f"import-{parser}-{task}"
            argv = [
                "import",
                "me-llama",
                source,
                "--task",
                name,
                "--parser",
                parser,
                "--output-dir",
                str(out),
            ]
            assert cli.main(argv) == 0
            runs[f"import-{parser}-{task}"] = out
        again = base / f"rescore-{task}"
        assert (
            cli.main(
                [
                    "rescore",
                    str(runs[f"import-strict-{task}"]),
                    "--parser",
                    "paper",
                    "--output-dir",
                    str(again),
                ]
            )
            == 0
        )
        runs[f"rescore-{task}"] = again
    return runs


def _per_document(task: str, row: dict) -> tuple:
    """A document's values by the paper's rules, from what the run folder stored."""
    if KIND[task] == "entities":
        return metrics.entity_counts(row["gold"], row["prediction"], "paper"), row["score"]
    if KIND[task] == "span":
        return metrics.span_scores(row["gold"], row["prediction"], "paper"), row["score"]
    return (row["score"],)


EXPECTED = {
    "i2b2_2010": [p.values[2] for p in I2B2],
    "emrqa": [p.values[2] for p in EMRQA],
    "cxr_words": [p.values[2] for p in TEXT],
}


@pytest.mark.parametrize("task", sorted(ROUTED))
def test_every_route_gives_the_authors_per_document_values(routes: dict[str, Path], task: str) -> None:
    folders = {
        "native": routes["native"],
        "import": routes[f"import-paper-{task}"],
        "rescore": routes[f"rescore-{task}"],
    }
    seen = {}
    for route, run in folders.items():
        rows = samples_by_id(run, task)
        assert sorted(rows) == [str(k) for k in range(len(ROUTED[task]))], route
        for k, (gold, output) in enumerate(ROUTED[task]):
            row = rows[str(k)]
            assert row["gold"] == gold, route  # the import takes doc["answer"], not the evaluator's truth
            assert row["raw_output"] == output, route
            values = _per_document(task, row)
            expected = EXPECTED[task][k]
            assert values[0] == pytest.approx(expected, abs=1e-12), (route, k)
        results = json.loads((run / "results.json").read_text())["tasks"][task]
        assert results["protocol"]["parser"] == "paper"
        assert results["protocol"]["scorer_version"] == kinds.scorer_version(KIND[task], "paper")
        seen[route] = ({i: _per_document(task, r) for i, r in rows.items()}, results["metrics"])
    first = seen["native"]
    for route, (docs, scores) in seen.items():
        assert docs == first[0], route
        assert {m: v["value"] for m, v in scores.items()} == {m: v["value"] for m, v in first[1].items()}, (
            route
        )


def test_imports_record_the_importer_version(routes: dict[str, Path]) -> None:
    for task in ROUTED:
        protocol = json.loads((routes[f"import-paper-{task}"] / "results.json").read_text())["tasks"][task][
            "protocol"
        ]
        assert protocol["imported"]["importer_version"] == 2


def test_an_i2b2_truth_without_the_evaluators_prefix_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "i2b2_2010_write_out_info.json"
    bad.write_text(
        json.dumps([{"doc_id": 0, "prompt_0": "x until", "logit_0": CABG, "truth": CABG}], indent=4)
    )
    argv = ["import", "me-llama", str(bad), "--task", "i2b2_2010", "--output-dir", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "i2b2_2010_write_out_info.json:2: truth" in err[0] and "\\nAnswer: " in err[0]


def test_rescoring_an_i2b2_folder_imported_with_the_old_gold_says_to_reimport(
    routes: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old"
    shutil.copytree(routes["import-paper-i2b2_2010"], old)
    results = json.loads((old / "results.json").read_text())
    del results["tasks"]["i2b2_2010"]["protocol"]["imported"]["importer_version"]  # as an older mibe wrote
    (old / "results.json").write_text(json.dumps(results))
    capsys.readouterr()
    assert cli.main(["rescore", str(old), "--parser", "paper", "--output-dir", str(tmp_path / "re")]) == 0
    err = capsys.readouterr().err
    assert "a rescore keeps stored golds: run `mibe import me-llama` on the file again" in err
    # a folder the current importer wrote says nothing of the kind
    assert (
        cli.main(["rescore", str(routes["import-paper-i2b2_2010"]), "--output-dir", str(tmp_path / "ok")])
        == 0
    )
    assert "mibe import me-llama" not in capsys.readouterr().err
