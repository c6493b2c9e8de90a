"""mibe.scoring.judge_scoring: rubric validation, the judge prompt, reply parsing, the jury's aggregation
(means, bootstrap intervals and Krippendorff's alpha recomputed here independently), human ratings."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
import yaml
from scipy.stats import spearmanr

from mibe.scoring import judge_scoring, jury_stats
from mibe.types import MibeError
from tests.support.paths import FIXTURES

JUDGE = FIXTURES / "judge"
NAMES = ("faithfulness", "completeness", "harmful_omission", "concision")
RUBRIC = judge_scoring.Rubric(tuple(judge_scoring.Criterion(n, f"how good the {n} is") for n in NAMES))


def scores(*values: int | None) -> dict[str, int | None]:
    return dict(zip(NAMES, values, strict=True))


# ----------------------------------------------------------------------------------------- replies

WELL_FORMED = "faithfulness: 4\ncompleteness: 3\nharmful_omission: 5\nconcision: 2"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (WELL_FORMED, scores(4, 3, 5, 2)),
        ("Faithfulness: 4\nCOMPLETENESS: 3\nHarmful Omission: 5\nconcision: 2", scores(4, 3, 5, 2)),
        (
            "**Faithfulness**: **4**\n- *completeness*: 3\n* harmful-omission: 5\n`concision`: 2",
            scores(4, 3, 5, 2),
        ),
        (
            "1. faithfulness: 4/5\n2. completeness: 3 / 5\n3. harmful_omission: 5 out of 5\n4) concision: 2.",
            scores(4, 3, 5, 2),
        ),
        (
            "faithfulness: Score: 4\ncompleteness - score: 3\nharmful_omission score: 5\nconcision (1-5): 2",
            scores(4, 3, 5, 2),
        ),
        (
            "### Faithfulness\nScore: 4\n\n### Completeness:\n**Score:** 3/5\n"
            "harmful_omission: 5\nconcision: 2",
            scores(4, 3, 5, 2),
        ),
        (
            "__faithfulness__: 4\n_completeness_ = 3\n"
            "harmful_omission: 5 (nothing left out)\nconcision: 2 - terse",
            scores(4, 3, 5, 2),
        ),
        ("Here are my scores.\nfaithfulness: 4\ncompleteness: 3\nconcision: 2", scores(4, 3, None, 2)),
        ("faithfulness: 0\ncompleteness: 6\nharmful_omission: 5\nconcision: 2", scores(None, None, 5, 2)),
        (
            "faithfulness: 4/10\ncompleteness: 3.5\nharmful_omission: 5.0\nconcision: -2",
            scores(None, None, 5, None),
        ),
        ("The summary is good overall. I would give it a 4.", scores(None, None, None, None)),
        ("", scores(None, None, None, None)),
        (
            "faithfulness: high\ncompleteness: 3 to 4 statements\nharmful_omission: 5\nconcision: 2",
            scores(None, None, 5, 2),
        ),
        ("<think>faithfulness: 1\ncompleteness: 1</think>\n" + WELL_FORMED, scores(4, 3, 5, 2)),
        ("<THINK>\nfaithfulness: 1\n</THINK>faithfulness: 4\ncompleteness: 3", scores(4, 3, None, None)),
        ("Let me weigh it: faithfulness: 1 ...\n</think>\n\n" + WELL_FORMED, scores(4, 3, 5, 2)),
        (WELL_FORMED + "\n<think>faithfulness: 1\nconcision: 5", scores(4, 3, 5, 2)),
        (
            "<think>faithfulness: 4\ncompleteness: 3\nharmful_omission: 5\nconcision: 2",
            scores(None, None, None, None),
        ),
        (
            "faithfulness: 2\ncompleteness: 3\nFinal answer:\nfaithfulness: 4\nharmful_omission: 5",
            scores(4, 3, 5, None),
        ),
        (
            "faithfulness: 4\ncompleteness: 3\nharmful_omission: 5\nconcision: 9\nconcision_extra: 2",
            scores(4, 3, 5, None),
        ),
        ("### Faithfulness\nThe candidate is fine.\nScore: 4", scores(None, None, None, None)),
    ],
)
def test_parse_reply(reply: str, expected: dict[str, int | None]) -> None:
    assert judge_scoring.parse_reply(reply, RUBRIC) == expected


SCORED = judge_scoring.Rubric(
    (judge_scoring.Criterion("overall_score", "x"), judge_scoring.Criterion("coherence", "y"))
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # A criterion whose own name ends in "score" (it never parsed: the name lost its "score").
        ("overall_score: 4\ncoherence: 3", (4, 3)),
        ("**Overall Score**: 4/5\ncoherence score: 3", (4, 3)),
        ("overall_score score: 2\ncoherence - 5", (2, 5)),
        # A range or a second number is no score (3-4 was read as 3).
        ("overall_score: 3-4\ncoherence: 3 – 4", (None, None)),
        ("overall_score: 3, 4\ncoherence: 2 - terse but fine", (None, 2)),
        ("coherence: 3-4", (None, None)),
        ("coherence: Score: 4 - 5", (None, None)),
        ("overall_score: 4 (on a 1-5 scale)\ncoherence: 99999999999999999999", (4, None)),
        # "İ" lower-cases to two characters: a lone </think> was found at the wrong place.
        ("İ" * 40 + " weighing it</think>\noverall_score: 4\ncoherence: 3", (4, 3)),
        ("<think>İİİ overall_score: 1</think>overall_score: 5\ncoherence: 1", (5, 1)),
    ],
)
def test_parse_reply_edges_of_issue_23(reply: str, expected: tuple[int | None, int | None]) -> None:
    assert judge_scoring.parse_reply(reply, SCORED) == dict(zip(SCORED.names, expected, strict=True))


def test_parse_reply_uses_the_rubric_scale() -> None:
    wide = judge_scoring.Rubric(RUBRIC.criteria[:2], scale=(0, 10))
    got = judge_scoring.parse_reply("faithfulness: 10/10\ncompleteness: 0", wide)
    assert got == {"faithfulness": 10, "completeness": 0}
    assert judge_scoring.parse_reply("faithfulness: 11\ncompleteness: 4/5", wide) == dict.fromkeys(wide.names)


# ------------------------------------------------------------------------------------------ rubric


def good_rubric() -> dict[str, Any]:
    return {"criteria": [{"name": n, "description": f"about {n}"} for n in NAMES]}


def with_(change: dict[str, Any], criterion: int | None = None) -> dict[str, Any]:
    raw = good_rubric()
    target = raw if criterion is None else raw["criteria"][criterion]
    for key, value in change.items():
        if value is ...:
            target.pop(key)
        else:
            target[key] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        (["faithfulness"], "judge", "a mapping with 'criteria'"),
        (with_({"critera": []}), "judge.critera", "did you mean 'criteria'?"),
        (with_({"weights": [1]}), "judge.weights", "allowed: criteria, instructions, scale"),
        (with_({"criteria": ...}), "judge.criteria", "required"),
        (with_({"criteria": []}), "judge.criteria", "required"),
        (with_({"criteria": "faithfulness"}), "judge.criteria", "required"),
        (with_({"criteria": ["faithfulness"]}), "judge.criteria[0]", "a mapping with 'name'"),
        (with_({"name": "Harmful Omission"}, 2), "judge.criteria[2].name", "not a lower_snake name"),
        (with_({"name": "2nd"}, 2), "judge.criteria[2].name", "not a lower_snake name"),
        (with_({"name": ...}, 1), "judge.criteria[1].name", "not a lower_snake name"),
        (with_({"name": "faithfulness"}, 3), "judge.criteria[3].name", "appears twice"),
        (with_({"description": ...}, 0), "judge.criteria[0].description", "required"),
        (with_({"description": "  "}, 0), "judge.criteria[0].description", "required"),
        (with_({"weight": 2}, 1), "judge.criteria[1].weight", "unknown key"),
        (with_({"scale": [5, 1]}), "judge.scale", "give [low, high]"),
        (with_({"scale": [1]}), "judge.scale", "give [low, high]"),
        (with_({"scale": [1.0, 5]}), "judge.scale", "give [low, high]"),
        (with_({"scale": [True, 5]}), "judge.scale", "give [low, high]"),
        (with_({"scale": "1-5"}), "judge.scale", "give [low, high]"),
        (with_({"instructions": 3}), "judge.instructions", "a non-empty string"),
        (with_({"instructions": ""}), "judge.instructions", "a non-empty string"),
    ],
)
def test_rubric_errors(raw: Any, field: str, says: str) -> None:
    with pytest.raises(MibeError) as err:
        judge_scoring.parse_rubric(raw, "tasks/pubmed_sum.yaml")
    message = str(err.value)
    assert message.startswith(f"tasks/pubmed_sum.yaml: field '{field}': ")
    assert says in message
    assert "\n" not in message


def test_rubric_defaults_and_round_trip() -> None:
    raw = with_({"instructions": "Be  strict.\n"})
    raw["criteria"][0]["description"] = "no statement\n  unsupported by the source"
    rubric = judge_scoring.parse_rubric(raw, "t.yaml")
    assert rubric.names == NAMES
    assert rubric.scale == (1, 5)
    assert rubric.instructions == "Be strict."
    assert rubric.criteria[0].description == "no statement unsupported by the source"
    assert judge_scoring.parse_rubric(rubric.as_dict(), "t.yaml") == rubric


@pytest.mark.parametrize("task", ["pubmed_sum", "mimic_cxr"])
def test_default_rubrics_parse(task: str) -> None:
    raw = yaml.safe_load((JUDGE / "rubrics.yaml").read_text(encoding="utf-8"))
    rubric = judge_scoring.parse_rubric(raw[task]["judge"], f"{task}.yaml")
    assert rubric.names == NAMES
    assert rubric.scale == (1, 5)
    assert rubric.instructions


# ------------------------------------------------------------------------------------------ prompt


def test_prompt_shows_everything_in_the_recorded_order() -> None:
    rubric = judge_scoring.Rubric(RUBRIC.criteria, instructions="Grade radiology impressions.")
    texts = {"source": "SRC text", "reference": "REF text", "candidate": "CAND text"}
    first = judge_scoring.judge_prompt(rubric, texts["source"], texts["reference"], texts["candidate"])
    second = judge_scoring.judge_prompt(rubric, *texts.values(), order="candidate_first")
    assert first.index("SRC text") < first.index("REF text") < first.index("CAND text")
    assert second.index("SRC text") < second.index("CAND text") < second.index("REF text")
    for prompt in (first, second):
        assert "Grade radiology impressions." in prompt
        assert "from 1 to 5" in prompt
        for c in rubric.criteria:
            assert f"- {c.name}: {c.description}" in prompt
            assert f"\n{c.name}: <integer>" in prompt


def test_prompt_answer_form_parses() -> None:
    """The reply form the prompt asks for, filled in, is what parse_reply reads."""
    prompt = judge_scoring.judge_prompt(RUBRIC, "s", "r", "c")
    form = prompt[prompt.index("\nfaithfulness: <integer>") :].strip()
    reply = form.replace("<integer>", "3")
    assert judge_scoring.parse_reply(reply, RUBRIC) == scores(3, 3, 3, 3)


def test_prompt_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    h = judge_scoring.prompt_hash(RUBRIC)
    assert len(h) == 16 and int(h, 16) >= 0
    assert h == judge_scoring.prompt_hash(RUBRIC, "reference_first")
    assert h != judge_scoring.prompt_hash(RUBRIC, "candidate_first")
    assert h != judge_scoring.prompt_hash(judge_scoring.Rubric(RUBRIC.criteria, scale=(0, 10)))
    assert h != judge_scoring.prompt_hash(judge_scoring.Rubric(RUBRIC.criteria[:3]))
    assert h != judge_scoring.prompt_hash(judge_scoring.Rubric(RUBRIC.criteria, instructions="x"))
    monkeypatch.setattr(judge_scoring, "JUDGE_PROMPT_VERSION", judge_scoring.JUDGE_PROMPT_VERSION + 1)
    assert h != judge_scoring.prompt_hash(RUBRIC)


@pytest.mark.parametrize(
    "call", [judge_scoring.prompt_hash, lambda r, o: judge_scoring.judge_prompt(r, "s", "r", "c", o)]
)
def test_unknown_order(call: Any) -> None:
    with pytest.raises(
        MibeError, match="judge order 'random': unknown; use reference_first or candidate_first"
    ):
        call(RUBRIC, "random")


# ------------------------------------------------------------------------------------- aggregation

JURY: dict[str, dict[str, dict[str, int | None]]] = {
    "judge-a": {
        "d1": scores(5, 4, 5, 3), "d2": scores(4, 4, 5, 4), "d3": scores(2, None, 3, 4),
        "d4": scores(5, 5, 5, 5), "d5": scores(1, 2, None, 3), "d6": scores(3, 3, 4, 2),
        "d7": scores(4, None, 5, 5), "d8": scores(5, 3, 4, 4),
    },
    "judge-b": {
        "d1": scores(4, 4, 5, 3), "d2": scores(4, 3, 4, 4), "d3": scores(3, None, 2, 5),
        "d4": scores(5, 4, 5, 4), "d5": scores(2, 1, 2, 3), "d6": scores(3, 2, 4, 3),
        "d7": scores(None, None, 5, 5), "d8": scores(4, 4, 5, 4),
    },
    "judge-c": {
        "d1": scores(5, 5, 5, 4), "d2": scores(3, 4, 5, 5), "d3": scores(2, None, 3, 4),
        "d4": scores(4, 5, 5, 5), "d5": scores(1, 1, 1, 2), "d6": scores(None, 3, 3, 2),
        "d7": scores(4, None, 4, 4), "d8": scores(5, 4, 4, 5),
    },
}  # fmt: skip


def reference_bootstrap(values: list[float], n_boot: int, seed: int) -> list[float]:
    """The documented procedure, written out: one (n_boot, n) draw of document indices."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    return list(np.percentile(np.asarray(values)[idx].mean(axis=1), [2.5, 97.5]))


