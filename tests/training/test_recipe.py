"""mibe.training's recipes and their defaults (the paper's values), data mixing by ratio, and the
`mibe train` command line. No training here: tests/training/test_train.py and test_tuning.py train."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mibe.training import corpus, recipe
from mibe.types import MibeError
from tests.support.paths import REPO

SHIPPED = REPO / "training"

# The paper's values (docs/training.md, the bold values), per kind.
PAPER = [
    ("pretrain", "learning_rate", 8e-6),
    ("pretrain", "adam_beta1", 0.9),
    ("pretrain", "adam_beta2", 0.95),
    ("pretrain", "weight_decay", 1e-5),
    ("pretrain", "lr_scheduler", "cosine"),
    ("pretrain", "warmup_ratio", 0.05),
    ("pretrain", "gradient_accumulation", 16),
    ("pretrain", "epochs", 1),
    ("pretrain", "precision", "auto"),
    ("sft", "learning_rate", 1e-5),
    ("sft", "weight_decay", 1e-5),
    ("sft", "warmup_ratio", 0.01),
    ("sft", "epochs", 3),
]


@pytest.mark.parametrize(("kind", "key", "value"), PAPER)
def test_paper_values_are_the_defaults_and_the_shipped_recipes(kind: str, key: str, value: object) -> None:
    assert recipe.DEFAULTS[kind][key] == value
    loaded, info = recipe.load(
        kind, str(SHIPPED / f"{kind}.yaml"), {"data": "x.jsonl"} if kind == "sft" else {}
    )
    assert loaded[key] == value
    assert info["sha256"] and Path(info["path"]) == (SHIPPED / f"{kind}.yaml").resolve()


@pytest.mark.parametrize("kind", recipe.KINDS)
def test_shipped_recipes_only_restate_defaults(kind: str) -> None:
    raw = recipe.read_yaml(SHIPPED / f"{kind}.yaml", "recipe")
    raw.pop("kind")
    placeholders = {"model", "output_dir", "mix", "data", "task"}
    for key, value in raw.items():
        if key not in placeholders:
            assert value == recipe.DEFAULTS[kind][key] or float(value) == recipe.DEFAULTS[kind][key], key


@pytest.mark.parametrize(
    ("sets", "key", "expected"),
    [
        (["learning_rate=1e-4"], "learning_rate", 1e-4),  # YAML alone would read 1e-4 as a string
        (["max_steps=3"], "max_steps", 3),
        (["epochs=2"], "epochs", 2),
        (["gradient_checkpointing=true"], "gradient_checkpointing", True),
        (["deepspeed=zero3"], "deepspeed", "zero3"),
        (["lora.r=16"], "lora", {**recipe.LORA, "r": 16}),
        (
            ["lora.target_modules=q_proj,v_proj"],
            "lora",
            {**recipe.LORA, "target_modules": ["q_proj", "v_proj"]},
        ),
        (["lora=null"], "lora", None),
        (["held_out=0.25"], "held_out", 0.25),
    ],
)
def test_set_overrides_are_typed(sets: list[str], key: str, expected: object) -> None:
    loaded, _ = recipe.load("sft", None, {"model": "m", "output_dir": "o", "data": "d.jsonl"}, sets)
    assert loaded[key] == expected


BASE = {"model": "m", "output_dir": "o", "data": "d.jsonl"}


@pytest.mark.parametrize(
    ("sets", "overrides", "message"),
    [
        (["learnin_rate=1"], {}, "unknown key 'learnin_rate'; did you mean 'learning_rate'?"),
        (["learning_rate=fast"], {}, "learning_rate: 'fast' is not a valid value"),
        (["batch_size=0"], {}, "batch_size: must be a positive integer"),
        (["precision=fp8"], {}, "precision: one of auto, bf16, fp16, fp32"),
        (["warmup_ratio=1.5"], {}, "warmup_ratio: a fraction in [0, 1)"),
        (["lora.rank=4"], {}, "unknown key 'lora.rank'"),
        (["oops"], {}, "--set oops: expected KEY=VALUE"),
        ([], {"model": None, "output_dir": None}, "recipe key model: required"),
        (["lora=null", "merge=true"], {}, "--merge: only a LoRA run has an adapter to merge"),
    ],
)
def test_bad_recipes_are_one_clear_line(sets: list[str], overrides: dict, message: str) -> None:
    with pytest.raises(MibeError) as err:
        recipe.load("sft", None, {**BASE, **overrides}, sets)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_recipe_file_errors_name_the_file(tmp_path: Path) -> None:
    wrong_kind = tmp_path / "r.yaml"
    wrong_kind.write_text("kind: sft\nmodel: m\n")
    with pytest.raises(MibeError, match=r"r.yaml: a 'sft' recipe; run it with `mibe train sft`"):
        recipe.load("pretrain", str(wrong_kind))
    typo = tmp_path / "t.yaml"
    typo.write_text("kind: pretrain\nblock_sise: 64\n")
    with pytest.raises(MibeError, match=r"t.yaml: unknown key 'block_sise'; did you mean 'block_size'\?"):
        recipe.load("pretrain", str(typo))


def test_paths_in_a_recipe_resolve_against_its_folder(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text("{}\n")
    file = tmp_path / "r.yaml"
    file.write_text("kind: sft\nmodel: m\noutput_dir: out\ndata: rows.jsonl\n")
    loaded, _ = recipe.load("sft", str(file))
    assert loaded["data"] == str(tmp_path / "rows.jsonl")
    assert loaded["output_dir"] == "out"  # outputs stay relative to where the command runs


PAPER_MIX = {"bio": 15, "clin": 1, "gen": 4}


@pytest.mark.parametrize(
    ("available", "ratios", "balance", "expected"),
    [
        # 15:1:4 with plenty of everything but clinical: clinical sets the total, nothing repeats.
        (
            {"bio": 1000, "clin": 10, "gen": 1000},
            PAPER_MIX,
            "downsample",
            {"bio": 150, "clin": 10, "gen": 40},
        ),
        ({"bio": 150, "clin": 10, "gen": 40}, PAPER_MIX, "downsample", {"bio": 150, "clin": 10, "gen": 40}),
        # upsample: every bio block once, the scarcer domains repeated up to their share.
        ({"bio": 300, "clin": 10, "gen": 40}, PAPER_MIX, "upsample", {"bio": 300, "clin": 20, "gen": 80}),
        ({"a": 7, "b": 100}, {"a": 1, "b": 1}, "downsample", {"a": 7, "b": 7}),
    ],
)
def test_blocks_per_domain_follow_the_ratio(available, ratios, balance, expected) -> None:
    assert corpus.blocks_per_domain(available, ratios, balance) == expected


def test_a_domain_without_blocks_is_an_error() -> None:
    with pytest.raises(MibeError, match="mix domain clin: no text long enough for one block"):
        corpus.blocks_per_domain({"bio": 10, "clin": 0}, {"bio": 15, "clin": 1}, "downsample")


@pytest.mark.parametrize(
    ("counts", "held_out", "expected"),
    [
        ({"a": 150, "b": 10, "c": 40}, 0.1, {"a": 15, "b": 1, "c": 4}),
        ({"a": 150, "b": 10, "c": 40}, 0, {"a": 0, "b": 0, "c": 0}),
        ({"a": 150, "b": 10, "c": 40}, 1000, {"a": 15, "b": 1, "c": 4}),  # a count: at most a tenth
        ({"a": 1500, "b": 100, "c": 400}, 20, {"a": 15, "b": 1, "c": 4}),
    ],
)
def test_held_out_blocks_follow_the_mix(counts, held_out, expected) -> None:
    assert corpus.held_out_counts(counts, held_out) == expected


@pytest.mark.parametrize(
    ("tokens", "block", "ratios", "expected"),
    [
        (2560, 64, {"bio": 15, "clin": 1, "gen": 4}, {"bio": 30, "clin": 2, "gen": 8}),
        (129_000_000_000, 4096, {"bio": 15, "clin": 1, "gen": 4},
         {"bio": 23_620_606, "clin": 1_574_707, "gen": 6_298_828}),
        (100, 64, {"a": 1, "b": 1}, {"a": 1, "b": 1}),  # never below one block
    ],
)  # fmt: skip
def test_a_token_target_is_met_at_the_ratio(tokens, block, ratios, expected) -> None:
    assert corpus.target_blocks(tokens, block, ratios) == expected


@pytest.mark.parametrize(
    ("weight", "rows", "used"),
    [(1, 4, 4), (2, 4, 8), (0.5, 4, 2), (1.5, 4, 6), (0.1, 4, 0), (3, 0, 0)],
)
def test_source_weights_scale_the_rows(weight: float, rows: int, used: int) -> None:
    from mibe.training import examples

    made = [{"id": str(i)} for i in range(rows)]
    chosen = examples.weighted(made, weight, seed=1)
    assert len(chosen) == used
    if weight >= 1:  # every row at least floor(weight) times
        assert all(chosen.count(row) >= int(weight) for row in made)
    assert examples.weighted(made, weight, seed=1) == chosen  # seeded


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"domains": {}}, "domains: a mapping of domain name"),
        ({"domains": {"bio": {"ratio": 0, "sources": ["x.jsonl"]}}}, "domains.bio.ratio: a positive number"),
        ({"domains": {"bio": {"ratio": 1}}}, "domains.bio.sources: a list"),
        ({"domains": {"bio": {"ratio": 1, "sources": [{"path": "/nowhere/*.jsonl"}]}}}, "no readable files"),
        ({"domains": {"bio": {"ratio": 1, "sources": [{"hub": "a/b", "path": "c"}]}}}, "exactly one of path"),
        ({"balance": "even", "domains": {}}, "balance: one of downsample, upsample"),
        ({"target_tokens": 0, "domains": {}}, "target_tokens: a positive whole number of training tokens"),
        ({"target_tokens": "1B", "domains": {}}, "target_tokens: a positive whole number"),
        ({"domains": {"bio": {"ratio": 1, "sources": [{"hub": "a/b", "weight": 0}]}}}, "weight: a positive"),
        ({"domains": {"bio": {"ratio": 1, "sources": [{"path": "/nowhere/a.csv.gz"}]}}}, "no readable files"),
    ],
)  # fmt: skip
def test_bad_mix_specs(spec: dict, message: str) -> None:
    with pytest.raises(MibeError, match=message):
        corpus.load_mix(spec)


def test_shipped_mix_is_the_papers_ratio() -> None:
    raw = recipe.read_yaml(SHIPPED / "mixes" / "me-llama.yaml", "mix")
    assert {d: body["ratio"] for d, body in raw["domains"].items()} == {
        "biomedical": 15,
        "clinical": 1,
        "general": 4,
    }


def test_train_help_and_parsing_never_import_torch() -> None:
    code = (
        "import sys; from mibe import cli; from mibe.commands import train as t; "
        "from mibe.training import recipe; "
        "t.parser(); recipe.load('sft', None, {'model': 'm', 'output_dir': 'o', 'data': 'd'}); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    out = subprocess.run(
        [sys.executable, "-m", "mibe.cli", "train", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "pretrain" in out.stdout


def test_cli_bad_flag_is_exit_2_with_one_line(tmp_path: Path) -> None:
    flags = [
        "--model",
        "m",
        "--output-dir",
        str(tmp_path / "o"),
        "--data",
        "d.jsonl",
        "--set",
        "learning_rat=1",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "mibe.cli", "train", "sft", *flags], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "mibe: error: --set: unknown key 'learning_rat'; did you mean 'learning_rate'?"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sft", "--model", "/no/such/model", "--data", "d.jsonl"], "model /no/such/model: no such folder"),
        (
            ["task", "pubmedqa", "--data", "/no/such/rows.jsonl"],
            "--data /no/such/rows.jsonl: no such file or folder",
        ),
        (["task", "mednli"], "no 'train' training rows: mednli: no data found (Credentialed"),
        (["sft", "--data", "/no/such/*.jsonl"], "path /no/such/*.jsonl: no readable files"),
    ],
)
def test_train_refuses_missing_inputs_in_one_line(
    args: list[str], message: str, tiny_llama: Path, tmp_path: Path
):
    from mibe.commands import train as train_cli

    model = [] if "--model" in args else ["--model", str(tiny_llama)]
    with pytest.raises(MibeError) as err:
        train_cli.main([*args, *model, "--output-dir", str(tmp_path / "out")])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
