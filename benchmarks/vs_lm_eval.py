"""mibe vs lm-evaluation-harness 0.4.13 on identical work, one run, one machine.

Same tiny LLaMA (2 layers, hidden 128, head_dim 64, vocab 1024, fp32), same documents (the public
PubMedQA + MedQA samples, and invented documents of realistic lengths from benchmarks/documents.py;
rendered once by mibe), same prompts and token ids. It first checks that
both give the same per-document predictions, then prints wall time, peak RSS and the ratios.

    python benchmarks/vs_lm_eval.py --lm-eval-python /path/to/venv-with-lm-eval/bin/python

lm-eval lives in its own environment (`pip install -c constraints.txt "lm-eval[hf]==0.4.13"`), so
the two never share an interpreter; both are timed as whole commands, start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TASKS = ("pubmedqa", "medqa")


def timed(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of one command, measured by GNU time."""
    handle, report = tempfile.mkstemp(suffix=".time")
    os.close(handle)
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", report, *command],
        capture_output=True, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    rss = int(Path(report).read_text().strip().splitlines()[-1]) / 1024
    return wall, rss, done.stdout


def samples(run: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]


def lm_eval_tasks(folder: Path, run: Path, kind: str, max_new: int) -> None:
    from mibe import tasks

    for name in TASKS:
        task = tasks.load_task(tasks.builtin_paths()[name])
        rows = samples(run, name)
        data = folder / f"{name}.jsonl"
        with data.open("w") as out:
            for row in rows:
                gold = task.choices.index(row["gold"])
                doc = {"query": row["prompt"], "choices": list(task.choices), "gold": gold}
                doc["answer"] = row["gold"]
                out.write(json.dumps(doc) + "\n")
        spec = {
            "task": f"mibe_{kind}_{name}",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test",
            "doc_to_text": "query",
            "doc_to_target": "gold",
            "doc_to_choice": "choices",
            "output_type": "multiple_choice" if kind == "ll" else "generate_until",
            "metric_list": [{"metric": "acc"}] if kind == "ll" else [{"metric": "exact_match"}],
        }
        if kind == "gen":
            spec["doc_to_target"] = "answer"
            del spec["doc_to_choice"]
            spec["generation_kwargs"] = {"until": [], "max_gen_toks": max_new, "do_sample": False}
        (folder / f"mibe_{kind}_{name}.yaml").write_text(json.dumps(spec))  # JSON is YAML


def lm_eval_outputs(out: Path, kind: str, name: str) -> list:
    (path,) = sorted(out.rglob(f"samples_mibe_{kind}_{name}_*.jsonl"))
    rows = sorted((json.loads(x) for x in path.read_text().splitlines()), key=lambda r: r["doc_id"])
    if kind == "ll":
        return [[float(r[0]) for r in row["filtered_resps"]] for row in rows]
    return [row["filtered_resps"][0] for row in rows]


def compare(work: Path, mibe: list, lm_eval: list, data_dir: Path, kind: str, extra: list, args, env: dict):
    """Both harnesses on one document set and one kind of work: predictions, then time and RSS."""
    from mibe import tasks
    from mibe.scoring import kinds

    mibe_out = work / f"mibe-{kind}"
    mibe_wall, mibe_rss, _ = timed(
        [*mibe, "--data-dir", str(data_dir), *extra, "--output-dir", str(mibe_out)], env
    )
    (work / f"lm-tasks-{kind}").mkdir(parents=True)
    lm_eval_tasks(work / f"lm-tasks-{kind}", mibe_out, kind, args.max_new_tokens)
    names = ",".join(f"mibe_{kind}_{n}" for n in TASKS)
    lm_out = work / f"lm-{kind}"
    lm_command = [*lm_eval, "--include_path", str(work / f"lm-tasks-{kind}"), "--tasks", names]
    lm_wall, lm_rss, _ = timed([*lm_command, "--output_path", str(lm_out)], env)
    agree, total, worst = 0, 0, 0.0
    for name in TASKS:
        task = tasks.load_task(tasks.builtin_paths()[name])
        ours, theirs = samples(mibe_out, name), lm_eval_outputs(lm_out, kind, name)
        for row, other in zip(ours, theirs, strict=True):
            total += 1
            if kind == "ll":
                # lm-eval moves the prompt's trailing whitespace into every continuation, adding
                # that token's log-prob to all choices alike: compare within a document.
                diffs = [a - b for a, b in zip(row["logprobs"], other, strict=True)]
                worst = max(worst, max(diffs) - min(diffs))
                agree += row["prediction"] == task.choices[other.index(max(other))]
            else:
                parsed = kinds.parse(other, task.answer_type, task.choices, "paper").value
                agree += row["prediction"] == parsed
    label = (
        "log-likelihood multiple choice"
        if kind == "ll"
        else f"greedy generation ({args.max_new_tokens} tokens)"
    )
    return label, total, agree, worst, mibe_wall, lm_wall, mibe_rss, lm_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lm-eval-python", required=True, help="python of an environment with lm-eval 0.4.13"
    )
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mibe-public"))
    parser.add_argument(
        "--documents", choices=("public", "generated", "both"), default="both",
        help="the public samples (--data-dir), invented ones of realistic lengths, or both",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    from benchmarks import documents
    from tests.support import tinymodel

    work = Path(tempfile.mkdtemp(prefix="mibe-bench-"))
    model = tinymodel.build(work / "model", REPO, context=2048, hidden=128, head_dim=64)
    env = {"OMP_NUM_THREADS": str(os.cpu_count()), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    batch = str(args.batch_size)
    mibe = [sys.executable, "-m", "mibe.cli", "run", "--model", str(model), "--tasks", ",".join(TASKS),
            "--batch-size", batch, "--dtype", "float32"]  # fmt: skip
    lm_eval = [args.lm_eval_python, "-m", "lm_eval", "--model", "hf", "--device", "cpu",
               "--model_args", f"pretrained={model},dtype=float32,add_bos_token=True",
               "--batch_size", batch, "--log_samples"]  # fmt: skip
    sets = {"public": Path(args.data_dir), "generated": work / "generated"}
    if args.documents in ("public", "both") and not sets["public"].is_dir():
        if args.documents == "public":
            sys.exit(f"--data-dir {args.data_dir}: no such folder (try --documents generated)")
        del sets["public"]
    if args.documents == "public":
        del sets["generated"]
    else:
        documents.write(sets["generated"], n=300)
    print(f"machine: {os.cpu_count()} CPU cores; batch size {args.batch_size}")
    rows = []
    generation = ["--protocol", "paper", "--max-new-tokens", str(args.max_new_tokens)]
    for which, data_dir in sets.items():
        for kind, extra in (("ll", ["--scoring", "loglikelihood"]), ("gen", generation)):
            rows.append((which, *compare(work / which, mibe, lm_eval, data_dir, kind, extra, args, env)))
    for which, label, total, agree, worst, mw, lw, mr, lr in rows:
        print(f"\n{label}, {which} documents ({total})")
        print(
            f"  identical predictions: {agree}/{total}"
            + (f"; mibe - lm-eval log-probs vary within a document by <= {worst:.1e}" if worst else "")
        )
        print(f"  wall  mibe {mw:6.1f} s   lm-eval {lw:6.1f} s   ratio {mw / lw:.2f}x")
        print(f"  RSS   mibe {mr:6.0f} MiB lm-eval {lr:6.0f} MiB ratio {mr / lr:.2f}x")


if __name__ == "__main__":
    main()