@pytest.mark.parametrize("name", NAMES)
def test_jury_scores_equal_an_independent_computation(name: str) -> None:
    got = jury_stats.jury_scores(JURY, RUBRIC, n_boot=2000, seed=7)["judge_" + name]
    docs = sorted(JURY["judge-a"])
    doc_means = []
    for d in docs:
        parsed = [JURY[j][d][name] for j in JURY if JURY[j][d][name] is not None]
        if parsed:
            doc_means.append(sum(parsed) / len(parsed))
    assert got["n"] == len(doc_means)
    assert got["value"] == pytest.approx(sum(doc_means) / len(doc_means))
    assert got["ci95"] == pytest.approx(reference_bootstrap(doc_means, 2000, 7))
    assert got["ci95"][0] < got["value"] < got["ci95"][1]
    assert got["unparsable"] == {j: sum(JURY[j][d][name] is None for d in docs) for j in JURY}
    table = [[np.nan if JURY[j][d][name] is None else JURY[j][d][name] for d in docs] for j in JURY]
    expected = krippendorff.alpha(reliability_data=table, level_of_measurement="ordinal")
    assert got["alpha"] == pytest.approx(expected)


def test_jury_scores_counts_and_excludes_what_did_not_parse() -> None:
    got = jury_stats.jury_scores(JURY, RUBRIC, n_boot=200, seed=1)
    assert set(got) == {"judge_" + n for n in NAMES}
    assert got["judge_completeness"]["n"] == 6  # d3 and d7: no judge's score parsed
    assert got["judge_completeness"]["unparsable"] == {"judge-a": 2, "judge-b": 2, "judge-c": 2}
    assert got["judge_faithfulness"]["unparsable"] == {"judge-a": 0, "judge-b": 1, "judge-c": 1}
    means = jury_stats.document_means(JURY, RUBRIC)
    assert means["faithfulness"]["d7"] == 4.0 and means["faithfulness"]["d6"] == 3.0
    assert "d3" not in means["completeness"]


