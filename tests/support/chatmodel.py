"""The tiny LLaMA of tests/support/tinymodel.py as a "reasoning" chat model: `<think>`/`</think>` added to
its tokenizer (plain added tokens, not special ones, so decoding keeps them, as Qwen3's) and a chat
template with a thinking switch written here.

With `enable_thinking` false the generation prompt ends with an empty, closed trace
(`<think>\\n\\n</think>\\n\\n`), so the model answers at once; otherwise it ends at the assistant header,
or, built with `opens_trace=True`, with `<think>\\n` already written (the output then starts inside
the trace and only `</think>` appears in it).
"""

from __future__ import annotations

from pathlib import Path

from tests.support import tinymodel

THINK_TOKENS = ("<think>", "</think>")

# Text is written through {{ "..." }} so Jinja's block trimming (transformers sets trim_blocks) cannot
# eat a newline the prompt needs.
_TURNS = (
    "{%- for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '\\n' }}{% endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}"
)


def chat_template(opens_trace: bool = False) -> str:
    thinking = "{%- else %}{{ '<think>\\n' }}" if opens_trace else ""
    return _TURNS + thinking + "{%- endif %}{%- endif %}"


def build(target: Path, repo: Path, opens_trace: bool = False) -> Path:
    """A model folder (weights, tokenizer with the thinking template) at `target`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sample = "<think>\nThe question asks about a drug.\n\nIt is yes.\n</think>\n\nAnswer: yes"
    tinymodel.build(target, repo, extra_text=(sample,))
    tokenizer = AutoTokenizer.from_pretrained(target)
    tokenizer.add_tokens(list(THINK_TOKENS))
    tokenizer.chat_template = chat_template(opens_trace)
    model = AutoModelForCausalLM.from_pretrained(target)
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
