"""One policy for every model endpoint (mibe.backends.policy): the evaluated model, judges and the
extractor each get their own key, their own credentialed authorisation, an announcement before their
first request and a record in results.json. Servers are loopback `http.server`s; "remote" endpoints
live in a fresh network namespace whose `lo` also holds 10.9.8.7 and 10.9.8.8, addresses that are
not loopback, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mibe.backends import factory, policy
from mibe.backends.endpoint import Machine
from mibe.runner import api, extract, judge_run
from mibe.types import MibeError, RunConfig
from tests.support import logs
from tests.support.loopback import recorder, serving
from tests.support.paths import REPO

KEYS = {"OPENAI_API_KEY": "sk-default-0000", "MODEL_KEY": "sk-model-1111", "JUDGE_KEY": "sk-judge-2222"}


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def _run(tmp_path: Path, model_url: str, judge: str, **options: Any) -> tuple[dict, list[str]]:
    config = RunConfig(
        model="m", backend="openai", base_url=model_url, tasks=("pubmed_sum",), demo=True, limit=2,
        max_new_tokens=4, bootstrap=20, judge=(judge,), output_dir=str(tmp_path / "run"),
        bertscore_model="", **options,
    )  # fmt: skip
    with logs.collected() as said:
        return api.run(config), said


def _auth(seen: list[tuple[str, str, str | None]]) -> set[str | None]:
    return {auth for _, _, auth in seen}


def test_each_endpoint_gets_only_its_own_key(tmp_path: Path, keys: None) -> None:
    # Before: the evaluated model's key (OPENAI_API_KEY or --api-key-env) went to every judge.
    model, judge = recorder(), recorder()
    with serving(model) as model_url, serving(judge) as judge_url:
        out, said = _run(tmp_path, model_url, f"openai:{judge_url}#j", api_key_env="MODEL_KEY")
    assert _auth(model.seen) == {"Bearer sk-model-1111"}
    assert _auth(judge.seen) == {None}  # the spec names no key: none is sent
    assert any(route == "completions" for _, route, _ in judge.seen)  # the judge was asked
    written = (tmp_path / "run" / "results.json").read_text() + (tmp_path / "run" / "run.json").read_text()
    assert not any(value in written for value in KEYS.values())
    assert [(e["role"], e["url"], e["where"], e["key_env"]) for e in out["endpoints"]] == [
        ("model", model_url, "loopback", "MODEL_KEY"),
        ("judge", judge_url, "loopback", None),
    ]
    assert [line for line in said if " endpoint " in line] == [
        f"mibe: model endpoint {model_url} (loopback, model m): credentialed tasks sent: none; "
        "API key from $MODEL_KEY",
        f"mibe: judge endpoint {judge_url} (loopback, model j): credentialed tasks sent: none; no API key",
    ]


def test_a_judge_key_comes_from_its_spec(tmp_path: Path, keys: None) -> None:
    model, judge = recorder(), recorder()
    with serving(model) as model_url, serving(judge) as judge_url:
        out, _ = _run(tmp_path, model_url, f"openai:{judge_url}#j?key_env=JUDGE_KEY")
    assert _auth(model.seen) == {"Bearer sk-default-0000"}  # the evaluated model's default
    assert _auth(judge.seen) == {"Bearer sk-judge-2222"}
    assert [e["key_env"] for e in out["endpoints"]] == ["OPENAI_API_KEY", "JUDGE_KEY"]


def test_a_judge_key_variable_that_is_not_set_is_one_line_before_any_request(
    tmp_path: Path, keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUDGE_KEY")
    model, judge = recorder(), recorder()
    with serving(model) as model_url, serving(judge) as judge_url:
        spec = f"openai:{judge_url}#j?key_env=JUDGE_KEY"
        with pytest.raises(
            MibeError, match=r"^--judge .*: key_env=JUDGE_KEY: that environment variable is not set"
        ):
            _run(tmp_path, model_url, spec)
    assert model.seen == [] and judge.seen == [] and not (tmp_path / "run").exists()


def test_the_announcement_comes_before_the_first_request(keys: None) -> None:
    events: list[str] = []
    served = recorder()
    with serving(served) as url:
        endpoint = extract.endpoint_of(f"openai:{url}#x", Machine())
        admission = policy.admit(endpoint, ["mednli"], ())
        events.append(f"requests before: {len(served.seen)}")
        with logs.collected() as said:
            backend = factory.build(admission)
        events += said
        events.append(f"requests after: {len(served.seen)}")
    assert events[0] == "requests before: 0" and events[1].startswith(
        f"mibe: extractor endpoint {url} (loopback"
    )
    assert "credentialed tasks sent: mednli" in events[1] and events[2] != "requests after: 0"
    assert _auth(served.seen) == {None}  # OPENAI_API_KEY is the evaluated model's, not the extractor's
    assert backend.describe()["endpoint"] == url


def test_the_python_api_announces_its_endpoints_on_the_logger(
    tiny_llama: Path, tmp_path: Path, keys: None, caplog: pytest.LogCaptureFixture
) -> None:
    # mibe.evaluate prints nothing else; who receives text is still said (and recorded).
    import mibe

    served = recorder()
    with serving(served) as url, caplog.at_level("WARNING", logger="mibe"):
        out = mibe.evaluate(
            str(tiny_llama), "pubmed_sum", demo=True, limit=1, max_new_tokens=4, bootstrap=0,
            bertscore_model="", judge=(f"openai:{url}#j",), output_dir=str(tmp_path / "r"),
        )  # fmt: skip
    said = [r.getMessage() for r in caplog.records if r.name == "mibe"]
    assert said == [
        f"mibe: judge endpoint {url} (loopback, model j): credentialed tasks sent: none; no API key"
    ]
    assert [e["role"] for e in out["endpoints"]] == ["model", "judge"] and _auth(served.seen) == {None}


def test_the_python_api_takes_a_backend_name_and_announces_the_endpoint(
    tmp_path: Path, keys: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: backend="openai" was taken for a model in memory ('str' object has no attribute ...).
    import mibe

    served = recorder()
    with serving(served) as url, caplog.at_level("WARNING", logger="mibe"):
        out = mibe.evaluate(
            "m", "pubmedqa", backend="openai", base_url=url, demo=True, limit=1, max_new_tokens=4,
            bootstrap=0, output_dir=str(tmp_path / "r"),
        )  # fmt: skip
    said = [r.getMessage() for r in caplog.records if r.name == "mibe"]
    assert said == [
        f"mibe: model endpoint {url} (loopback, model m): credentialed tasks sent: none; "
        "API key from $OPENAI_API_KEY"
    ]
    assert out["tasks"]["pubmedqa"]["n"] == 1 and _auth(served.seen) == {"Bearer sk-default-0000"}


@pytest.mark.parametrize(
    ("values", "said"),
    [
        (["http://10.0.0.1/v1"], "give the reason after the URL"),
        (["http://10.0.0.1/v1=  "], "give the reason after the URL"),
        (["  "], "empty; say why"),
        (["one", "two"], "two reasons without URL="),
        (["http://10.0.0.1/v1=a", "http://10.0.0.1/v1/=b"], "two reasons for http://10.0.0.1/v1"),
        (["http://[::1/v1=why"], "not a URL"),
    ],
)
def test_bad_authorisations_are_one_line(values: list[str], said: str) -> None:
    with pytest.raises(MibeError, match=r"--allow-remote-credentialed") as caught:
        policy.authorisations(values)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_a_bare_reason_covers_the_base_url_only() -> None:
    grants = policy.authorisations(["our DUA", "http://10.0.0.2:9/v1=judge under DUA"])
    model = api.endpoint.evaluated(RunConfig(model="m", backend="openai", base_url="http://10.0.0.1:9/v1/"))
    judge = judge_run.endpoint_of(judge_run.parse_specs(["openai:http://10.0.0.2:9/v1#j"])[0], Machine())
    other = extract.endpoint_of("openai:http://10.0.0.3:9/v1#x", Machine())
    assert policy.reason_for(model, grants) == "our DUA"
    assert policy.reason_for(judge, grants) == "judge under DUA"
    assert policy.reason_for(other, grants) is None  # before: the one reason let it through too
    with pytest.raises(MibeError, match=r'--extractor openai:http://10.0.0.3:9/v1#x: refused: .*"http://10'):
        policy.admit(other, ["mednli"], grants)


# ---- remote endpoints, in a network namespace of their own --------------------------------------

NETNS = r"""
import contextlib, io, json, sys, threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from mibe import cli
from tests.support.loopback import recorder