def test_jury_scores_chunked_resampling_equals_one_draw() -> None:
    """Many documents: the resampling comes in chunks; the documented single draw must still hold."""
    rng = np.random.default_rng(0)
    docs = {f"d{i:05d}": {"faithfulness": int(v)} for i, v in enumerate(rng.integers(1, 6, size=5000))}
    rubric = judge_scoring.Rubric(RUBRIC.criteria[:1])
    got = jury_stats.jury_scores({"only": docs}, rubric, n_boot=1000, seed=3)["judge_faithfulness"]
    values = [float(docs[d]["faithfulness"]) for d in sorted(docs)]
    assert got["ci95"] == pytest.approx(reference_bootstrap(values, 1000, 3))
    assert got["alpha"] is None  # one judge: no agreement to measure


@pytest.mark.parametrize(
    ("jury", "alpha"),
    [
        ({"a": {"d1": {"faithfulness": 4}, "d2": {"faithfulness": 2}}}, None),
        ({"a": {"d1": {"faithfulness": 4}, "d2": {"faithfulness": 4}},
          "b": {"d1": {"faithfulness": 4}, "d2": {"faithfulness": 4}}}, None),
        ({"a": {"d1": {"faithfulness": 4}, "d2": {"faithfulness": None}},
          "b": {"d1": {"faithfulness": None}, "d2": {"faithfulness": 2}}}, None),
        ({"a": {"d1": {"faithfulness": 5}, "d2": {"faithfulness": 1}},
          "b": {"d1": {"faithfulness": 5}, "d2": {"faithfulness": 1}}}, 1.0),
    ],
)  # fmt: skip
def test_alpha_is_none_when_undefined(jury: Any, alpha: float | None) -> None:
    got = jury_stats.jury_scores(jury, judge_scoring.Rubric(RUBRIC.criteria[:1]), n_boot=50, seed=0)
    assert got["judge_faithfulness"]["alpha"] == alpha


