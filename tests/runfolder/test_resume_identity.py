"""Resume identity, declared once (RunConfig's field metadata, the model's description): what changes
outputs (the weights, the extractor, what an endpoint serves) blocks a resume; what does not (an
endpoint's URL, batch size) never does; and a folder written before this identity existed resumes
when nothing changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import pytest

from mibe import cli, lineage
from mibe.types import RunConfig
from tests.support.loopback import JSONHandler, serving


def _copy(tiny_llama: Path, target: Path) -> Path:
    shutil.copytree(tiny_llama, target)
    return target


def _flip_weights(model: Path) -> None:
    """Other weights of the same shapes under the same config.json (a fine-tune): one byte changed
    near the end of the weights file, where tensors are stored (never the header)."""
    (path,) = model.glob("*.safetensors")
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x01
    path.write_bytes(bytes(data))


def _run(model: Path, out: Path, *extra: str) -> int:
    argv = ["run", "--model", str(model), "--tasks", "pubmedqa", "--demo", "--limit", "2"]
    return cli.main([*argv, "--max-new-tokens", "2", "--bootstrap", "20", "--output-dir", str(out), *extra])


def test_the_volatile_settings_are_declared_on_the_config() -> None:
    assert {"output_dir", "batch_size", "base_url", "judge", "redact_samples"} <= RunConfig.volatile()
    assert not {"model", "seed", "chat_template", "reasoning_budget", "extractor"} & RunConfig.volatile()


def test_the_weights_fingerprint_sees_other_weights_under_the_same_config(
    tiny_llama: Path, tmp_path: Path
) -> None:
    model = _copy(tiny_llama, tmp_path / "model")
    before = lineage.fingerprint(str(model))
    assert before == lineage.fingerprint(str(tiny_llama)) and before is not None
    _flip_weights(model)
    assert lineage.fingerprint(str(model)) != before
    assert lineage.fingerprint("meta-llama/Llama-2-7b-hf") is None  # a hub id: no local files


@pytest.mark.slow
def test_changed_weights_never_resume_into_a_folder(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model, out = _copy(tiny_llama, tmp_path / "model"), tmp_path / "run"
    assert _run(model, out) == 0
    _flip_weights(model)
    assert _run(model, out) == 2
    assert "a different model (weights:" in capsys.readouterr().err


def test_a_folder_written_before_the_weights_were_recorded_resumes(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    assert _run(tiny_llama, out) == 0
    run_json = json.loads((out / "run.json").read_text())
    # As the mibe before this change wrote it: no fingerprints, and base_url part of the config.
    for key in ("weights", "adapter_weights"):
        del run_json["model"][key]
    run_json["config"]["base_url"] = None
    (out / "run.json").write_text(json.dumps(run_json))
    before = json.loads((out / "results.json").read_text())["tasks"]
    assert _run(tiny_llama, out) == 0
    assert json.loads((out / "results.json").read_text())["tasks"] == before
    assert json.loads((out / "run.json").read_text())["model"]["weights"] == lineage.fingerprint(
        str(tiny_llama)
    )


@pytest.mark.slow
def test_a_changed_extractor_never_resumes_and_overwrite_clears_its_cache(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    extractor, out = _copy(tiny_llama, tmp_path / "extractor"), tmp_path / "run"
    flags = ("--parser", "model", "--extractor", f"hf:{extractor}")
    assert _run(tiny_llama, out, *flags) == 0
    assert (out / "extractions" / "pubmedqa.jsonl").is_file()
    _flip_weights(extractor)  # the same spec, another model behind it
    assert _run(tiny_llama, out, *flags) == 2
    assert "a different extractor (weights:" in capsys.readouterr().err
    with (out / "extractions" / "pubmedqa.jsonl").open("a") as cache:  # a row only the old cache holds
        cache.write(json.dumps({"id": "sentinel", "value": "yes", "extractor": "old"}) + "\n")
    assert _run(tiny_llama, out, *flags, "--overwrite") == 0
    assert "sentinel" not in (out / "extractions" / "pubmedqa.jsonl").read_text()  # the cache was cleared
    results = json.loads((out / "results.json").read_text())
    assert results["extractor"]["weights"] == lineage.fingerprint(str(extractor))


# ------------------------------------------------------------------------------------ a served model


class _Served(JSONHandler):
    """An OpenAI-compatible server: its /models entry names a `root`, and /version answers."""

    root: ClassVar[str] = "/models/llama-a"

    def do_GET(self) -> None:
        if self.path.endswith("/version"):
            self._reply({"version": "0.6.3"})
        else:
            self._reply({"data": [{"id": "m", "root": type(self).root, "max_model_len": 4096}]})

    def do_POST(self) -> None:
        body = self._body()
        if self.path.endswith("/chat/completions"):
            choice = {"index": 0, "message": {"role": "assistant", "content": "yes"}, "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": " yes", "finish_reason": "stop"}
        self._reply({"model": body["model"], "choices": [choice]})


def _served(url: str, out: Path) -> int:
    argv = ["run", "--backend", "openai", "--base-url", url, "--model", "m", "--tasks", "pubmedqa", "--demo"]
    return cli.main([*argv, "--bootstrap", "20", "--output-dir", str(out)])


def test_a_served_model_is_what_the_server_serves_not_its_url(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    _Served.root = "/models/llama-a"
    with serving(_Served) as url:
        assert _served(url, out) == 0
    model = json.loads((out / "run.json").read_text())["model"]
    assert model["served"] == {
        "id": "m",
        "root": "/models/llama-a",
        "max_model_len": 4096,
        "version": "0.6.3",
    }
    with serving(_Served) as other:  # another URL (another port) serving the same model: resumes
        assert other != url and _served(other, out) == 0
        _Served.root = "/models/llama-b"  # the same name now serves other weights: refused
        assert _served(other, out) == 2
    assert (
        "a different model (served.root: '/models/llama-a' -> '/models/llama-b')" in capsys.readouterr().err
    )
