"""Shared fixtures for runtime tests: the default model's GGUF metadata, transformers' tokenizer
for it (loaded once per session: ~7 s), a tiny SentencePiece GGUF, and a text corpus."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def default_gguf_path() -> Path:
    from tines.runtime.models.registry import PullError, resolve_model

    try:
        return resolve_model(pull_if_missing=False)
    except PullError as e:
        pytest.skip(f"default model not available: {e}")


@pytest.fixture(scope="session")
def default_metadata(default_gguf_path: Path) -> dict[str, Any]:
    from tines.runtime.models.gguf_file import GGUFFile

    return GGUFFile(default_gguf_path).metadata


@pytest.fixture(scope="session")
def hf_default_tokenizer(default_gguf_path: Path) -> Any:
    """transformers' tokenizer for the default GGUF: the oracle."""
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return transformers.AutoTokenizer.from_pretrained(str(default_gguf_path.parent),
                                                      gguf_file=default_gguf_path.name)


@pytest.fixture(scope="session")
def spm_gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spm") / "tiny-spm.gguf"
    write_spm_gguf(path)
    return path


def write_spm_gguf(path: Path, *, add_space_prefix: bool | None = None) -> None:
    """A SentencePiece-style GGUF (tokenizer.ggml.model = "llama"): <unk>/<s>/</s>, the 256
    `<0xNN>` byte tokens, a control and a user-defined token, and ~170 `▁` pieces learned from a
    small corpus, scored -rank like SentencePiece BPE. One tiny tensor keeps loaders happy."""
    import gguf
    import numpy as np
    from tokenizers import SentencePieceBPETokenizer

    corpus = ["the quick brown fox jumps over the lazy dog", "hello world, hello there",
              "tokenizers are fun to build and test", "naïve café résumé über", "日本語のテキスト",
              "  indented   spaces\tand\ttabs", "def main():\n    return 42", "Привет мир"] * 20
    trainer = SentencePieceBPETokenizer()
    trainer.train_from_iterator(corpus, vocab_size=320, min_frequency=2, show_progress=False)
    pieces = [p for p, _ in sorted(trainer.get_vocab().items(), key=lambda kv: kv[1]) if p != "<unk>"]
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), "<|end|>", "<tool>", *pieces]
    types = [2, 3, 3, *[6] * 256, 3, 4, *[1] * len(pieces)]
    scores = [0.0] * 261 + [-float(i) for i in range(len(pieces))]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_block_count(1)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_dimension_count(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if add_space_prefix is not None:
        w.add_add_space_prefix(add_space_prefix)
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_tokenizer_only_gguf(path: Path, metadata: dict[str, Any], **overrides: Any) -> None:
    """A GGUF holding only a byte-level tokenizer copied from `metadata` (with `overrides` of
    `tokenizer.ggml.*` keys, e.g. pre="llama-bpe") and one tiny tensor."""
    import gguf
    import numpy as np

    md = {**metadata, **{f"tokenizer.ggml.{k}": v for k, v in overrides.items()}}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_block_count(1)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_dimension_count(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(md["tokenizer.ggml.tokens"]))
    w.add_tokenizer_model(md["tokenizer.ggml.model"])
    w.add_tokenizer_pre(md["tokenizer.ggml.pre"])
    w.add_token_list(md["tokenizer.ggml.tokens"])
    w.add_token_types(md["tokenizer.ggml.token_type"])
    w.add_token_merges(md["tokenizer.ggml.merges"])
    w.add_bos_token_id(md["tokenizer.ggml.bos_token_id"])
    w.add_eos_token_id(md["tokenizer.ggml.eos_token_id"])
    w.add_add_bos_token(bool(md.get("tokenizer.ggml.add_bos_token", False)))
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


_FRAGMENTS = [
    # plain English, contractions, punctuation
    "Hello, world!", "The quick brown fox jumps over the lazy dog.", "I'm sure it's fine; we'll see.",
    "DON'T SHOUT", "they'RE here", "e.g. a.b.c ... !!! ??? --- ___", "(parens) [brackets] {braces} <angles>",
    "Mr. O'Neil's café", "naïve résumé über façade", "Ærø Ångström ß ẞ œ", "élan vital", "co-operate",
    # combining characters (NFD) and zero-width
    "e\u0301 a\u0300 o\u0308 n\u0303", "Z\u0351\u036b\u0343a\u0310\u0301l\u0357go\u0362", "zero\u200bwidth\u200djoin",
    "soft\u00adhyphen", "bidi\u200e\u200fmarks",
    # scripts
    "日本語のテキストです。", "中文字符测试，标点符号！", "한국어 문장입니다", "ひらがな カタカナ 漢字",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Привет, мир!", "Γειά σου Κόσμε",
    "Tiếng Việt có dấu", "ქართული ენა", "Հայերեն", "አማርኛ", "ᚠᛇᚻ runes", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟙𝟚𝟛",
    # emoji, ZWJ sequences, flags, skin tones, keycaps
    "😀😃😄", "👨‍👩‍👧‍👦 family", "👩🏽‍💻 coder", "🏳️‍🌈 flag", "🇫🇷🇯🇵🇺🇸", "👍🏿👍🏻", "1️⃣#️⃣", "❤️‍🔥", "🧑‍🤝‍🧑",
    # whitespace
    " ", "  ", "    ", "        x", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", " \n ",
    "trailing   ", "   leading", "a \t b", "\u00a0nbsp\u00a0", "\u3000ideographic", "line\u2028sep",
    "tab\tseparated\tvalues", "x\n  y\n    z",
    # code
    "def f(x: int) -> int:\n    return x ** 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "const f = async (x) => { await g(x); };", "fn main() { println!(\"{}\", 1 << 3); }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;", "<div class=\"a\">&nbsp;</div>",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"k\": \"v\"}}", "$ ls -la | grep '^d' && echo done",
    "if err != nil {\n\treturn err\n}", "#include <stdio.h>\nint main(void){return 0;}",
    "regex: ^[a-z0-9_.+-]+@[a-z0-9-]+\\.[a-z]{2,}$", "x = [i*i for i in range(10) if i % 2]",
    "    # indented comment\n    pass", "<?php echo $x; ?>", "\\begin{equation} e^{i\\pi} + 1 = 0 \\end{equation}",
    # numbers
    "0", "7", "42", "123", "1234", "12345678901234567890", "3.14159", "-0.001", "1e-10", "6.02E23",
    "1,234,567.89", "+1 (555) 123-4567", "2024-02-29T23:59:59Z", "v1.2.3-rc.4", "0xDEADBEEF", "0b1011",
    "½ ¼ ¾", "x² + y³", "Ⅻ Ⅳ", "٣٤٥ ۱۲۳", "१२३", "１２３ｆｕｌｌ", "50%", "$100.00", "€5,00",
    # chat template special tokens embedded in text
    "<|im_start|>user\nHi there<|im_end|>\n", "<|im_start|>assistant\n", "<|im_end|>", "<|endoftext|>",
    "abc<|endoftext|>def", " <|im_start|> spaced <|im_end|> ", "<|im_start|><|im_end|><|im_start|>",
    "<|im_start", "im_end|>", "<|im_end|x", "<repo_name>tines<file_sep>main.py", "<jupyter_code>print(1)",
    "<s>", "</s>", "<unk>", "<|end|>", "<tool>call</tool>",
    # odd bytes and controls
    "\x00", "\x01\x02\x7f", "\ufeffBOM", "\ufffd", "tab\x0bvertical", "a\x0cformfeed",
]


def tokenizer_corpus(n_mixed: int = 120, seed: int = 1234) -> list[str]:
    """Deterministic test strings: every fragment, then `n_mixed` random concatenations of
    fragments with random separators (so boundaries between scripts get exercised)."""
    rng = random.Random(seed)
    seps = ["", " ", "  ", "\n", "\t", "\r\n", " \n", "", ""]
    mixed = []
    for _ in range(n_mixed):
        parts = rng.sample(_FRAGMENTS, rng.randint(2, 6))
        mixed.append("".join(p + rng.choice(seps) for p in parts))
    return ["", *_FRAGMENTS, *mixed]


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return tokenizer_corpus()


@pytest.fixture(scope="session")
def tokenizer_gguf_writer():
    """`write_tokenizer_only_gguf(path, metadata, **overrides)`."""
    return write_tokenizer_only_gguf


@pytest.fixture(scope="session")
def spm_gguf_writer():
    """`write_spm_gguf(path, add_space_prefix=...)`, for tests that need a variant."""
    return write_spm_gguf


@pytest.fixture(scope="module")
def engine_factory(tiny_model_dir):
    """`make(**EngineConfig fields)`: engines on the tiny model (float32, a 4096-token pool
    unless told), shut down after the module."""
    from tines.runtime.engine.engine import Engine

    engines = []

    def make(**kw):
        kw.setdefault("kv_tokens", 4096)
        kw.setdefault("weights", "fp32")  # exact equalities need float32 throughout
        engine = Engine(str(tiny_model_dir), **kw)
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.shutdown()
