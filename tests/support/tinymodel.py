"""A tiny random LLaMA and a tokenizer trained here, so tests run offline on a real model."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def corpus(repo: Path) -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in sorted((repo / "prompts").glob("*.jinja"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted((repo / "tasks" / "demo").glob("*.jsonl"))]
    texts += ["The answer is yes. The answer is no. Answer: A B C D E. maybe entailment contradiction"]
    return texts


def build(
    target: Path,
    repo: Path,
    context: int = 1024,
    seed: int = 0,
    hidden: int = 64,
    head_dim: int = 32,
    layers: int = 2,
    vocab: int = 1024,
    tokenizer: str = "byte-level",
    extra_text: tuple[str, ...] = (),
) -> Path:
    """`tokenizer`: "byte-level" (GPT-2, LLaMA-3, SmolLM style BPE), "metaspace" (LLaMA-2 style
    SentencePiece BPE, which Me-LLaMA uses) or "unigram" (T5 style SentencePiece)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    if tokenizer == "byte-level":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    elif tokenizer in ("metaspace", "unigram"):
        bpe = tokenizer == "metaspace"
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True) if bpe else models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
        kind = trainers.BpeTrainer if bpe else trainers.UnigramTrainer
        extra = {"unk_token": "<unk>"} if not bpe else {}
        trainer = kind(vocab_size=vocab, special_tokens=specials, **extra)
    else:
        raise ValueError(f"tokenizer {tokenizer!r}: byte-level, metaspace or unigram")
    tok.train_from_iterator(corpus(repo) + list(extra_text), trainer=trainer)
    if tokenizer == "metaspace":
        # As transformers' LlamaTokenizerFast: trained on words (no merge crosses a space, as in
        # SentencePiece), then applied to the whole text unsplit.
        tok.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="\u2581", prepend_scheme="first", split=False
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=context,
    )
    fast.chat_template = CHAT_TEMPLATE
    from tokenizers import processors

    fast.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", fast.bos_token_id)]
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // head_dim,
        num_key_value_heads=hidden // head_dim,
        head_dim=head_dim,
        max_position_embeddings=context,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    fast.save_pretrained(target)
    return target
