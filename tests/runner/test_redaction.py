"""`--redact-samples` whatever the order of events: rows are redacted from the first write, a kill at
any point leaves no text, a resume keeps them so, and text tasks keep statistics, not text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.notes import SUMMARY, main, one_line, run, samples, scripted, workspace

FULL_KEYS = {"prompt", "raw_output"}


def test_rerunning_a_finished_run_with_redact_samples_redacts_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run(workspace(tmp_path), out)
    assert set(samples(out)[0]) >= FULL_KEYS
    again = run(workspace(tmp_path), out, redact_samples=True)
    assert again["tasks"] == first["tasks"]
    assert all(not FULL_KEYS & set(r) and r["redacted"] for r in samples(out))


def test_rows_are_redacted_from_the_first_write_and_a_resume_keeps_them_so(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # killed after two batches, before the task is scored
        run(workspace(tmp_path), out, backend=scripted(fail_after=2), batch_size=1, redact_samples=True)
    cut = samples(out)
    assert len(cut) == 2 and all(not FULL_KEYS & set(r) for r in cut)
    assert {"id", "index", "prediction", "gold", "score"} <= set(cut[0])  # what scoring and resume need
    done = run(workspace(tmp_path), out, batch_size=1)  # resumed without the flag: still redacted
    assert all(r.get("redacted") for r in samples(out))
    assert (
        done["tasks"]["notes"]["metrics"]
        == run(workspace(tmp_path), tmp_path / "plain")["tasks"]["notes"]["metrics"]
    )


def test_a_kill_right_after_results_json_is_written_leaves_no_text(tmp_path: Path, monkeypatch) -> None:
    from mibe.runfolder import writer

    real = writer.write_json_atomic

    def then_killed(path: Path, content: object, private: bool = False) -> None:
        real(path, content, private)
        if path.name == "results.json":
            raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_json_atomic", then_killed)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(workspace(tmp_path), out, redact_samples=True)
    monkeypatch.setattr(writer, "write_json_atomic", real)
    assert all(not FULL_KEYS & set(r) for r in samples(out))
    run(workspace(tmp_path), out, redact_samples=True)  # resumed: the task is final, still no text
    assert all(not FULL_KEYS & set(r) and r["redacted"] for r in samples(out))


def test_a_killed_unredacted_run_resumed_with_the_flag_is_redacted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(workspace(tmp_path), out, backend=scripted(fail_after=2), batch_size=1)
    assert set(samples(out)[0]) >= FULL_KEYS
    run(workspace(tmp_path), out, batch_size=1, redact_samples=True)
    rows = samples(out)
    assert len(rows) == 5 and all(not FULL_KEYS & set(r) for r in rows)
    assert all({"id", "index", "prediction", "gold", "score", "redacted"} <= set(r) for r in rows)


def test_text_tasks_keep_statistics_not_text_and_score_the_same(tmp_path: Path) -> None:
    task_file = workspace(tmp_path, SUMMARY, name="summary")
    full = run(task_file, tmp_path / "full")
    hidden = run(task_file, tmp_path / "hidden", redact_samples=True, batch_size=2)
    rows = samples(tmp_path / "hidden", "summary")
    text = (tmp_path / "hidden" / "samples" / "summary.jsonl").read_text()
    assert "secret" not in text and "heart" not in text
    assert all(set(r["stats"]) == {"rouge_l"} and "gold" not in r for r in rows)
    assert hidden["tasks"]["summary"]["metrics"] == full["tasks"]["summary"]["metrics"]


def test_commands_needing_the_text_say_the_task_was_redacted(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    run(workspace(tmp_path), out, redact_samples=True)
    code, err = main("rescore", str(out), "--output-dir", str(tmp_path / "re"), capsys=capsys)
    one_line(code, err, "task notes was run with --redact-samples")
    code, err = main("audit", str(out), capsys=capsys)
    one_line(code, err, "task notes was run with --redact-samples")
