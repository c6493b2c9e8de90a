"""`mibe judge` and `mibe run --judge`: a jury scoring a run's summaries (docs/judges.md).

The tiny model judges for the plumbing (its replies rarely parse, and that is counted), the cache
and resuming after a kill; a loopback OpenAI-compatible server written here answers with canned
replies (malformed ones included) whose means, intervals and agreement are recomputed here from the
canned numbers with an independent bootstrap; the guard refuses a remote judge for mimic_cxr."""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import krippendorff
import numpy as np
import pytest
import yaml
from scipy.stats import spearmanr

from mibe import cli, tasks
from mibe.backends import spec as model_spec
from mibe.backends.endpoint import Machine
from mibe.boards import compare as compare_runs
from mibe.runner import judge_calls, judge_run
from mibe.scoring import judge_scoring, stats
from mibe.types import MibeError
from tests.support import judging
from tests.support.loopback import JSONHandler, serving
from tests.support.paths import FIXTURES, REPO

JUDGE = FIXTURES / "judge"
ARTICLES = [
    ("s1", "Hand gel at every bed raised hand hygiene from forty to seventy percent.", "Gel raised hygiene."),
    (
        "s2",
        "A walking programme lowered blood pressure by six points in older adults.",
        "Walking lowered BP.",
    ),
    (
        "s3",
        "Night shifts doubled the rate of needle injuries among junior nurses.",
        "Night shifts, injuries.",
    ),
    ("s4", "Text reminders raised vaccine uptake in a rural clinic by a fifth.", "Texts raised uptake."),
    ("s5", "Early mobilisation shortened hospital stay after hip surgery by two days.", "Mobilise early."),
    (
        "s6",
        "A checklist cut central line infections by half in two intensive care units.",
        "Checklist works.",
    ),
]
ARTICLE_ROWS = [{"id": i, "text": t, "answer": a} for i, t, a in ARTICLES]


# ------------------------------------------------------------------------------------------ the specs


@pytest.mark.parametrize(
    ("text", "backend", "model", "url"),
    [
        ("hf:/models/judge", "hf", "/models/judge", None),
        ("/models/judge", "hf", "/models/judge", None),
        ("org/judge-7b", "hf", "org/judge-7b", None),
        ("vllm:/models/judge", "vllm", "/models/judge", None),
        ("openai:http://127.0.0.1:8000/v1#judge", "openai", "judge", "http://127.0.0.1:8000/v1"),
        (
            "openai:https://api.example.org/v1/#org/model-x",
            "openai",
            "org/model-x",
            "https://api.example.org/v1",
        ),
    ],
)
def test_model_specs(text: str, backend: str, model: str, url: str | None) -> None:
    spec = model_spec.parse(text)
    assert (spec.backend, spec.model, spec.base_url) == (backend, model, url)
    found = judge_run.endpoint_of(spec, Machine())
    assert (found.role, found.backend, found.model, found.base_url) == ("judge", backend, model, url)
    assert found.key_env is None  # no key unless the spec names its variable


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "empty"),
        ("hf:", "no model after 'hf:'"),
        ("openai:http://127.0.0.1:8000/v1", "name the served model after '#'"),
        ("openai:127.0.0.1:8000#m", "must start with http"),
        ("http://127.0.0.1:8000/v1", "openai:URL#NAME"),
        ("ollama:llama3", "unknown backend 'ollama'"),
    ],
)
def test_bad_specs_are_one_line(text: str, said: str) -> None:
    with pytest.raises(MibeError, match=re.escape(said)) as err:
        model_spec.parse(text)
    assert "\n" not in str(err.value)


def test_a_judge_given_twice_is_refused() -> None:
    with pytest.raises(MibeError, match="given twice"):
        judge_run.parse_specs(["hf:/m", "hf:/m"])


# ---------------------------------------------------------------------------------- task files


def test_the_builtin_rubrics_are_the_shipped_defaults() -> None:
    shipped = yaml.safe_load((JUDGE / "rubrics.yaml").read_text(encoding="utf-8"))
    for name in ("pubmed_sum", "mimic_cxr"):
        task = tasks.load_task(tasks.builtin_paths()[name])
        assert task.judge == judge_scoring.parse_rubric(shipped[name]["judge"], name)
        assert task.judge.names == ("faithfulness", "completeness", "harmful_omission", "concision")
    assert tasks.load_task(tasks.builtin_paths()["pubmedqa"]).judge is None


