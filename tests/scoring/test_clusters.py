"""Clusters of documents made together (docs/statistics.md): the cluster bootstrap and the clustered
paired test against independent implementations written here, the built-in tasks' cluster keys on
invented rows in each release's format, and a run, its samples and `mibe compare` end to end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2

from mibe import data, tasks
from mibe.boards import compare, compare_text, render, view
from mibe.boards.board import build as build_board
from mibe.runner import api
from mibe.scoring import draw_stats, kinds, stats
from mibe.types import MibeError, RunConfig
from tests.support.paths import FIXTURES, PUBLIC, needs_public_data
from tests.support.scripted import Scripted

FIX = FIXTURES
LABELS = ("yes", "no", "maybe")


def _labels(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    golds = [LABELS[i] for i in rng.integers(0, 3, n)]
    preds = [
        g if rng.random() < 0.6 else LABELS[i] for g, i in zip(golds, rng.integers(0, 3, n), strict=True)
    ]
    return golds, preds


def _reference_interval(golds: list[str], preds: list[str], n_boot: int, seed: int) -> list[float]:
    """Accuracy's percentile interval over documents, written from scratch: one rng call, as numpy draws."""
    correct = np.array([g == p for g, p in zip(golds, preds, strict=True)], dtype=float)
    m = len(correct)
    idx = np.random.default_rng(seed).integers(0, m, size=(n_boot, m))
    return np.percentile(correct[idx].sum(axis=1) / m, [2.5, 97.5]).tolist()


@pytest.mark.parametrize("m, k", [(40, 3), (25, 7), (60, 2)])
def test_identical_copies_give_the_deduplicated_interval_bit_for_bit(m: int, k: int) -> None:
    golds, preds = _labels(m, seed=m + k)
    # Each document k times, the copies spread through the file (not side by side).
    order = [i for _ in range(k) for i in range(m)]
    copies_g, copies_p = [golds[i] for i in order], [preds[i] for i in order]
    clusters = [f"c{i}" for i in order]
    wanted = ("accuracy", "macro_f1", "missing_rate")
    dedup = kinds.score_task("choice", wanted, golds, preds, LABELS, "strict", seed=7, n_boot=500)
    copied = kinds.score_task(
        "choice", wanted, copies_g, copies_p, LABELS, "strict", seed=7, n_boot=500, clusters=clusters
    )
    for metric in wanted:
        assert copied["metrics"][metric] == dedup["metrics"][metric]  # bit for bit, value and ci95
    assert dedup["metrics"]["accuracy"]["ci95"] == _reference_interval(golds, preds, 500, 7)
    # Without the clusters the copies look like k*m independent documents: a narrower interval.
    naive = kinds.score_task("choice", wanted, copies_g, copies_p, LABELS, "strict", seed=7, n_boot=500)
    width = lambda r: r["metrics"]["accuracy"]["ci95"][1] - r["metrics"]["accuracy"]["ci95"][0]  # noqa: E731
    assert width(naive) < 0.75 * width(copied)


def test_one_document_per_cluster_is_todays_bootstrap_bit_for_bit() -> None:
    golds, preds = _labels(57, seed=3)
    own = [f"doc{i}" for i in range(57)]
    for clusters in (own, [None] * 57):
        for metric_set in (("accuracy", "macro_f1", "weighted_f1"),):
            plain = kinds.score_task(
                "choice", metric_set, golds, preds, LABELS, "strict", seed=11, n_boot=300
            )
            same = kinds.score_task(
                "choice", metric_set, golds, preds, LABELS, "strict", seed=11, n_boot=300, clusters=clusters
            )
            assert same == plain
    x = np.random.default_rng(0).random((57, 3))
    assert np.array_equal(stats.resample_sums(x, 200, 5, own), stats.resample_sums(x, 200, 5))
    summary = draw_stats.summarise_draws([x, x[::-1]], {"m": lambda s: s[..., 0] / 57}, 200, 5, own)
    assert summary == draw_stats.summarise_draws([x, x[::-1]], {"m": lambda s: s[..., 0] / 57}, 200, 5)