def test_jury_scores_with_nothing_parsed_and_mismatched_documents() -> None:
    nothing = {"a": {"d1": {"faithfulness": None}}, "b": {"d1": {"faithfulness": None}}}
    got = jury_stats.jury_scores(nothing, judge_scoring.Rubric(RUBRIC.criteria[:1]))["judge_faithfulness"]
    assert got == {"value": None, "ci95": None, "n": 0, "unparsable": {"a": 1, "b": 1}, "alpha": None}
    with pytest.raises(ValueError, match="judge 'b' scored other documents"):
        jury_stats.jury_scores({"a": {"d1": {}}, "b": {"d2": {}}}, RUBRIC)


# ----------------------------------------------------------------------------------- human ratings


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "human.csv"
    path.write_text(text, encoding=encoding)
    return path


def test_read_human_ratings(tmp_path: Path) -> None:
    text = (
        'id,criterion,score,notes\nd1,faithfulness,4,\n\nd1,concision,2,"long, repeats"\nd2,faithfulness,1,\n'
    )
    path = write(tmp_path, text, encoding="utf-8-sig")
    got = jury_stats.read_human_ratings(path, RUBRIC)
    assert got == {"faithfulness": {"d1": 4, "d2": 1}, "concision": {"d1": 2}}


H = "id,criterion,score\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "doc,criterion,score\nd1,faithfulness,4\n",
            "line 1: header lacks id; start the file with " + H.strip(),
        ),
        ("id,criterion\nd1,faithfulness\n", "line 1: header lacks score;"),
        ("", "line 1: header lacks id, criterion, score;"),
        (H, "no ratings below the header; add rows id,criterion,score"),
        (H + "d1,faithfulness,4\nd2,faithfulness,4.5\n", "line 3: score '4.5' is not an integer;"),
        (H + "d1,faithfulness,four\n", "line 2: score 'four' is not an integer;"),
        (H + "d1,faithfulness,\n", "line 2: score '' is not an integer;"),
        (H + "d1,faithfulness,6\n", "line 2: score 6 is off the rubric's scale; use 1 to 5"),
        (
            H + "d1,faithfulnes,4\n",
            "line 2: criterion 'faithfulnes' is not in the task's rubric; did you mean 'faithfulness'",
        ),
        (H + "d1,style,4\n", "line 2: criterion 'style' is not in the task's rubric; use one of faith"),
        (H + ",faithfulness,4\n", "line 2: empty id; give the document id"),
        (
            H + "d1,faithfulness,4\nd2,concision,3\nd1,faithfulness,5\n",
            "line 4: d1 / faithfulness rated again (first at line 2)",
        ),
        (H + "d1,faithfulness,4,extra\n", "line 2: more fields than the header; quote"),
        ("id,criterion,score,score\nd1,faithfulness,4,5\n", "line 1: column names ['score'] appear more"),
        (H + "d1,faithfulness," + "9" * 5000 + "\n", "line 2: score 99999999999999999999... is off any"),
        (H + "d1,faithfulness," + "4" * 5000 + ".5\n", "line 2: score '4444444444"),
    ],
)
def test_human_ratings_errors(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MibeError) as err:
        jury_stats.read_human_ratings(path, RUBRIC)
    assert str(err.value).startswith(f"{path}: ")
    assert says in str(err.value)
    assert "\n" not in str(err.value)


