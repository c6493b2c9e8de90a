"""Document shards: `mibe run --shard I/N` in N folders, `mibe merge` into one run equal to a
one-process run at --batch-size 1 (metrics, intervals and rows), a shard killed and resumed, each
refusal one line, `merge --status` (docs/scale-out.md)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mibe import cli
from mibe.runfolder import sharding
from tests.support.demo import ID_FIELD, make_data


def run_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--data-dir", str(data), "--batch-size", "1",
            "--bootstrap", "100", "--max-new-tokens", "12", "--output-dir", str(out), *extra]  # fmt: skip


def rows(run: Path, task: str) -> dict[tuple, dict]:
    lines = (run / "samples" / f"{task}.jsonl").read_text().splitlines()
    found = [json.loads(line) for line in lines]
    return {(r.get("draw"), r.get("permutation"), r["id"]): r for r in found}


def shard_then_merge(model: Path, data: Path, tmp: Path, *extra: str) -> tuple[Path, Path]:
    whole = tmp / "whole"
    assert cli.main(run_args(model, data, whole, *extra)) == 0
    parts = []
    for i in range(3):
        parts.append(tmp / f"shard{i}")
        assert cli.main(run_args(model, data, parts[-1], *extra, "--shard", f"{i}/3")) == 0
    merged = tmp / "merged"
    assert cli.main(["merge", *map(str, parts), "--output-dir", str(merged)]) == 0
    return whole, merged


def assert_equal_runs(whole: Path, merged: Path, tasks: list[str]) -> None:
    one = json.loads((whole / "results.json").read_text())
    both = json.loads((merged / "results.json").read_text())
    assert both["tasks"] == one["tasks"]  # every metric, interval, count and note
    assert "shard" not in both and "shard" not in json.loads((merged / "run.json").read_text())
    for task in tasks:
        assert rows(merged, task) == rows(whole, task)
        order = [json.loads(line) for line in (merged / "samples" / f"{task}.jsonl").open()]
        keys = [(r.get("draw") or 0, r.get("permutation") or 0, r["index"]) for r in order]
        assert keys == sorted(keys)  # document order within each draw and ordering, in their order
    assert (
        json.loads((merged / "run.json").read_text())["protocols"]
        == json.loads((whole / "run.json").read_text())["protocols"]
    )


@pytest.mark.slow
def test_three_shards_merge_to_the_one_process_run(tiny_llama: Path, tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    whole, merged = shard_then_merge(tiny_llama, data, tmp_path, "--tasks", "pubmedqa,pubmed_sum")
    assert_equal_runs(whole, merged, ["pubmedqa", "pubmed_sum"])
    held = []
    for i in range(3):
        shard = json.loads((tmp_path / f"shard{i}" / "results.json").read_text())
        assert shard["tasks"]["pubmedqa"]["metrics"] == {}  # counts only: no statistic on a shard
        expected = shard["shard"]["expected"]["pubmedqa"]
        assert shard["tasks"]["pubmedqa"]["n"] == len(expected)
        assert shard["shard"]["rule"] == sharding.RULE and shard["shard"]["of"] == 3
        assert all(sharding.assigned("pubmedqa", d, 3) == i for d in expected)
        held += expected
    assert sorted(held) == sorted(i for _, _, i in rows(whole, "pubmedqa"))  # each document in one shard


@pytest.mark.slow
def test_few_shot_draws_merge(tiny_llama: Path, tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    extra = ("--tasks", "pubmedqa", "--num-fewshot", "1", "--fewshot-seeds", "1,2")
    whole, merged = shard_then_merge(tiny_llama, data, tmp_path, *extra)
    assert_equal_runs(whole, merged, ["pubmedqa"])
    assert {d for d, _, _ in rows(merged, "pubmedqa")} == {1, 2}


@pytest.mark.slow
def test_choice_permutations_merge(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Each shard scores its documents under every ordering; the merge equals the one-process run:
    # per-ordering metrics, mean +- sd, the two-level interval, consistency and position bias.
    data = make_data(tmp_path / "data")
    extra = ("--tasks", "medqa,pubmedqa", "--choice-permutations", "3")
    whole, merged = shard_then_merge(tiny_llama, data, tmp_path, *extra)
    assert_equal_runs(whole, merged, ["medqa", "pubmedqa"])
    entry = json.loads((merged / "results.json").read_text())["tasks"]["medqa"]
    assert entry["choice_permutations"] == 3 and sorted(entry["permutations"]) == ["0", "1", "2"]
    assert len(entry["metrics"]["accuracy"]["values"]) == 3 and entry["consistency"] is not None
    assert {k for _, k, _ in rows(merged, "medqa")} == {0, 1, 2}
    assert {k for _, k, _ in rows(merged, "pubmedqa")} == {None}  # not a letter task: scored once
    # --status counts every ordering: a shard that lost its last row lacks that (ordering, document)
    parts = [tmp_path / f"shard{i}" for i in range(3)]
    samples = parts[1] / "samples" / "medqa.jsonl"
    lines = samples.read_text().splitlines()
    samples.write_text("\n".join(lines[:-1]) + "\n")
    lost = json.loads(lines[-1])
    capsys.readouterr()
    assert cli.main(["merge", "--status", *map(str, parts)]) == 1
    status = capsys.readouterr().out.splitlines()
    expected = len(json.loads((parts[1] / "run.json").read_text())["shard"]["expected"]["medqa"])
    assert status[1] == (
        f"shard 1/3 ({parts[1]}): medqa lacks 1 of {3 * expected} documents ({lost['id']} (ordering 2))"
    )
    # with few-shot draws too: refused in one line, as without --shard
    argv = ["run", "--model", "m", "--demo", "--num-fewshot", "1", "--fewshot-seeds", "1,2"]
    one_line_error(capsys, [*argv, "--choice-permutations", "2", "--shard", "0/2"], "with --fewshot-seeds")


@pytest.mark.slow
def test_loglikelihood_merge(tiny_llama: Path, tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    extra = ("--tasks", "medqa", "--scoring", "loglikelihood")
    whole, merged = shard_then_merge(tiny_llama, data, tmp_path, *extra)
    assert_equal_runs(whole, merged, ["medqa"])
    assert json.loads((merged / "results.json").read_text())["tasks"]["medqa"]["calibration"]


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str], *needles: str) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]


@pytest.mark.parametrize("spec", ["3/3", "-1/3", "1", "a/b", "0/0", "1/2/3"])
def test_a_bad_shard_is_one_line(capsys: pytest.CaptureFixture, spec: str) -> None:
    one_line_error(capsys, ["run", "--model", "m", "--demo", f"--shard={spec}"], f"--shard {spec}", "I/N")


def test_the_rule_is_stable_and_spreads() -> None:
    # sha256 of "pubmedqa\0doc-1": the same in every process and on every machine.
    assert sharding.assigned("pubmedqa", "doc-1", 1000) == sharding.assigned("pubmedqa", "doc-1", 1000)
    code = "from mibe.runfolder import sharding; print(sharding.assigned('pubmedqa', 'doc-1', 1000))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "7"})  # fmt: skip
    assert int(other.stdout) == sharding.assigned("pubmedqa", "doc-1", 1000)
    counts = [0] * 4
    for i in range(400):
        counts[sharding.assigned("t", str(i), 4)] += 1
    assert min(counts) > 60  # no shard starved


@pytest.mark.slow
def test_merge_refusals_and_status(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_data(tmp_path / "data")
    parts = [tmp_path / f"s{i}" for i in range(3)]
    for i in (0, 1):
        assert cli.main(run_args(tiny_llama, data, parts[i], "--tasks", "pubmedqa", "--shard", f"{i}/3")) == 0
    capsys.readouterr()
    out = str(tmp_path / "m")
    one_line_error(
        capsys, ["merge", str(parts[0]), str(parts[1]), "--output-dir", out], "shard 2/3 is missing"
    )
    one_line_error(capsys, ["merge", str(parts[0]), str(parts[0]), "--output-dir", out], "both are shard 0/3")
    # status: shard 2 given but empty (only run.json, as a job killed before its first document)
    other = tmp_path / "other"
    assert (
        cli.main(run_args(tiny_llama, data, other, "--tasks", "pubmedqa", "--seed", "7", "--shard", "2/3"))
        == 0
    )
    capsys.readouterr()
    one_line_error(
        capsys, ["merge", *map(str, parts[:2]), str(other), "--output-dir", out], "a different config"
    )
    two_shards = tmp_path / "two"
    assert cli.main(run_args(tiny_llama, data, two_shards, "--tasks", "pubmedqa", "--shard", "1/2")) == 0
    capsys.readouterr()
    one_line_error(capsys, ["merge", str(parts[0]), str(two_shards), "--output-dir", out], "number of shards")
    one_line_error(capsys, ["merge", str(parts[0]), str(data)], "no run.json")
    one_line_error(capsys, ["leaderboard", str(parts[0])], "shard 0/3", "mibe merge")
    one_line_error(
        capsys, ["rescore", str(parts[0]), "--output-dir", str(tmp_path / "r")], "shard 0/3", "mibe merge"
    )
    # a shard whose samples lost documents (as a kill would leave them): named, with the shard
    assert cli.main(run_args(tiny_llama, data, parts[2], "--tasks", "pubmedqa", "--shard", "2/3")) == 0
    samples = parts[2] / "samples" / "pubmedqa.jsonl"
    lines = samples.read_text().splitlines()
    samples.write_text("\n".join(lines[:-1]) + "\n")
    capsys.readouterr()
    one_line_error(capsys, ["merge", *map(str, parts), "--output-dir", out], "shard 2/3", "lacks 1 documents")
    assert cli.main(["merge", "--status", *map(str, parts)]) == 1
    status = capsys.readouterr().out.splitlines()
    assert status[0].startswith("shard 0/3") and status[0].endswith("complete")
    assert "shard 2/3" in status[2] and "lacks 1 of" in status[2]


@pytest.mark.slow
def test_a_shard_killed_resumes(tiny_llama: Path, tmp_path: Path) -> None:
    data = make_data(tmp_path / "data", copies=8)
    shard = run_args(tiny_llama, data, tmp_path / "s0", "--tasks", "pubmedqa", "--shard", "0/2")
    argv = [sys.executable, "-m", "mibe.cli", *shard]
    samples = tmp_path / "s0" / "samples" / "pubmedqa.jsonl"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (samples.is_file() and samples.read_text().count("\n") >= 2):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    held = samples.read_text().count("\n")
    expected = json.loads((tmp_path / "s0" / "run.json").read_text())["shard"]["expected"]["pubmedqa"]
    assert 2 <= held < len(expected)  # killed mid-shard
    assert subprocess.run(argv, capture_output=True, timeout=600).returncode == 0
    ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()]
    assert sorted(ids) == sorted(expected)  # each once: nothing lost, nothing scored twice
    rest = tmp_path / "s1"
    assert cli.main(run_args(tiny_llama, data, rest, "--tasks", "pubmedqa", "--shard", "1/2")) == 0
    assert cli.main(["merge", str(tmp_path / "s0"), str(rest), "--output-dir", str(tmp_path / "m")]) == 0


def test_dry_run_plans_each_shard(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_data(tmp_path / "data")
    argv = ["run", "--model", str(tiny_llama), "--data-dir", str(data), "--tasks", "pubmedqa,medqa",
            "--dry-run", "--shards", "3", "--throughput", "5"]  # fmt: skip
    assert cli.main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    total = next(line.split() for line in err if line.startswith("total "))
    prompt, answers = (int(total[k].replace(",", "")) for k in (3, 5))
    shards = [line.split() for line in err if re.match(r"[0-2]/3 ", line)]
    assert [s[0] for s in shards] == ["0/3", "1/3", "2/3"]
    ids = {
        t: [json.loads(x)[ID_FIELD[t]] for x in (data / f"{t}.jsonl").open()] for t in ("pubmedqa", "medqa")
    }
    for i, s in enumerate(shards):  # each shard's documents by the rule, counted independently
        assert int(s[1]) == sum(sharding.assigned(t, d, 3) == i for t in ids for d in ids[t])
    tokens = [int(s[2].replace(",", "")) for s in shards]
    assert sum(tokens) == prompt + answers  # every token of the plan in exactly one shard
    seconds = [int(m[1]) * 60 + int(m[2]) for s in shards if (m := re.fullmatch(r"(\d+)m(\d\d)s", s[3]))]
    assert seconds == [round(t / 5) for t in tokens]  # tokens / --throughput
    assert cli.main(["run", "--model", "m", "--demo", "--shards", "3"]) == 2
    assert "add --dry-run" in capsys.readouterr().err


@pytest.mark.slow
def test_redacted_shards_merge_their_statistics(tiny_llama: Path, tmp_path: Path) -> None:
    # --redact-samples: no text survives in a shard, so its rows keep per-document statistics
    # (ROUGE, BERTScore's availability) and the merge aggregates them as the one run does.
    data = make_data(tmp_path / "data", copies=2)
    extra = ("--tasks", "pubmed_sum", "--redact-samples")
    whole, merged = shard_then_merge(tiny_llama, data, tmp_path, *extra)
    assert_equal_runs(whole, merged, ["pubmed_sum"])
    assert all("raw_output" not in r and "stats" in r for r in rows(merged, "pubmed_sum").values())
