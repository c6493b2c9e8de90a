"""Property tests: the task-file loader and the data hooks never fail with anything but a clear line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mibe import data, tasks
from mibe.types import MibeError

KEYS = ["name", "dataset", "template", "target", "answer", "metrics", "generation", "version", "credentialed"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(max_size=12),
    st.sampled_from(["choice", "accuracy", "pubmedqa"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from([*KEYS, "source", "type", "choices", "stop", "max_new_tokens"]), inner, max_size=4
        )
    ),
    max_leaves=8,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.dictionaries(st.sampled_from([*KEYS, "extra"]), values, max_size=9))
def test_task_loader_never_crashes_on_structured_input(raw: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        try:
            task = tasks.load_task(path)
        except MibeError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
        else:
            assert task.name and task.metrics


@FUZZ
@given(st.binary(max_size=200))
def test_task_loader_never_crashes_on_bytes(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.yaml"
        path.write_bytes(blob)
        try:
            tasks.load_task(path)
        except MibeError as exc:
            assert "\n" not in str(exc)


FIELDS = [
    "pmid", "QUESTION", "CONTEXTS", "final_decision", "question", "options", "answer_idx", "realidx", "opa",
    "opb", "opc", "opd", "cop", "id", "sentence", "label", "sentences", "sentence_labels", "text",
    "transcription", "medical_specialty", "row_index", "sample_name", "__key__", "invented",
]  # fmt: skip
cells = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 12), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["yes", "no", "maybe", "A", "B", "DDI-false", "0_1,1_0", "Surgery", " Neurology"]),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.sampled_from(["A", "B", "C", "D", "E"]), st.text(max_size=8)),
)  # fmt: skip
rows = st.lists(st.dictionaries(st.sampled_from(FIELDS), cells, max_size=8), max_size=6)
HOOKED = [name for name, path in tasks.builtin_paths().items() if path.with_suffix(".py").is_file()]


@FUZZ
@given(st.sampled_from(HOOKED), rows)
def test_hooks_turn_any_rows_into_docs_or_counted_skips(name: str, batch: list[dict]) -> None:
    task = tasks.load_task(tasks.builtin_paths()[name])
    docs, skipped, first = data.to_docs(task, batch, data.load_hook(task))
    assert len(docs) + skipped == len(batch)  # each row a document or a counted skip
    for doc in docs:
        if task.answer_type in ("choice", "letter"):
            assert doc.gold in task.choices
        if task.answer_type == "multi_label":
            assert set(doc.gold) <= set(task.choices)
    assert (skipped == 0) == (first is None)