def test_cluster_bootstrap_against_a_resample_of_clusters_written_here() -> None:
    """Unequal clusters: each resample draws clusters, keeps all their documents, and the metric is the
    mean over the documents it holds (written here with plain loops)."""
    rng = np.random.default_rng(42)
    sizes = rng.integers(1, 6, 30)
    clusters = [f"n{c}" for c, size in enumerate(sizes) for _ in range(size)]
    correct = (rng.random(len(clusters)) < 0.55).astype(float)
    members = {c: [i for i, x in enumerate(clusters) if x == c] for c in dict.fromkeys(clusters)}
    names = list(members)
    idx = np.random.default_rng(9).integers(0, len(names), size=(400, len(names)))
    reference = []
    for row in idx:
        docs = [i for j in row for i in members[names[j]]]
        reference.append(correct[docs].mean())
    sums = stats.resample_sums(correct.reshape(-1, 1), 400, 9, clusters)
    assert sums[:, 0] / len(clusters) == pytest.approx(np.array(reference), abs=1e-12)


def _durkalski(a: list[bool], b: list[bool], clusters: list[str]) -> float:
    """Durkalski et al. (2003): X = (sum_k (b_k - c_k))^2 / sum_k (b_k - c_k)^2, chi-square with 1 df."""
    per: dict[str, int] = {}
    for x, y, c in zip(a, b, clusters, strict=True):
        per[c] = per.get(c, 0) + (1 if x and not y else -1 if y and not x else 0)
    num, den = sum(per.values()) ** 2, sum(v * v for v in per.values())
    return 1.0 if den == 0 else float(chi2.sf(num / den, 1))


def test_clustered_mcnemar_against_durkalskis_formula() -> None:
    rng = np.random.default_rng(5)
    clusters = [f"p{i // 4}" for i in range(120)]
    a = list(rng.random(120) < 0.7)
    b = list(rng.random(120) < 0.5)
    got = stats.mcnemar_clustered(a, b, clusters)
    assert got.p == pytest.approx(_durkalski(a, b, clusters), rel=1e-12)
    assert got.n_clusters == 30 and got.test == stats.CLUSTERED_MCNEMAR
    assert (got.a_only, got.b_only) == (
        sum(x and not y for x, y in zip(a, b, strict=True)),
        sum(y and not x for x, y in zip(a, b, strict=True)),
    )
    # One document per cluster: McNemar's uncorrected chi-square, (b - c)^2 / (b + c).
    alone = stats.mcnemar_clustered(a, b, [str(i) for i in range(120)])
    assert alone.p == pytest.approx(
        float(chi2.sf((got.a_only - got.b_only) ** 2 / (got.a_only + got.b_only), 1))
    )
    assert stats.mcnemar_clustered([True, False], [True, False], ["x", "y"]).p == 1.0


def _docs(task: str, path: Path, split: str | None = None) -> list:
    loaded = tasks.load_task(Path(tasks.builtin_paths()[task]))
    return data.load_docs(loaded, data.Location("local", str(path)), split).docs


