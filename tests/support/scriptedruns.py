"""A run of the scripted backend over realistic outputs (every parsing flaw of the paper, one row
each), and its rescore under the paper's parser, for the commands that read run folders: audit,
rescore, view, the record readers."""

from __future__ import annotations

import json
from pathlib import Path

from mibe import cli, tasks
from mibe.runner import api
from mibe.types import RunConfig
from tests.support.scripted import Scripted

HOC_CASE = ("resisting cell death", "inducing angiogenesis")


# (task, realistic model output, gold, paper's reading, strict's reading, kind of disagreement)
FLAWS = [
    # PubMedQA: lower-cased substrings, first in list order ("no" inside "cannot").
    ("pubmedqa", "I cannot tell from the abstract alone.", "maybe", "no", None, "substring inside a word"),
    ("pubmedqa", "Based on current knowledge, maybe.", "maybe", "no", "maybe", "substring inside a word"),
    ("pubmedqa", "The answer is no, not yes.", "no", "yes", "no", "first-in-list"),
    ("pubmedqa", "The evidence supports both yes and no.", "maybe", "yes", None, "two answers"),
    ("pubmedqa", "yes", "yes", "yes", "yes", None),
    # MTSample: 'Surgery' is listed first, so any specialty holding "surgery" reads as it.
    ("mtsample", "Neurosurgery", "Neurosurgery", "Surgery", "Neurosurgery", "first-in-list"),
    (
        "mtsample",
        "Cosmetic / Plastic Surgery",
        "Cosmetic / Plastic Surgery",
        "Surgery",
        "Cosmetic / Plastic Surgery",
        "first-in-list",
    ),
    ("mtsample", "Either Neurology or Neurosurgery.", "Neurology", "Surgery", None, "two answers"),
    ("mtsample", "Orthopedic", "Orthopedic", "Orthopedic", "Orthopedic", None),
    # MedQA / MedMCQA: case-sensitive letters anywhere, first in list order.
    (
        "medqa",
        "A 45-year-old man with these findings most likely has pneumonia. The answer is C.",
        "C",
        "A",
        "C",
        "stray capital letter",
    ),
    ("medqa", "Answer: D", "D", "A", "D", "stray capital letter"),
    ("medqa", "The answer is (c).", "C", None, "C", "case"),
    ("medqa", "B or D", "D", "B", None, "two answers"),
    ("medqa", "The answer is C, not B.", "C", "B", "C", "first-in-list"),
    ("medqa", "C", "C", "C", "C", None),
    ("medmcqa", "Answer: B", "B", "A", "B", "stray capital letter"),
    ("medmcqa", "The answer is (d).", "D", None, "D", "case"),
    # DDI2013: case-sensitive, and only when exactly one label string occurs.
    ("ddi2013", "ddi-effect", "DDI-effect", None, "DDI-effect", "case"),
    (
        "ddi2013",
        "DDI-mechanism, possibly also DDI-effect.",
        "DDI-mechanism",
        None,
        "DDI-mechanism",
        "two answers",
    ),
    ("ddi2013", "DDI-advise", "DDI-advise", "DDI-advise", "DDI-advise", None),
    # MedNLI (credentialed): first label in list order.
    ("mednli", "not entailment but contradiction", "contradiction", "entailment", None, "two answers"),
    # HoC: case-sensitive substrings per hallmark.
    ("hoc", "Inducing angiogenesis; resisting cell death", HOC_CASE, HOC_CASE[:1], HOC_CASE, "case"),
    (
        "hoc",
        "genomic instability and mutations",
        ("genomic instability and mutation",),
        ("genomic instability and mutation",),
        (),
        "substring inside a word",
    ),
    ("hoc", "inducing  angiogenesis", ("inducing angiogenesis",), (), ("inducing angiogenesis",), "other"),
    # emrQA (credentialed): the paper's "token F1" is over sets of characters.
    (
        "emrqa",
        "aspirin 81 mg daily",
        "metformin 500 mg twice daily",
        "aspirin 81 mg daily",
        "aspirin 81 mg daily",
        "character-set F1",
    ),
    (
        "emrqa",
        "The patient was started on lisinopril.",
        "lisinopril",
        "The patient was started on lisinopril.",
        "The patient was started on lisinopril.",
        "character-set F1",
    ),
    (
        "emrqa",
        '"lisinopril"\nDose unchanged.',
        "lisinopril",
        '"lisinopril"\nDose unchanged.',
        "lisinopril",
        "other",
    ),
    # No character repeats, so the paper's F1 of an exact answer is 1 too: the parsers agree.
    ("emrqa", "heparin 5 mg", "heparin 5 mg", "heparin 5 mg", "heparin 5 mg", None),
]


TASKS = list(dict.fromkeys(row[0] for row in FLAWS))


CREDENTIALED = ("mednli", "emrqa")


def task(name: str):
    return tasks.load_task(tasks.builtin_paths()[name])


def write_data(folder: Path) -> dict[str, str]:
    """FLAWS as Me-LLaMA's published rows, one file per task; returns prompt -> model output."""
    outputs: dict[str, str] = {}
    for name in TASKS:
        t = task(name)
        lines = []
        for i, (_, output, gold, *_) in enumerate(r for r in FLAWS if r[0] == name):
            query = f"[{name} {i}] {'Some context. ' * i}A question about the note.\nAnswer:"
            outputs[query] = output
            row = {"id": f"{name}-{i}", "query": query, "choices": list(t.choices)}
            if t.answer_type == "multi_label":
                row.update(answer="; ".join(gold), gold=[int(c in gold) for c in t.choices])
            elif t.answer_type == "span":
                row.update(answer=gold, choices=[])
            else:
                row.update(answer=gold, gold=t.choices.index(gold))
            lines.append(json.dumps(row))
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return outputs


def scripted_run(tmp: Path, out: Path, parser: str = "strict") -> dict:
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    backend = Scripted(write_data(data))
    config = RunConfig(
        model="scripted", tasks=(",".join(TASKS),), data_dir=str(data), output_dir=str(out), parser=parser
    )
    return api.run(config, backend=backend)


def strict_and_paper(tmp: Path, name: str = "paper") -> tuple[Path, Path]:
    """A scripted run in tmp/strict and `mibe rescore --parser paper` of it in tmp/`name`."""
    scripted_run(tmp, tmp / "strict")
    rescored = ["rescore", str(tmp / "strict"), "--parser", "paper", "--output-dir", str(tmp / name)]
    assert cli.main(rescored) == 0
    return tmp / "strict", tmp / name
