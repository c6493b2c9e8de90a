"""Invented PubMedQA and MedQA documents of realistic lengths, in their original release formats.

For benchmarks that must run without the public samples (a fresh clone) or on more documents than
they hold. Lengths follow the public samples': PubMedQA abstracts of 2-5 sections, 100-400 words in
all; MedQA vignettes of 40-320 words with four or five options. The words are drawn from a fixed
clinical vocabulary with a seed, so the text reads like the real thing to a tokenizer (word and
number lengths, punctuation) but says nothing. Every row carries `"invented": true`.

    python benchmarks/documents.py OUT_DIR [--n 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

WORDS = (  # noqa: SIM905 - reads as text
    "patients were randomized to receive either placebo or treatment and followed for months with "
    "primary outcome mortality secondary outcomes included hospital admission blood pressure serum "
    "creatinine renal function cardiac output we measured levels of interleukin tumor necrosis "
    "factor in plasma samples from cohort participants the association between exposure and risk "
    "was assessed using logistic regression adjusted for age sex body mass index smoking status "
    "diabetes hypertension results showed significant reduction compared with controls confidence "
    "interval odds ratio hazard ratio median follow-up retrospective prospective multicenter study "
    "of adults children women men presenting emergency department chest pain dyspnea fever cough "
    "abdominal tenderness physical examination laboratory studies showed hemoglobin leukocyte count "
    "platelet sodium potassium glucose chest x-ray computed tomography magnetic resonance imaging "
    "biopsy specimen revealed inflammation fibrosis necrosis carcinoma metastasis chemotherapy "
    "radiotherapy surgical resection postoperative complications infection thrombosis"
).split()
OPTIONS = (
    "Metformin therapy", "Observation and reassurance", "Intravenous antibiotics", "Cardiac catheterization",
    "Lumbar puncture", "Oral corticosteroids", "Surgical consultation", "Vitamin B12 deficiency",
    "Autoimmune destruction of beta cells", "Increased intracranial pressure", "Ventricular septal defect",
    "Echocardiography", "Serum ferritin", "Thyroid-stimulating hormone", "Colonoscopy", "Aspirin",
)  # fmt: skip


def _sentence(rng: random.Random, words: int) -> str:
    out = []
    for _ in range(words):
        word = rng.choice(WORDS)
        if rng.random() < 0.06:
            word = f"{rng.randint(1, 480)}{rng.choice(['', '.5', ' mg/dL', '%', ' mm Hg', ' years'])}"
        out.append(word)
    out[0] = out[0].capitalize()
    return " ".join(out) + rng.choice([".", ".", ".", ";", ","]) * 1


def _paragraph(rng: random.Random, words: int) -> str:
    sentences, left = [], words
    while left > 0:
        n = min(left, rng.randint(8, 30))
        sentences.append(_sentence(rng, n))
        left -= n
    return " ".join(sentences)


def pubmedqa(rng: random.Random, i: int) -> dict:
    total = rng.randint(100, 400)
    parts = rng.randint(2, 5)
    contexts = [_paragraph(rng, max(20, total // parts)) for _ in range(parts)]
    return {
        "pmid": f"invented-{i}",
        "QUESTION": _sentence(rng, rng.randint(8, 18))[:-1] + "?",
        "CONTEXTS": contexts,
        "LABELS": ["BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS", "OBJECTIVE"][:parts],
        "final_decision": rng.choice(["yes", "yes", "no", "maybe"]),
        "LONG_ANSWER": _sentence(rng, 20),
        "invented": True,
    }


def medqa(rng: random.Random, i: int) -> dict:
    letters = "ABCDE"[: rng.choice([4, 5])]
    options = dict(zip(letters, rng.sample(OPTIONS, len(letters)), strict=True))
    answer = rng.choice(letters)
    stem = _paragraph(rng, rng.randint(40, 320))
    return {
        "realidx": f"invented-{i}",
        "question": f"{stem} Which of the following is the most likely diagnosis?",
        "answer": options[answer],
        "options": options,
        "answer_idx": answer,
        "meta_info": "invented",
        "invented": True,
    }


def write(folder: Path, n: int = 300, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in (("pubmedqa", pubmedqa), ("medqa", medqa)):
        rng = random.Random(f"{seed}-{name}")
        lines = (json.dumps(make(rng, i)) for i in range(n))
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "INVENTED").write_text("Invented by benchmarks/documents.py; not MIBE data.\n")
    return folder


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write(args.out, args.n, args.seed))