def test_builtin_cluster_keys_on_rows_in_the_release_formats() -> None:
    ddi = {d.id: d.cluster for d in _docs("ddi2013", FIX / "clusters" / "ddi2013" / "test.tsv")}
    assert ddi["DDI-DrugBank.d901.s0.p2"] == ddi["DDI-DrugBank.d901.s1.p0"] == "DDI-DrugBank.d901"
    assert Counter(ddi.values()) == {"DDI-DrugBank.d901": 4, "DDI-DrugBank.d902": 1, "DDI-MedLine.d31": 2}
    mednli = _docs("mednli", FIX / "clusters" / "mednli")
    assert sorted(Counter(d.cluster for d in mednli).values()) == [3, 3, 3]  # three hypotheses per premise
    assert all(d.cluster and d.cluster in d.fields["text"] for d in mednli)
    bionli = _docs("bionli", FIX / "bionli" / "test.csv")
    by_abstract = {d.id.split("-")[0]: set() for d in bionli}
    for d in bionli:
        by_abstract[d.id.split("-")[0]].add(d.cluster)
    assert all(len(c) == 1 for c in by_abstract.values()) and len({d.cluster for d in bionli}) == len(
        by_abstract
    )
    i2b2 = _docs("i2b2_2010", FIX / "i2b2_2010")
    assert {d.cluster for d in i2b2} == {"0901", "0902"}
    assert all(d.id.startswith(f"{d.cluster}:") for d in i2b2)
    emrqa = [d for part in ("test", "train") for d in _docs("emrqa", FIX / "emrqa" / "data.json", part)]
    note_of = {d.id: d.cluster for d in emrqa}
    # Note 0901 is asked about under three i2b2 subsets (titles): one note, one cluster.
    assert len({c for i, c in note_of.items() if "/0901/" in i}) == 1
    assert len(set(note_of.values())) == 2
    cxr = _docs("mimic_cxr", FIX / "mimic_cxr" / "mimic-cxr-reports")
    assert all(d.cluster and d.cluster.startswith("p1") for d in cxr)
    assert len({d.cluster for d in cxr}) < len(cxr)  # several studies of one patient
    # Kaggle's mtsamples.csv: one transcription under two specialties (spacing differs) is one cluster.
    mts = {d.id: d.cluster for d in _docs("mtsample", FIX / "clusters" / "mtsample" / "mtsamples.csv")}
    assert mts["0"] == mts["1"] and len({mts["0"], mts["2"], mts["3"]}) == 3


@pytest.mark.shared
@needs_public_data()
def test_builtin_cluster_keys_on_the_public_samples() -> None:
    ddi = _docs("ddi2013", PUBLIC / "ddi2013.jsonl")
    assert len(ddi) == 300 and len({d.cluster for d in ddi}) == 103  # pairs of one document together
    mts = _docs("mtsample", PUBLIC / "mtsample.jsonl")
    twice = [c for c, k in Counter(d.cluster for d in mts).items() if k > 1]
    assert len(twice) == 16  # one transcription listed under two specialties
    for name in ("medqa", "medmcqa", "pubmedqa", "hoc"):
        assert all(d.cluster is None for d in _docs(name, PUBLIC / f"{name}.jsonl")), name


def test_tasks_without_a_cluster_key_and_a_bad_key(tmp_path: Path) -> None:
    for name in ("pubmedqa", "medqa", "medmcqa", "hoc", "pubmed_sum"):
        assert tasks.load_task(tasks.builtin_paths()[name]).cluster is None, name
    task = tmp_path / "t.yaml"
    body = "name: t\ndataset: {source: rows.jsonl}\ntemplate: '{{ q }}'\ntarget: a\n"
    body += "answer: {type: choice, choices: ['yes', 'no']}\nmetrics: [accuracy]\n"
    task.write_text(body)
    before = tasks.load_task(task).file_hash
    task.write_text(body + "cluster: note_id   # comment\n")
    assert tasks.load_task(task).file_hash == before  # the cluster changes no column and no resume
    task.write_text(body + "cluster: [a]\n")
    with pytest.raises(MibeError, match=r"t.yaml: field 'cluster': "):
        tasks.load_task(task)


def _run(tmp_path: Path, name: str, right: set[str], redact: bool = False) -> Path:
    """A user task with a cluster column, scored by a scripted model right on the ids in `right`."""
    rows = [{"id": f"q{i}", "note_id": f"note {i // 3}", "q": f"question {i}", "a": "yes" if i % 2 else "no"}
            for i in range(75)]  # fmt: skip
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.yaml").write_text(
        "name: t\ndataset: {source: rows.jsonl}\ntemplate: '{{ q }}'\ntarget: a\ncluster: note_id\n"
        "answer: {type: choice, choices: ['yes', 'no']}\nmetrics: [accuracy, macro_f1]\n"
    )
    gold = {r["q"]: r["a"] for r in rows}
    ids = {r["q"]: r["id"] for r in rows}
    reply = lambda r: gold[r.prompt] if ids[r.prompt] in right else {"yes": "no", "no": "yes"}[gold[r.prompt]]  # noqa: E731
    out = tmp_path / name
    config = RunConfig(
        model="scripted", tasks=(str(tmp_path / "t.yaml"),), output_dir=str(out), redact_samples=redact
    )
    api.run(config, backend=Scripted(reply=reply))
    return out


