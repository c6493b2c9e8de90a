"""Hosted-model baselines (issue 30 item 4): `--tasks public`, endpoint context limits, pricing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mibe.runner import api
from mibe.types import RunConfig
from tests.support import demo, logs
from tests.support.loopback import Recorder, recorder, serving
from tests.support.runfiles import results, samples

# The paper's "8 datasets without privacy concerns" (the ones it sent to ChatGPT and GPT-4).
PAPER_PUBLIC = {"pubmedqa", "medqa", "medmcqa", "ddi2013", "hoc", "mtsample", "pubmed_sum", "bionli"}


@pytest.mark.slow
def test_tasks_public_runs_exactly_the_non_credentialed_builtins(tiny_llama: Path, tmp_path: Path) -> None:
    from mibe.backends.hf import HFBackend

    out = tmp_path / "r"
    backend = HFBackend(str(tiny_llama))
    demo.run(tiny_llama, out, ("public",), backend, limit=1, max_new_tokens=2, bootstrap=0)
    assert set(results(out)["tasks"]) == PAPER_PUBLIC


def test_tasks_list_marks_the_public_group(capsys: pytest.CaptureFixture[str]) -> None:
    from mibe.cli import main

    assert main(["tasks", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = {line.split()[0] for line in lines[1:] if "all, public" in line}
    assert marked == PAPER_PUBLIC


@pytest.fixture(scope="module")
def short_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LLaMA with a 160-token context: the demo documents outgrow it."""
    from tests.support import tinymodel
    from tests.support.paths import REPO

    return tinymodel.build(tmp_path_factory.mktemp("short-llama"), REPO, context=160)


class Bodies(Recorder):
    """A loopback server that also keeps each request's body."""

    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self._body()
        type(self).bodies.append({"route": self.path.split("/v1/", 1)[-1], **body})
        self._record("POST")
        if self.path.endswith("chat/completions"):
            message = {"role": "assistant", "content": "yes"}
            self._reply({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
        else:
            self._reply({"choices": [{"index": 0, "text": "yes", "finish_reason": "stop"}]})


def bodies() -> type[Bodies]:
    return type("Served", (Bodies,), {"seen": [], "bodies": []})


@pytest.mark.slow
def test_an_endpoint_with_max_model_len_truncates_as_the_hf_backend(
    short_llama: Path, tmp_path: Path
) -> None:
    options: dict[str, Any] = dict(
        tasks=("pubmedqa", "pubmed_sum"), demo=True, protocol="paper", max_new_tokens=4, bootstrap=0,
        bertscore_model="",
    )  # fmt: skip
    local = tmp_path / "hf"
    api.run(RunConfig(model=str(short_llama), output_dir=str(local), **options))
    served = bodies()
    with serving(served) as url:
        config = RunConfig(
            model="m", backend="openai", base_url=url, tokenizer=str(short_llama), max_model_len=160,
            output_dir=str(tmp_path / "api"), **options,
        )  # fmt: skip
        api.run(config)
    hf = results(local)["tasks"]
    endpoint = results(tmp_path / "api")
    for task in options["tasks"]:
        assert hf[task]["truncated"] > 0  # the documents outgrow 160 tokens: cut inside the document
        assert endpoint["tasks"][task]["truncated"] == hf[task]["truncated"]
        assert [s["prompt"] for s in samples(tmp_path / "api", task)] == [
            s["prompt"] for s in samples(local, task)
        ]
    assert endpoint["model"]["max_context"] == 160 and endpoint["model"]["tokenizer"] == str(short_llama)
    # sent as text (a stand-in tokenizer's ids would mean other words to a hosted model)
    sent = sorted(b["prompt"] for b in served.bodies)
    assert sent == sorted(s["prompt"] for t in options["tasks"] for s in samples(local, t))


def test_a_chat_only_endpoint_under_the_paper_protocol_gets_the_prompt_as_one_user_message(
    tmp_path: Path,
) -> None:
    served = bodies()
    with serving(served) as url:
        config = RunConfig(
            model="m", backend="openai", base_url=url, tasks=("pubmedqa",), demo=True, protocol="paper",
            chat_template="server", max_new_tokens=4, bootstrap=0, output_dir=str(tmp_path / "r"),
        )  # fmt: skip
        api.run(config)
    prompts = [s["prompt"] for s in samples(tmp_path / "r", "pubmedqa")]
    assert {b["route"] for b in served.bodies} == {"chat/completions"}
    sent = [b["messages"] for b in served.bodies]
    assert all(len(m) == 1 and m[0]["role"] == "user" for m in sent)
    paper = results(tmp_path / "r")["tasks"]["pubmedqa"]["protocol"]
    assert (paper["chat_template"], paper["chat_template_source"], paper["parser"]) == (
        "server",
        "server",
        "paper",
    )
    assert sorted(m[0]["content"] for m in sent) == sorted(
        p.removeprefix("<|user|>\n").removesuffix("\n<|assistant|>\n") for p in prompts
    )


def test_dry_run_counts_tokens_with_a_tokenizer_and_prices_the_plan(tiny_llama: Path) -> None:
    from mibe.runner import planning

    lines: list[str] = []
    with serving(recorder()) as url:
        config = RunConfig(
            model="m", backend="openai", base_url=url, tokenizer=str(tiny_llama), tasks=("pubmedqa", "hoc"),
            demo=True, dry_run=True, price=(2.5, 10.0),
        )  # fmt: skip
        with logs.collected(lines):
            api.run(config)
        bare: list[str] = []
        with logs.collected(bare):
            api.run(
                RunConfig(model="m", backend="openai", base_url=url, tasks=("hoc",), demo=True, dry_run=True)
            )
    table = lines[-1].splitlines()
    assert table[0].split("  ")[-1].strip() == planning.COST
    rows = {line.split()[0]: line.split()[1:] for line in table[2:5]}
    from mibe.backends.hf import HFBackend

    hf: list[str] = []
    local = RunConfig(model=str(tiny_llama), tasks=("pubmedqa", "hoc"), demo=True, dry_run=True)
    with logs.collected(hf):
        api.run(local, backend=HFBackend(str(tiny_llama)))
    counted = {line.split()[0]: line.split()[1:] for line in hf[-1].splitlines()[2:5]}
    for task in ("pubmedqa", "hoc", "total"):
        prompt, answer = (int(x.replace(",", "")) for x in (rows[task][2], rows[task][4]))
        assert rows[task][:5] == counted[task][:5]  # the tokenizer counts as the local model's run does
        assert float(rows[task][5].replace(",", "")) == pytest.approx(
            round((prompt * 2.5 + answer * 10) / 1e6, 2)
        )
    assert "--price" in "\n".join(lines) and planning.BYTES_NOTE not in "\n".join(lines)
    assert planning.BYTES_NOTE in bare[-1]  # no tokenizer: the table says its counts are bytes


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--dry-run", "--price", "2.5"], "--price 2.5: write IN,OUT"),
        (["--dry-run", "--price", "a,b"], "--price a,b: write IN,OUT"),
        (["--price", "2.5,10"], "--price 2.5,10: only with --dry-run"),
        (["--tokenizer", "t"], "--tokenizer t: only with --backend openai"),
        (
            ["--backend", "openai", "--scoring", "loglikelihood", "--tokenizer", "t"],
            "counts and cuts prompts only",
        ),
        (["--chat-template", "server"], "--chat-template server: only with --backend openai"),
    ],
)
def test_hosted_flags_refuse_bad_input_in_one_line(
    flags: list[str], says: str, tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mibe.cli import main

    assert main(demo.run_argv(tiny_llama, tmp_path / "r", *flags)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
