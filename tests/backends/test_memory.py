"""`--dry-run`'s memory estimate: weights from the exact parameter count of a config.json (no weights
shipped), times the bytes per parameter at each precision; KV cache per token from the shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mibe.backends import memory
from mibe.types import MibeError
from tests.support.paths import FIXTURES

CONFIGS = FIXTURES / "configs"


def llama_counts(h: int, inter: int, layers: int, heads: int, kv_heads: int, vocab: int) -> tuple[int, int]:
    """(all parameters, those in the decoder's linear layers), counted by hand from LLaMA's shapes."""
    head_dim = h // heads
    attention = 2 * h * h + 2 * h * kv_heads * head_dim  # q and o; k and v (grouped-query at 70B)
    mlp = 3 * h * inter  # gate, up, down
    linear = layers * (attention + mlp)
    norms = layers * 2 * h + h
    return vocab * h + linear + norms + vocab * h, linear  # embeddings ... output head (untied)


SHAPES = {
    "llama-2-13b": (5120, 13824, 40, 40, 40, 32000),
    "llama-2-70b": (8192, 28672, 80, 64, 8, 32000),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize(
    ("precision", "per_param"), [("float32", 4), ("bfloat16", 2), ("float16", 2), ("8bit", 1), ("4bit", 0.5)]
)
def test_weights_are_the_parameter_count_times_bytes(name: str, precision: str, per_param: float) -> None:
    total, linear = llama_counts(*SHAPES[name])
    assert total in (13_015_864_320, 68_976_648_192)  # the published sizes of LLaMA-2 13B and 70B
    w = memory.weights(memory.load_config(CONFIGS / name), precision, compute="bfloat16")
    assert w.parameters == total
    if precision in ("8bit", "4bit"):  # linear layers only; the output head and embeddings stay bf16
        assert w.quantized == linear and w.kept == ("lm_head",)
        assert w.bytes == int(linear * per_param + (total - linear) * 2)
    else:
        assert (w.quantized, w.kept) == (0, ())
        assert w.bytes == int(total * per_param)


@pytest.mark.parametrize(
    ("name", "per_token"), [("llama-2-13b", 2 * 40 * 5120 * 2), ("llama-2-70b", 2 * 80 * 8 * 128 * 2)]
)
def test_kv_cache_per_token(name: str, per_token: int) -> None:
    assert memory.kv_bytes_per_token(memory.load_config(CONFIGS / name), "bfloat16") == per_token


def test_plan_lines_say_what_stays_unquantized_and_what_is_found() -> None:
    lines = memory.plan(
        memory.load_config(CONFIGS / "llama-2-70b"), "4bit", "bfloat16", batch=4, context=4096
    )
    assert lines[0].startswith("memory: weights") and "68,976,648,192 parameters at 4bit" in lines[0]
    assert "lm_head" in lines[1] and "stay bfloat16" in lines[1]
    assert "KV cache 5.00 GiB (batch 4 x 4096 tokens at bfloat16)" in lines[2]
    assert lines[3].endswith(("fits", "does not fit"))


def test_an_unreadable_config_and_a_wrong_precision_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(MibeError, match=r"cannot read its config\.json"):
        memory.load_config(tmp_path)
    with pytest.raises(MibeError, match="precision 3bit"):
        memory.weights(memory.load_config(CONFIGS / "llama-2-13b"), "3bit")