def test_a_run_keeps_clusters_as_hashes_and_compare_and_board_resample_them(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", {f"q{i}" for i in range(75) if i % 5})
    b = _run(tmp_path, "b", {f"q{i}" for i in range(75) if i % 3 == 0}, redact=True)
    c = _run(tmp_path, "c", {f"q{i}" for i in range(75) if i % 4})
    entry = json.loads((a / "results.json").read_text())["tasks"]["t"]
    assert (entry["n"], entry["cluster_key"], entry["n_clusters"]) == (75, "note_id", 25)
    for run in (a, b):
        samples = (run / "samples" / "t.jsonl").read_text()
        assert "note " not in samples  # the cluster's value never reaches the samples
        assert len({json.loads(line)["cluster"] for line in samples.splitlines()}) == 25
    for other in (b, c):  # redacted samples pair on their scores, full ones on their predictions
        task = compare.compare(a, other, n_boot=300)["tasks"][0]
        assert task["n_clusters"] == 25
        acc = next(m for m in task["metrics"] if m["metric"] == "accuracy")
        assert acc["test"] == stats.CLUSTERED_MCNEMAR and acc["n_clusters"] == 25
        assert acc["mcnemar"]["test"] == stats.CLUSTERED_MCNEMAR
    text = compare_text.text(compare.compare(a, c, n_boot=300))
    assert "75 (25 clusters)" in text and "25 clusters of documents made together" in text
    board = render.text(build_board([a, c], published=False, n_boot=100))
    assert "t intervals and tests resample clusters of documents: 25 clusters (note_id)" in board
    rows = [[json.loads(line) for line in (r / "samples" / "t.jsonl").open()] for r in (a, c)]
    from mibe.boards.view_runs import load

    (seen,) = view.diff_runs(load(a), load(c))  # the viewer's A - B test: compare's, on the folders
    assert seen.tested["mcnemar"]["test"] == stats.CLUSTERED_MCNEMAR and seen.tested["n_clusters"] == 25
    docs = [(x["score"], y["score"], x["cluster"]) for x, y in zip(*rows, strict=True)]
    assert seen.tested["mcnemar"]["p"] == pytest.approx(
        _durkalski([x == 1 for x, _, _ in docs], [y == 1 for _, y, _ in docs], [c for _, _, c in docs])
    )


def test_runs_scored_before_clusters_read_as_documents_resampled(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", {f"q{i}" for i in range(75) if i % 5})
    old = _run(tmp_path, "old", {f"q{i}" for i in range(75) if i % 4})
    # A folder written before clusters: no `cluster` in its samples, no keys in results.json.
    path = old / "samples" / "t.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "cluster"}) + "\n" for r in rows))
    results = json.loads((old / "results.json").read_text())
    for key in ("cluster_key", "n_clusters"):
        del results["tasks"]["t"][key]
    (old / "results.json").write_text(json.dumps(results))
    board = render.text(build_board([a, old], published=False, n_boot=100))
    assert "25 clusters (note_id): " in board and "documents resampled: " in board
    # compare takes the clusters from the run that has them
    assert compare.compare(old, a, n_boot=200)["tasks"][0]["n_clusters"] == 25


def test_tasks_show_names_the_cluster_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mibe import cli

    (tmp_path / "rows.jsonl").write_text(json.dumps({"id": 1, "q": "x?", "a": "yes", "note_id": "n"}) + "\n")
    task = tmp_path / "t.yaml"
    body = "name: t\ndataset: {source: rows.jsonl}\ntemplate: '{{ q }}'\ntarget: a\n"
    task.write_text(body + "answer: {type: choice, choices: ['yes', 'no']}\nmetrics: [accuracy]\n")
    assert cli.main(["tasks", "show", str(task)]) == 0
    assert "clusters: none: documents resampled one by one" in capsys.readouterr().out
    task.write_text(task.read_text() + "cluster: note_id\n")
    assert cli.main(["tasks", "show", str(task)]) == 0
    assert "clusters: `note_id`, resampled whole" in capsys.readouterr().out
