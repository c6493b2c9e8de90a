"""Defects of the backends found by a hostile pass, each one line now (docs/reliability.md): devices
this machine lacks, a recorded device reused by rescore and judge, a judge named as --model, negative
token budgets in messages, a malformed IPv6 URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mibe import cli, prompts
from mibe.types import Doc, MibeError

NOWHERE = "cuda:99"  # no machine has it: the same outcome with or without a GPU


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def scored(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A run of the tiny model on a choice task and a text task with a rubric, then recorded as if it
    had run on a GPU this machine lacks."""
    run = tmp_path_factory.mktemp("scored") / "run"
    argv = ["run", "--model", str(tiny_llama), "--demo", "--tasks", "pubmedqa,pubmed_sum", "--limit", "2"]
    argv += ["--max-new-tokens", "4", "--bootstrap", "20", "--bertscore-model", "", "--output-dir", str(run)]
    assert cli.main(argv) == 0
    results = json.loads((run / "results.json").read_text())
    results["config"]["device"] = NOWHERE
    (run / "results.json").write_text(json.dumps(results))
    return {"run": run, "model": tiny_llama}


def test_a_device_this_machine_lacks_is_one_line(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Before: torch's AssertionError ("Torch not compiled with CUDA enabled") once the model moved.
    argv = ["run", "--model", str(tiny_llama), "--demo", "--tasks", "pubmedqa", "--limit", "1"]
    assert cli.main([*argv, "--device", NOWHERE, "--output-dir", str(tmp_path / "r")]) == 2
    err = _one_line(capsys)
    assert err.startswith(f"mibe: error: --device {NOWHERE}: this machine ") and "--device cpu" in err
    assert not (tmp_path / "r" / "run.json").exists()


def test_rescore_never_reuses_a_recorded_device_the_machine_lacks(
    scored: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Before: `rescore --parser model` loaded the extractor on the run's device: an AssertionError.
    argv = ["rescore", str(scored["run"]), "--parser", "model", "--extractor", f"hf:{scored['model']}"]
    argv += ["--tasks", "pubmedqa"]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert f"mibe: the run was scored on {NOWHERE}, which this machine lacks; using cpu" in err
    rescored = json.loads((tmp_path / "a" / "results.json").read_text())
    assert rescored["tasks"]["pubmedqa"]["n"] == 2
    assert rescored["endpoints"][-1] == {
        "role": "extractor", "spec": f"hf:{scored['model']}", "backend": "hf", "url": None,
        "model": str(scored["model"]), "where": "local", "credentialed": [], "authorisation": None,
        "key_env": None,
    }  # fmt: skip
    assert cli.main([*argv, "--device", NOWHERE, "--output-dir", str(tmp_path / "b")]) == 2
    assert f"--device {NOWHERE}: this machine" in _one_line(capsys)
    assert cli.main([*argv, "--device", "cpu", "--output-dir", str(tmp_path / "c")]) == 0
    assert "using cpu" not in capsys.readouterr().err


def _judge(scored: dict[str, Path], out: Path, *flags: str) -> int:
    argv = ["judge", str(scored["run"]), "--tasks", "pubmed_sum", "--limit", "1", "--output-dir", str(out)]
    return cli.main([*argv, *flags])


def test_judge_runs_where_the_run_ran_only_when_this_machine_can(
    scored: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    judge = ["--judge", f"hf:{scored['model']}", "--judge-max-new-tokens", "4"]
    assert _judge(scored, tmp_path / "a", *judge) == 0
    assert f"scored on {NOWHERE}, which this machine lacks; using cpu" in capsys.readouterr().err
    endpoints = json.loads((tmp_path / "a" / "results.json").read_text())["endpoints"]
    assert [(e["role"], e["where"], e["spec"]) for e in endpoints] == [
        ("model", "local", str(scored["model"])),  # as the judged run recorded it
        ("judge", "local", f"hf:{scored['model']}"),
    ]
    assert _judge(scored, tmp_path / "b", *judge, "--device", NOWHERE) == 2
    assert f"--device {NOWHERE}: this machine" in _one_line(capsys)


def test_a_missing_judge_is_named_by_its_flag(
    scored: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Before: "--model /nonexistent/judge: no such folder" for a model the user gave as --judge.
    assert _judge(scored, tmp_path / "a", "--judge", "hf:/nonexistent/judge", "--device", "cpu") == 2
    err = _one_line(capsys)
    assert (
        err.startswith("mibe: error: --judge hf:/nonexistent/judge: no such folder") and "--model" not in err
    )


def test_a_reply_room_filling_the_judge_context_is_said_without_a_negative_budget(
    scored: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Before: "... more than the -976 the judge leaves for it".
    judge = ["--judge", f"hf:{scored['model']}", "--judge-max-new-tokens", "2000", "--device", "cpu"]
    assert _judge(scored, tmp_path / "a", *judge) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the self-preference warning
    assert err.startswith("mibe: error: --judge hf:"), err
    assert "its reply may take 2000 tokens, all of the judge's 1024-token context" in err, err
    assert "--judge-max-new-tokens" in err and "-976" not in err


def test_fitting_into_no_room_never_prints_a_negative_budget() -> None:
    doc = Doc("d1", {"text": "a b c"}, "x")
    with pytest.raises(
        MibeError, match="but the model allows 0 even with its document text removed"
    ) as caught:
        prompts.fit("{{ text }}", doc, [], "text", len, list, str, -12)
    assert "-12" not in str(caught.value)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--backend", "openai", "--base-url", "http://[::1/v1", "--model", "m"],
         "mibe: error: --base-url http://[::1/v1: not a URL (Invalid IPv6 URL)"),
        (["--model", "{tiny}", "--judge", "openai:http://[::1/v1#j"],
         "mibe: error: --judge openai:http://[::1/v1#j: --base-url http://[::1/v1: not a URL"),
        (["--model", "{tiny}", "--parser", "model", "--extractor", "openai:http://[::1:8/v1#x"],
         "mibe: error: --extractor openai:http://[::1:8/v1#x: --base-url http://[::1:8/v1: not a URL"),
    ],
)  # fmt: skip
def test_a_malformed_ipv6_url_is_one_line(
    flags: list[str], said: str, tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Before: "mibe: unexpected failure: ValueError: Invalid IPv6 URL" (exit 1).
    argv = ["run", "--demo", "--tasks", "pubmed_sum", "--output-dir", str(tmp_path / "r")]
    argv += [f.format(tiny=tiny_llama) for f in flags]
    assert cli.main(argv) == 2
    assert _one_line(capsys).startswith(said)