def test_human_ratings_with_a_huge_note_are_read(tmp_path: Path) -> None:
    note = "x" * 300_000  # past csv's 131,072-character field limit: it raised csv.Error
    path = write(tmp_path, f'id,criterion,score,notes\nd1,faithfulness,4,"{note}"\n')
    assert jury_stats.read_human_ratings(path, RUBRIC) == {"faithfulness": {"d1": 4}}


def test_human_ratings_unreadable(tmp_path: Path) -> None:
    with pytest.raises(MibeError, match="ratings CSV not found; check the path"):
        jury_stats.read_human_ratings(tmp_path / "none.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes("id,criterion,score\nd\xe9,faithfulness,4\n".encode("latin-1"))
    with pytest.raises(MibeError, match="not UTF-8 text; save the ratings CSV as UTF-8"):
        jury_stats.read_human_ratings(path)
    without_rubric = jury_stats.read_human_ratings(write(tmp_path, "id,criterion,score\nd1,style,9\n"))
    assert without_rubric == {"style": {"d1": 9}}


def test_human_agreement_equals_an_independent_computation() -> None:
    jury = {
        "faithfulness": {"d1": 4.5, "d2": 2.5, "d3": 3.0, "d4": 1.3333333333333333, "d5": 5.0, "d6": 4.0},
        "concision": {"d1": 3.0},
    }
    human = {"faithfulness": {"d1": 5, "d2": 2, "d3": 3, "d4": 2, "d5": 4, "d9": 1}, "concision": {"d1": 3}}
    got = jury_stats.human_agreement(jury, human, (1, 5))
    docs = ["d1", "d2", "d3", "d4", "d5"]
    j = np.array([jury["faithfulness"][d] for d in docs])
    h = np.array([human["faithfulness"][d] for d in docs], dtype=float)
    rounded = [int(Decimal(str(v)).quantize(Decimal(1), rounding=ROUND_HALF_UP)) for v in j]
    assert rounded == [5, 3, 3, 1, 5]
    faith = got["faithfulness"]
    assert faith["n"] == 5 and faith["human_only"] == 1
    alpha = krippendorff.alpha(reliability_data=[rounded, h.tolist()], level_of_measurement="ordinal")
    assert faith["alpha"] == pytest.approx(alpha)
    assert faith["mean_abs_diff"] == pytest.approx(np.mean(np.abs(j - h)))
    assert faith["mean_diff"] == pytest.approx(np.mean(j - h))
    assert faith["spearman"] == pytest.approx(spearmanr(j, h).statistic)
    assert got["concision"] == {
        "n": 1, "human_only": 0, "alpha": None, "mean_diff": 0.0, "mean_abs_diff": 0.0, "spearman": None,
    }  # fmt: skip
    none_shared = jury_stats.human_agreement({}, {"faithfulness": {"d1": 4}}, (1, 5))["faithfulness"]
    assert none_shared["n"] == 0 and none_shared["alpha"] is None and none_shared["mean_abs_diff"] is None


# --------------------------------------------------------------------------------- self-preference


def hf(path: str, config_hash: str | None = None, base: str | None = None) -> dict[str, Any]:
    provenance = {"base_model": base} if base else None
    name = Path(path.rstrip("/")).name
    return {"path": path, "name": name, "config_hash": config_hash, "provenance": provenance}


@pytest.mark.parametrize(
    ("judge", "evaluated", "same"),
    [
        (hf("/models/llama-8b"), hf("/models/llama-8b/"), True),
        (hf("/models/llama-8b", "aaaa"), hf("/other/place/Llama-8B", "bbbb"), True),
        ({"path": "llama-8b", "name": "llama-8b", "backend": "openai"}, hf("/models/llama-8b"), True),
        (hf("/models/judge", "cafe"), hf("/models/candidate", "cafe"), True),
        (hf("/models/judge"), hf("/runs/sft-1", base="/models/judge"), True),
        (hf("/models/judge", "aaaa"), hf("/models/candidate", "bbbb"), False),
        (hf("/models/judge"), hf("/models/candidate"), False),
        ({"path": "gpt-x"}, {"name": "other"}, False),
        ({}, {}, False),
    ],
)
def test_same_model(judge: dict[str, Any], evaluated: dict[str, Any], same: bool) -> None:
    assert judge_scoring.same_model(judge, evaluated) is same
    if not evaluated.get("provenance"):  # training lineage is one-way: the rest is symmetric
        assert judge_scoring.same_model(evaluated, judge) is same