@pytest.mark.parametrize(
    ("judge", "answer", "said"),
    [
        (
            {"criteria": [{"name": "Faithfulness", "description": "x"}]},
            "{type: text}",
            "judge.criteria[0].name",
        ),
        ({"critera": []}, "{type: text}", "did you mean 'criteria'?"),
        (
            judging.RUBRIC,
            "{type: choice, choices: [good, bad]}",
            "only tasks with answer type text are judged",
        ),
    ],
)
def test_tasks_validate_checks_the_rubric(
    tmp_path: Path, capsys: pytest.CaptureFixture, judge: Any, answer: str, said: str
) -> None:
    path = judging.task_file(tmp_path, "my_sum", ARTICLE_ROWS, judge, answer)
    assert cli.main(["tasks", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and str(path) in err, err


def test_tasks_validate_names_the_rubric(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = judging.task_file(tmp_path, "my_sum", ARTICLE_ROWS, judging.RUBRIC)
    assert cli.main(["tasks", "validate", str(path)]) == 0
    assert "judged on faithfulness, concision" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- the prompt


def _words(text: str) -> list[int]:
    return [len(w) for w in text.split()]  # stand-in tokenizer: one token per word


@pytest.mark.parametrize("order", judge_scoring.ORDERS)
def test_the_prompt_is_the_rubric_prompt_when_it_fits(order: str) -> None:
    rubric = judge_scoring.parse_rubric(judging.RUBRIC, "t")
    texts = ("the {{ source }} {% raw %}", " the reference ", "the candidate")
    words = lambda t: len(t.split())  # noqa: E731
    prompt, cut = judge_calls.fitted_prompt(rubric, texts, order, words, _words, None, None)
    assert cut == 0 and prompt == judge_scoring.judge_prompt(rubric, *texts, order=order)


def test_a_long_source_is_cut_at_its_end_and_nothing_else_is() -> None:
    rubric = judge_scoring.parse_rubric(judging.RUBRIC, "t")
    source = " ".join(f"w{i}" for i in range(400))
    whole = judge_scoring.judge_prompt(rubric, source, "ref", "cand")
    budget = len(whole.split()) - 100
    vocab: dict[str, int] = {}
    ids = lambda t: [vocab.setdefault(w, len(vocab)) for w in t.split()]  # noqa: E731
    back = lambda xs: " ".join({v: k for k, v in vocab.items()}[x] for x in xs)  # noqa: E731
    prompt, cut = judge_calls.fitted_prompt(
        rubric, (source, "ref", "cand"), "reference_first", lambda t: len(t.split()), ids, back, budget
    )
    assert cut >= 100 and len(prompt.split()) <= budget
    kept = re.search(r"<source>\n(.*)\n</source>", prompt, re.S).group(1).split()
    assert kept == source.split()[: len(kept)] and len(kept) == 400 - cut
    assert prompt == judge_scoring.judge_prompt(rubric, " ".join(kept), "ref", "cand")
    with pytest.raises(MibeError, match="with no source text at all"):
        judge_calls.fitted_prompt(rubric, (source, "ref", "cand"), "reference_first",
                                  lambda t: len(t.split()), ids, back, 10, "doc-7")  # fmt: skip


# ------------------------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def evaluated(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One run of the tiny model: a public text task with a short rubric (tiny_sum), a credentialed
    one (tiny_cxr) and the bundled pubmed_sum and mimic_cxr documents with their shipped rubrics."""
    folder = tmp_path_factory.mktemp("judging")
    sum_file = judging.task_file(folder, "tiny_sum", ARTICLE_ROWS, judging.RUBRIC)
    cxr_file = judging.task_file(folder, "tiny_cxr", ARTICLE_ROWS, judging.RUBRIC, credentialed=True)
    run = folder / "run"
    argv = ["run", "--model", str(tiny_llama), "--demo", "--max-new-tokens", "6", "--bootstrap", "200"]
    argv += ["--tasks", f"{sum_file},{cxr_file},pubmed_sum,mimic_cxr", "--output-dir", str(run)]
    argv += [
        "--data",
        f"tiny_sum={folder / 'tiny_sum.jsonl'}",
        "--data",
        f"tiny_cxr={folder / 'tiny_cxr.jsonl'}",
    ]
    assert cli.main(argv) == 0
    return {"run": run, "folder": folder, "model": tiny_llama}


def _cache_files(folder: Path, task: str) -> list[Path]:
    return sorted((folder / "judges").glob(f"{task}.*.jsonl"))


def test_the_samples_keep_the_source_for_the_judge(evaluated: dict[str, Path]) -> None:
    rows = [json.loads(x) for x in (evaluated["run"] / "samples" / "tiny_sum.jsonl").read_text().splitlines()]
    assert {r["id"]: r["source"] for r in rows} == {i: t for i, t, _ in ARTICLES}


@pytest.mark.slow
def test_the_tiny_model_judges_caches_and_resumes(
    evaluated: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    out = evaluated["folder"] / "tiny-judged"
    argv = [
        "judge",
        str(evaluated["run"]),
        "--judge",
        f"hf:{evaluated['model']}",
        "--tasks",
        "tiny_sum,tiny_cxr",
    ]
    argv += ["--judge-max-new-tokens", "12", "--output-dir", str(out)]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "6 documents, 0 from the cache, 6 sent" in err and "self-preference" in err
    results = json.loads((out / "results.json").read_text())
    entry = results["tasks"]["tiny_sum"]
    (cache,) = _cache_files(out, "tiny_sum")
    lines = [json.loads(x) for x in cache.read_text().splitlines()]
    assert len(lines) == 6 and all("reply" in x for x in lines)
    rubric = judge_scoring.parse_rubric(judging.RUBRIC, "t")
    for name in rubric.names:
        parsed = [judge_scoring.parse_reply(x["reply"], rubric)[name] for x in lines]
        metric = entry["metrics"][f"judge_{name}"]
        assert metric["unparsable"] == {f"hf:{evaluated['model']}": sum(p is None for p in parsed)}
        assert metric["n"] == sum(p is not None for p in parsed)
    assert entry["metrics"]["rouge_l"] == json.loads((evaluated["run"] / "results.json").read_text())[
        "tasks"]["tiny_sum"]["metrics"]["rouge_l"]  # fmt: skip
    assert entry["judging"]["judges"][0]["self_preference"] is True
    jury = entry["protocol"]["jury"]
    assert jury["prompt_hash"] == judge_scoring.prompt_hash(rubric) and jury["order"] == "reference_first"
    assert jury["judges"][0]["model"] == str(evaluated["model"]) and jury["judges"][0]["backend"] == "hf"
    # The credentialed task's cache is owner-only, as its samples are; the public one is not.
    (private,) = _cache_files(out, "tiny_cxr")
    assert private.stat().st_mode & 0o077 == 0 and cache.stat().st_mode & 0o077 != 0
    assert (out / "samples" / "tiny_cxr.jsonl").stat().st_mode & 0o077 == 0
    assert set(results["tasks"]) == {"tiny_sum", "tiny_cxr", "pubmed_sum", "mimic_cxr"}  # all carried

    # A rerun sends nothing; a run killed mid-way (its last lines lost, one cut short) resumes.
    assert cli.main(argv) == 0
    assert "6 from the cache, 0 sent" in capsys.readouterr().err
    text = cache.read_text().splitlines(keepends=True)
    cache.write_text("".join(text[:3]) + text[3][:20])
    assert cli.main(argv) == 0
    assert "6 documents, 3 from the cache, 3 sent" in capsys.readouterr().err
    again = json.loads((out / "results.json").read_text())["tasks"]["tiny_sum"]
    assert len(cache.read_text().splitlines()) == 6
    assert again["metrics"] == entry["metrics"]  # greedy replies: the same scores


@pytest.mark.slow
def test_a_killed_judging_run_resumes(evaluated: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    """A real SIGKILL while the tiny model judges one document at a time: the rerun sends only what
    the cache lacks, and every document ends up judged once."""
    out = evaluated["folder"] / "killed"
    argv = ["judge", str(evaluated["run"]), "--judge", f"hf:{evaluated['model']}", "--tasks", "tiny_sum"]
    argv += ["--judge-max-new-tokens", "400", "--batch-size", "1", "--output-dir", str(out)]
    child = subprocess.Popen([sys.executable, "-m", "mibe", *argv], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        cache = _cache_files(out, "tiny_sum") if (out / "judges").is_dir() else []
        if cache and cache[0].read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.01)
    child.kill()
    assert child.wait() == -signal.SIGKILL, "the judging run finished before it could be killed"
    (cache,) = _cache_files(out, "tiny_sum")
    done = cache.read_bytes().count(b"\n")
    assert 1 <= done < 6 and not (out / "results.json").exists()
    assert cli.main(argv) == 0
    assert f"6 documents, {done} from the cache, {6 - done} sent" in capsys.readouterr().err
    ids = [json.loads(x)["id"] for x in cache.read_text().splitlines()]
    assert sorted(ids) == sorted(i for i, _, _ in ARTICLES)


# ------------------------------------------------------------------------------------------ loopback


def canned(judge: str, index: int, names: tuple[str, ...], better: bool) -> tuple[str, dict[str, int | None]]:
    """A judge's reply to a document and the scores it should be read as: well formed, markdown,
    prose with no score, an off-scale score, or a verdict after a <think> block."""
    shift = (judge == "b") + (2 if better else 0)
    values = {n: 1 + (index * 3 + j * 2 + shift) % 5 for j, n in enumerate(names)}
    style = (index + (judge == "b")) % 5
    lines = [f"{n}: {v}" for n, v in values.items()]
    if style == 1:
        return "\n".join(f"- **{n.replace('_', ' ').title()}**: {v}/5" for n, v in values.items()), values
    if style == 2:
        return "The candidate is a fair summary of the article.", dict.fromkeys(names)
    if style == 3:
        return "\n".join([f"{names[0]}: 9", *lines[1:]]), {**values, names[0]: None}
    if style == 4:
        return "<think>" + "\n".join(f"{n}: 1" for n in names) + "</think>\n" + "\n".join(lines), values
    return "\n".join(lines), values


class _Jury(JSONHandler):
    """An OpenAI-compatible judge: finds the document by its reference and answers `canned`."""

    docs: ClassVar[dict[str, tuple[int, tuple[str, ...]]]] = {}  # reference -> (index, rubric names)
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self._reply({"data": [{"id": "a"}, {"id": "b"}]})

    def do_POST(self) -> None:
        body = self._body()
        content = body["messages"][-1]["content"]
        reference = re.search(r"<reference>\n(.*?)\n</reference>", content, re.S).group(1)
        candidate = re.search(r"<candidate>\n(.*?)\n</candidate>", content, re.S).group(1)
        type(self).seen.append(body["model"])
        index, names = type(self).docs[reference]
        text, _ = canned(body["model"], index, names, candidate.startswith("BETTER"))
        self._reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


@pytest.fixture
def jury_server(evaluated: dict[str, Path]) -> Iterator[str]:
    _Jury.docs, _Jury.seen = {}, []
    for task in ("tiny_sum", "tiny_cxr", "pubmed_sum", "mimic_cxr"):
        rubric = tasks.load_task(_task_path(evaluated, task)).judge
        for row in _rows(evaluated["run"], task):
            _Jury.docs[row["gold"].strip()] = (row["index"], rubric.names)
    with serving(_Jury) as url:
        yield url


def _task_path(evaluated: dict[str, Path], task: str) -> Path:
    local = evaluated["folder"] / f"{task}.yaml"
    return local if local.is_file() else tasks.builtin_paths()[task]


def _rows(run: Path, task: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]


def expected_metrics(
    rows: list[dict], names: tuple[str, ...], n_boot: int, seed: int, better: bool = False
) -> dict:
    """The jury's columns recomputed from the canned numbers: docs in sorted id order, a percentile
    bootstrap drawn with numpy as docs/judges.md states, krippendorff's ordinal alpha."""
    docs = sorted(rows, key=lambda r: r["id"])
    parsed = {j: [canned(j, r["index"], names, better)[1] for r in docs] for j in ("a", "b")}
    out = {}
    for name in names:
        per_doc = [[p[i][name] for p in parsed.values() if p[i][name] is not None] for i in range(len(docs))]
        values = np.array([np.mean(v) for v in per_doc if v])
        idx = np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))
        reliability = np.array([[np.nan if s[name] is None else s[name] for s in p] for p in parsed.values()])
        alpha = krippendorff.alpha(reliability_data=reliability, value_domain=[1, 2, 3, 4, 5],
                                   level_of_measurement="ordinal")  # fmt: skip
        out[f"judge_{name}"] = {
            "value": float(values.mean()),
            "ci95": list(np.percentile(values[idx].mean(axis=1), [2.5, 97.5])),
            "n": len(values),
            "unparsable": {f"J{j}": sum(s[name] is None for s in p) for j, p in parsed.items()},
            "alpha": float(alpha),
        }
    return out


def _specs(url: str) -> list[str]:
    return ["--judge", f"openai:{url}#a", "--judge", f"openai:{url}#b"]


def _close(got: dict, want: dict, url: str) -> None:
    for metric, w in want.items():
        g = got[metric]
        assert g["value"] == pytest.approx(w["value"]) and g["n"] == w["n"], metric
        assert g["ci95"] == pytest.approx(w["ci95"]), metric
        assert g["alpha"] == pytest.approx(w["alpha"]), metric
        assert g["unparsable"] == {f"openai:{url}#{j[1]}": c for j, c in w["unparsable"].items()}, metric


def test_a_loopback_jury_gives_the_expected_columns(
    evaluated: dict[str, Path], jury_server: str, capsys: pytest.CaptureFixture
) -> None:
    out = evaluated["folder"] / "loopback-judged"
    ratings = evaluated["folder"] / "human.csv"
    human = {("s1", 4), ("s2", 2), ("s3", 5), ("s4", 1), ("s5", 3)}
    with ratings.open("w", newline="") as handle:
        csv.writer(handle).writerows(
            [("id", "criterion", "score"), *((i, "faithfulness", s) for i, s in human)]
        )
    argv = ["judge", str(evaluated["run"]), *_specs(jury_server), "--human-ratings", str(ratings)]
    assert cli.main([*argv, "--output-dir", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(_Jury.seen) == 2 * (6 + 6 + 3 + 3)
    for task in ("tiny_sum", "tiny_cxr", "pubmed_sum", "mimic_cxr"):
        names = tasks.load_task(_task_path(evaluated, task)).judge.names
        want = expected_metrics(_rows(evaluated["run"], task), names, 200, 1234)
        _close(results["tasks"][task]["metrics"], want, jury_server)
        judged = {r["id"]: r["judge"] for r in _rows(out, task)}
        assert len(judged) == len(_rows(evaluated["run"], task))
    # judge-human agreement on tiny_sum, recomputed from the canned numbers
    rows = sorted(_rows(evaluated["run"], "tiny_sum"), key=lambda r: r["id"])
    names = ("faithfulness", "concision")
    jury = {}
    for r in rows:
        got = [canned(j, r["index"], names, False)[1]["faithfulness"] for j in "ab"]
        if any(g is not None for g in got):
            jury[r["id"]] = float(np.mean([g for g in got if g is not None]))
    rated = sorted((i, s) for i, s in human if i in jury)
    j = np.array([jury[i] for i, _ in rated])
    h = np.array([s for _, s in rated], dtype=float)
    agreement = results["tasks"]["tiny_sum"]["judging"]["human"]["criteria"]["faithfulness"]
    assert agreement["n"] == len(rated) and agreement["mean_diff"] == pytest.approx(float((j - h).mean()))
    assert agreement["spearman"] == pytest.approx(float(spearmanr(j, h).statistic))
    want_alpha = krippendorff.alpha(reliability_data=[np.floor(j + 0.5), h], value_domain=[1, 2, 3, 4, 5],
                                    level_of_measurement="ordinal")  # fmt: skip
    assert agreement["alpha"] == pytest.approx(want_alpha)
    assert (
        "human" in results["tasks"]["pubmed_sum"]["judging"]
        and results["tasks"]["pubmed_sum"]["judging"]["human"] is None
    )
    # The same command again: every reply comes from the folder's cache; no request is sent.
    before = len(_Jury.seen)
    assert cli.main([*argv, "--output-dir", str(out)]) == 0
    assert len(_Jury.seen) == before


def _better_copy(run: Path, target: Path) -> Path:
    """Run B: run A with tiny_sum's summaries replaced (the canned judges score them higher)."""
    shutil.copytree(run, target)
    rows = _rows(run, "tiny_sum")
    for r in rows:
        r["prediction"] = r["raw_output"] = "BETTER " + r["prediction"]
    (target / "samples" / "tiny_sum.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return target


def test_compare_and_leaderboard_show_judge_columns(
    evaluated: dict[str, Path], jury_server: str, capsys: pytest.CaptureFixture
) -> None:
    folder = evaluated["folder"]
    run_b = _better_copy(evaluated["run"], folder / "run-b")
    a, b = folder / "judged-a", folder / "judged-b"
    for run, out in ((evaluated["run"], a), (run_b, b)):
        assert (
            cli.main(
                ["judge", str(run), *_specs(jury_server), "--tasks", "tiny_sum", "--output-dir", str(out)]
            )
            == 0
        )
    report = compare_runs.compare(a, b, n_boot=300, seed=7)
    (task,) = [t for t in report["tasks"] if t["task"] == "tiny_sum"]
    metric = next(m for m in task["metrics"] if m["metric"] == "judge_faithfulness")
    names = ("faithfulness", "concision")
    per_doc = {}
    for better, side in ((False, "a"), (True, "b")):
        for r in _rows(evaluated["run"], "tiny_sum"):
            got = [canned(j, r["index"], names, better)[1]["faithfulness"] for j in "ab"]
            got = [g for g in got if g is not None]
            per_doc.setdefault(r["id"], {})[side] = float(np.mean(got)) if got else None
    order = [r["id"] for r in _rows(a, "tiny_sum")]  # compare pairs in run A's samples order
    pairs = [(per_doc[i]["a"], per_doc[i]["b"]) for i in order if None not in per_doc[i].values()]
    want = stats.paired_means(
        [x for x, _ in pairs], [y for _, y in pairs], 300, compare_runs.task_seed(7, "tiny_sum")
    )
    assert metric["diff"] == pytest.approx(want.diff) and metric["ci95"] == pytest.approx(list(want.ci95))
    assert metric["test"] == "paired bootstrap"
    capsys.readouterr()
    assert cli.main(["leaderboard", str(a), str(b), "--format", "csv"]) == 0
    lines = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    judged = [x for x in lines if x["metric"] == "judge_faithfulness"]
    jury_id = json.loads((a / "results.json").read_text())["tasks"]["tiny_sum"]["protocol"]["jury"]["id"]
    assert len(judged) == 2 and {x["jury"] for x in judged} == {jury_id}
    rouge = [x for x in lines if x["metric"] == "rouge_l" and x["task"] == "tiny_sum"]
    assert rouge and all(x["jury"] == "" for x in rouge)
    html = folder / "board.html"
    assert cli.main(["leaderboard", str(a), str(b), "--format", "html", "-o", str(html)]) == 0
    assert "judge_faithfulness" in html.read_text()


def test_another_jury_gets_its_own_column(
    evaluated: dict[str, Path], jury_server: str, capsys: pytest.CaptureFixture
) -> None:
    folder = evaluated["folder"]
    one, other = folder / "jury-one", folder / "jury-other"
    base = ["judge", str(evaluated["run"]), "--tasks", "tiny_sum"]
    assert cli.main([*base, *_specs(jury_server), "--output-dir", str(one)]) == 0
    assert cli.main([*base, "--judge", f"openai:{jury_server}#a", "--output-dir", str(other)]) == 0
    report = compare_runs.compare(one, other)
    (task,) = [t for t in report["tasks"] if t["task"] == "tiny_sum"]
    metric = next(m for m in task["metrics"] if m["metric"] == "judge_faithfulness")
    assert metric["diff"] is None and "different juries" in metric["note"]


def test_run_judge_in_place_then_redaction(
    evaluated: dict[str, Path], jury_server: str, capsys: pytest.CaptureFixture
) -> None:
    sum_file = evaluated["folder"] / "tiny_sum.yaml"
    out = evaluated["folder"] / "run-judged"
    argv = ["run", "--model", str(evaluated["model"]), "--tasks", str(sum_file), "--max-new-tokens", "6"]
    argv += ["--bootstrap", "200", "--output-dir", str(out)]
    judged = [*argv, "--judge", f"openai:{jury_server}#a", "--judge", f"openai:{jury_server}#b"]
    # Rows are redacted as they are written, so nothing would be left to judge: refused before any work.
    assert cli.main([*judged, "--redact-samples"]) == 2
    assert "--redact-samples" in capsys.readouterr().err and not out.exists()
    # Judge scores are kept per document, not per shot draw: a run of several draws is refused too.
    assert cli.main([*judged, "--num-fewshot", "1", "--fewshot-seeds", "1,2"]) == 2
    assert "a jury judges runs of one draw" in capsys.readouterr().err and not out.exists()
    assert cli.main(judged) == 0
    entry = json.loads((out / "results.json").read_text())["tasks"]["tiny_sum"]
    want = expected_metrics(_rows(evaluated["run"], "tiny_sum"), ("faithfulness", "concision"), 200, 1234)
    _close(entry["metrics"], want, jury_server)
    assert cli.main([*argv, "--redact-samples"]) == 0  # the finished run, redacted: judge scores stay
    rows = _rows(out, "tiny_sum")
    assert all("judge" in r and "raw_output" not in r and "prompt" not in r for r in rows)
    assert json.loads((out / "results.json").read_text())["tasks"]["tiny_sum"]["metrics"] == entry["metrics"]


def test_judge_with_draws_is_refused_only_when_a_judged_task_is_drawn(
    evaluated: dict[str, Path], jury_server: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # --fewshot-seeds draws every task of the run: refused when one of them has a rubric, named.
    base = ["run", "--model", str(evaluated["model"]), "--demo", "--limit", "2", "--max-new-tokens", "2"]
    base += ["--num-fewshot", "1", "--fewshot-seeds", "1,2", "--bootstrap", "20"]
    base += ["--judge", f"openai:{jury_server}#a"]
    mixed = ["--tasks", "pubmedqa,pubmed_sum", "--output-dir", str(tmp_path / "mixed")]
    assert cli.main([*base, *mixed]) == 2
    err = capsys.readouterr().err
    assert err == f"mibe: error: --judge with --fewshot-seeds: pubmed_sum would be {judge_run.DRAWN}\n"
    assert not (tmp_path / "mixed").exists()
    # No task with a rubric among the drawn ones: the run goes ahead and the jury has nothing to read.
    out = tmp_path / "unjudged"
    assert cli.main([*base, "--tasks", "pubmedqa", "--output-dir", str(out)]) == 0
    assert "--judge: no scored text task has a `judge:` rubric; nothing judged" in capsys.readouterr().err
    entry = json.loads((out / "results.json").read_text())["tasks"]["pubmedqa"]
    assert entry["fewshot_seeds"] == [1, 2] and not any(m.startswith("judge_") for m in entry["metrics"])


# ----------------------------------------------------------------------------------------- the guard


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection attempt, recorded and refused."""
    tried: list[str] = []

    def connect(self: socket.socket, address: object) -> None:
        tried.append(f"connect {address}")
        raise OSError(f"test: no network ({address})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return tried


def test_a_remote_judge_is_refused_for_mimic_cxr_before_any_traffic(
    evaluated: dict[str, Path], connections: list[str], capsys: pytest.CaptureFixture
) -> None:
    out = evaluated["folder"] / "refused"
    remote = "openai:http://203.0.113.5:9/v1#x"
    argv = [
        "judge",
        str(evaluated["run"]),
        "--judge",
        remote,
        "--tasks",
        "mimic_cxr",
        "--output-dir",
        str(out),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert remote in err and "mimic_cxr" in err and "--allow-remote-credentialed" in err
    assert connections == [] and not out.exists()
    # `mibe run --judge` refuses it before the evaluated model loads
    run = ["run", "--model", str(evaluated["model"]), "--demo", "--tasks", "mimic_cxr", "--judge", remote]
    assert cli.main([*run, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err and connections == [] and not out.exists()


def test_a_remote_judge_may_read_public_tasks_only(
    evaluated: dict[str, Path], connections: list[str]
) -> None:
    public = [tasks.load_task(tasks.builtin_paths()["pubmed_sum"])]
    judge_run.check_guards([model_spec.parse("openai:http://203.0.113.5:9/v1#x")], public, (), Machine())
    assert connections == []


def test_judging_a_run_of_several_draws_is_refused(
    evaluated: dict[str, Path], jury_server: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "drawn"
    shutil.copytree(evaluated["run"], run)
    results = json.loads((run / "results.json").read_text())
    results["tasks"]["tiny_sum"]["fewshot_seeds"] = [1, 2]  # as a --fewshot-seeds run records it
    (run / "results.json").write_text(json.dumps(results))
    argv = ["judge", str(run), "--judge", f"openai:{jury_server}#a", "--output-dir", str(tmp_path / "out")]
    assert cli.main([*argv, "--tasks", "tiny_sum"]) == 2
    assert "--tasks tiny_sum: scored over several few-shot draws" in capsys.readouterr().err
    assert cli.main(argv) == 0  # every judgeable task: the drawn one left out, said so
    assert "tiny_sum: left out: scored over several few-shot draws" in capsys.readouterr().err
    judged = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]
    assert "judge_faithfulness" not in judged["tiny_sum"]["metrics"]
    # The run holds a credentialed task (tiny_cxr): the judged folder is owner-only, as the run is.
    for name in ("results.json", "run.json", "samples/tiny_cxr.jsonl"):
        assert (tmp_path / "out" / name).stat().st_mode & 0o077 == 0, name


# ---------------------------------------------------------------- issue 23: defects of the jury's edges


def test_one_over_long_candidate_is_skipped_by_that_judge_not_the_whole_jury(
    evaluated: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "long"
    shutil.copytree(evaluated["run"], run)
    rows = _rows(run, "tiny_sum")
    long = next(r for r in rows if r["id"] == "s2")
    long["prediction"] = long["raw_output"] = " ".join(["summary"] * 6000)  # past the tiny model's context
    (run / "samples" / "tiny_sum.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, judge = tmp_path / "out", f"hf:{evaluated['model']}"
    argv = ["judge", str(run), "--judge", judge, "--tasks", "tiny_sum", "--judge-max-new-tokens", "4"]
    assert cli.main([*argv, "--output-dir", str(out)]) == 0  # it stopped the whole jury (exit 2)
    err = capsys.readouterr().err
    assert "5 documents, 0 from the cache, 5 sent" in err
    assert f"judge {judge} skipped 1 document(s) it cannot read: document s2: the judge prompt takes" in err
    entry = json.loads((out / "results.json").read_text())["tasks"]["tiny_sum"]
    (calls,) = entry["judging"]["judges"]
    assert calls["documents"] == 6 and calls["sent"] == 5 and list(calls["skipped"]) == ["s2"]
    assert "with no source text at all" in calls["skipped"]["s2"]
    assert all(m["unparsable"][judge] >= 1 for k, m in entry["metrics"].items() if k.startswith("judge_"))
    judged = {r["id"]: r["judge"] for r in _rows(out, "tiny_sum")}
    assert judged["s2"] == {"faithfulness": None, "concision": None} and len(judged) == 6


def test_human_ratings_of_other_documents_are_refused_before_any_judge_call(
    evaluated: dict[str, Path], jury_server: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ratings = tmp_path / "other.csv"
    ratings.write_text("id,criterion,score\nnot-a-doc,faithfulness,4\n")
    out = tmp_path / "out"
    argv = ["judge", str(evaluated["run"]), *_specs(jury_server), "--human-ratings", str(ratings)]
    assert cli.main([*argv, "--tasks", "tiny_sum", "--output-dir", str(out)]) == 2
    assert "no id in it is a document of tiny_sum" in capsys.readouterr().err
    assert _Jury.seen == [] and not out.exists()  # every judge was called first, and the folder written
