"""Choice token ids from the prompt's tail equal lm-evaluation-harness's whole-string convention."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mibe import data, resources, tasks
from mibe.backends import continuations
from mibe.runner import pipeline, task_plan
from mibe.types import Request, RunConfig
from tests.support import tinymodel
from tests.support.paths import PUBLIC, REPO, needs_public_data

KINDS = ("byte-level", "metaspace", "unigram")


@pytest.fixture(scope="module", params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    from mibe.backends.hf import HFBackend

    # Runs of one character in the training text give merges ("aa", "aaaa", "11") whose use in
    # a long run depends on where the run starts: the case the tail check exists for.
    runs = tuple(c * n for c in ("a", "1", "=") for n in (2, 3, 4, 8, 16) for _ in range(50))
    folder = tinymodel.build(
        tmp_path_factory.mktemp(request.param), REPO, tokenizer=request.param, extra_text=runs
    )
    return HFBackend(str(folder), dtype="float32")


def whole_convention(backend, request: Request) -> list[list[int]]:
    ctx = backend.tokenize(request.prompt)
    return [
        continuations.whole(backend.tokenize, backend.tokenizer, request.prompt, ctx, c)
        for c in request.continuations
    ]


RUNS = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "1", "=", "ab", "\u2581", " "]), st.integers(1, 700)
)
WORDS = [
    "the",
    "patient",
    "Answer:",
    "A.",
    "yes",
    "no",
    "maybe",
    "12.5",
    "mg/dL",
    "(B)",
    "é",
    "β-blocker",
    "",
]
SPACES = [" ", "  ", "\n", "\n\n", " \n", "\t", ""]
CHOICES = [
    "a",
    "1",
    "=",
    " A",
    " B",
    " yes",
    " no",
    " maybe",
    " entailment",
    " Surgery",
    " Cardiovascular / Pulmonary",
    " 3",
]


@st.composite
def prompts(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SPACES)), min_size=1, max_size=120)
    )
    text = "".join(w + s for w, s in parts)
    # Long runs without a boundary: where a cut inside them changes the tokens, the tail is refused.
    return text + draw(st.one_of(st.sampled_from(["", "Answer:", "OUTPUT:", "Output: ", "\n", "12"]), RUNS))


@settings(max_examples=150, deadline=None)
@given(prompt=prompts(), choices=st.lists(st.sampled_from(CHOICES), min_size=1, max_size=5, unique=True))
def test_tail_ids_equal_whole_string_ids(backend, prompt: str, choices: list[str]) -> None:
    request = Request("d", prompt, 0, (), tuple(choices))
    assert backend.tokenize_with_choices([request])[0][1] == whole_convention(backend, request)


def requests_for(backend, data_dir: Path, limit: int | None = None) -> list[Request]:
    out = []
    for name in ("pubmedqa", "medqa", "medmcqa", "mednli", "bionli", "mtsample", "ddi2013"):
        task = tasks.load_task(tasks.builtin_paths()[name])
        if not (data_dir / f"{name}.jsonl").exists() and not (data_dir / name).exists():
            continue
        config = RunConfig(
            model="m", tasks=(name,), data_dir=str(data_dir), limit=limit, scoring="loglikelihood"
        )
        p = task_plan.plan(task, data.load_docs(task, data.locate(task, str(data_dir), {})), config, backend)
        out += pipeline.build_requests(p, config, backend, p.docset.docs, p.docs)[0]
    return out


def test_demo_prompts_take_the_tail_path(backend) -> None:
    requests = requests_for(backend, resources.demo_dir())
    assert len(requests) >= 15
    for request in requests:
        backend.tokenize(request.prompt)
    before = len(backend._ids)
    got = [conts for _, conts in backend.tokenize_with_choices(requests)]
    # The tail path never tokenises prompt + choice whole (which would land in the prompt cache).
    assert len(backend._ids) == before
    assert got == [whole_convention(backend, r) for r in requests]


@pytest.mark.slow
@needs_public_data()
def test_public_samples_tail_ids_equal_whole_string_ids(backend) -> None:
    requests = [r for r in requests_for(backend, PUBLIC, limit=60) if len(r.prompt) > 480]
    assert len(requests) > 200
    assert [c for _, c in backend.tokenize_with_choices(requests)] == [
        whole_convention(backend, r) for r in requests
    ]