servers = {}
for name, host in (("model", "10.9.8.7"), ("judge", "10.9.8.8")):
    handler = recorder()
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[name] = (f"http://{host}:{server.server_address[1]}/v1", handler)
urls = {name: url for name, (url, _) in servers.items()}
out, folder = {"urls": urls}, Path(sys.argv[1])
for case, extra in json.loads(sys.argv[2]).items():
    run = folder / case
    argv = ["run", "--backend", "openai", "--base-url", urls["model"], "--model", "m", "--demo",
            "--limit", "2", "--tasks", "mimic_cxr", "--max-new-tokens", "4", "--bootstrap", "20",
            "--bertscore-model", "", "--judge", f"openai:{urls['judge']}#j", "--output-dir", str(run)]
    argv += [a.format(**urls) for a in extra]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    seen = {name: len(handler.seen) for name, (_, handler) in servers.items()}
    for _, handler in servers.values():
        handler.seen.clear()
    results = json.loads((run / "results.json").read_text()) if (run / "results.json").is_file() else {}
    out[case] = {"code": code, "err": err.getvalue().splitlines(), "seen": seen,
                 "endpoints": results.get("endpoints")}
print(json.dumps(out))
"""

CASES = {
    "bare": ["--allow-remote-credentialed", "model under our DUA"],
    "both": ["--allow-remote-credentialed", "model under our DUA",
             "--allow-remote-credentialed", "{judge}=judge under our DUA"],
    "typo": ["--allow-remote-credentialed", "model under our DUA",
             "--allow-remote-credentialed", "http://10.9.8.9:1/v1=judge under our DUA"],
    "judge only": ["--allow-remote-credentialed", "{judge}=judge under our DUA"],
}  # fmt: skip


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (shutil.which("unshare") and shutil.which("ip")):
        pytest.skip("needs unshare and ip (util-linux, iproute2) to make a network namespace")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here (unshare -n: {probe.stderr.strip()})")
    folder = tmp_path_factory.mktemp("remote")
    script = (
        'ip link set lo up && ip addr add 10.9.8.7/32 dev lo && ip addr add 10.9.8.8/32 dev lo && exec "$@"'
    )
    command = ["unshare", "-n", "bash", "-c", script, "bash", sys.executable, "-c", NETNS]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    for name in ("OPENAI_API_KEY", "MODEL_KEY", "JUDGE_KEY"):
        env.pop(name, None)
    done = subprocess.run(
        [*command, str(folder), json.dumps(CASES)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_bare_reason_no_longer_lets_a_remote_judge_read_credentialed_text(remote: dict[str, Any]) -> None:
    # Before: the one reason given for the --base-url let the judge at another remote address receive
    # MIMIC-CXR reports, with no line on stderr and no record.
    case, judge = remote["bare"], remote["urls"]["judge"]
    assert case["code"] == 2 and len(case["err"]) == 1, case["err"]
    assert case["err"][0].startswith(f"mibe: error: --judge openai:{judge}#j: refused: {judge}: ")
    assert f'--allow-remote-credentialed "{judge}=<why this endpoint is allowed>"' in case["err"][0]
    assert case["seen"] == {"model": 0, "judge": 0}  # refused before anything was sent to either


def test_each_remote_endpoint_is_authorised_by_its_url_announced_and_recorded(remote: dict[str, Any]) -> None:
    case, urls = remote["both"], remote["urls"]
    assert case["code"] == 0, case["err"]
    assert case["seen"]["model"] > 0 and case["seen"]["judge"] > 0
    announced = [line for line in case["err"] if " endpoint " in line]
    assert announced == [
        f"mibe: model endpoint {urls['model']} (remote, model m): credentialed tasks sent: mimic_cxr, "
        'authorised: "model under our DUA"; no API key',
        f"mibe: judge endpoint {urls['judge']} (remote, model j): credentialed tasks sent: mimic_cxr, "
        'authorised: "judge under our DUA"; no API key',
    ]
    assert case["endpoints"] == [
        {"role": "model", "spec": "m", "backend": "openai", "url": urls["model"], "model": "m",
         "where": "remote", "credentialed": ["mimic_cxr"], "authorisation": "model under our DUA",
         "key_env": None},
        {"role": "judge", "spec": f"openai:{urls['judge']}#j", "backend": "openai", "url": urls["judge"],
         "model": "j", "where": "remote", "credentialed": ["mimic_cxr"],
         "authorisation": "judge under our DUA", "key_env": None},
    ]  # fmt: skip


def test_an_authorisation_naming_no_endpoint_is_refused(remote: dict[str, Any]) -> None:
    case = remote["typo"]
    assert case["code"] == 2 and len(case["err"]) == 1, case["err"]
    assert "http://10.9.8.9:1/v1=...: no endpoint of this command is at that URL" in case["err"][0]
    assert case["seen"] == {"model": 0, "judge": 0}


def test_a_judge_authorisation_does_not_cover_the_evaluated_model(remote: dict[str, Any]) -> None:
    case, model = remote["judge only"], remote["urls"]["model"]
    assert case["code"] == 2 and len(case["err"]) == 1, case["err"]
    assert f"--base-url {model}: not a loopback address" in case["err"][0]
    assert case["seen"] == {"model": 0, "judge": 0}
