"""Fixtures for grammar tests: tiny hand-made vocabularies, the default model's real
vocabulary (from its GGUF), and the model's own tokenizer (Hugging Face `tokenizers`,
loaded once through transformers and then cached as tokenizer.json in pytest's cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tines.grammar import GrammarCompiler, TokenVocabulary

@pytest.fixture(scope="session")
def full_byte_vocab() -> TokenVocabulary:
    """Every single byte is a token (ids 0..255), EOS is 256."""
    return TokenVocabulary([bytes([b]) for b in range(256)] + [None], eos_token_ids=[256])


@pytest.fixture(scope="session")
def byte_compiler(full_byte_vocab) -> GrammarCompiler:
    return GrammarCompiler(full_byte_vocab, max_cached=1024)


@pytest.fixture(scope="session")
def gguf_metadata() -> dict:
    from tines.runtime.models.registry import cached_path

    path = cached_path()
    if not path.is_file():
        pytest.skip("the default model is not pulled (run `tines pull`)")
    from tines.runtime.models.gguf_file import GGUFFile

    return GGUFFile(path).metadata


@pytest.fixture(scope="session")
def real_vocab(gguf_metadata) -> TokenVocabulary:
    md = gguf_metadata
    special = {i for i, t in enumerate(md["tokenizer.ggml.token_type"]) if t == 3}
    return TokenVocabulary.from_token_strings(
        md["tokenizer.ggml.tokens"], "byte_level", special,
        {int(md["tokenizer.ggml.eos_token_id"])})


@pytest.fixture(scope="session")
def real_compiler(real_vocab) -> GrammarCompiler:
    return GrammarCompiler(real_vocab, max_cached=1024)


@pytest.fixture(scope="session")
def hf_tokenizer(gguf_metadata, request, tmp_path_factory):
    """The default model's tokenizer as a `tokenizers.Tokenizer` (`encode(text).ids`).

    transformers converts it from the GGUF once (~7 s, in a subprocess so this process does not
    pay for importing transformers); the result is cached as tokenizer.json in pytest's cache."""
    from tokenizers import Tokenizer

    from tines.runtime.models.registry import cached_path

    cache_dir = request.config.cache.mkdir("tines-grammar") if hasattr(request.config, "cache") \
        else tmp_path_factory.mktemp("tines-grammar")  # pytest run with -p no:cacheprovider
    cache = Path(cache_dir) / "smollm2-tokenizer.json"
    if not cache.is_file():
        pytest.importorskip("transformers")
        path = cached_path()
        script = ("import sys\nfrom transformers import AutoTokenizer\n"
                  "t = AutoTokenizer.from_pretrained(sys.argv[1], gguf_file=sys.argv[2])\n"
                  "t.backend_tokenizer.save(sys.argv[3])\n")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, "-c", script, str(path.parent), path.name,
                               str(cache)], cwd=tempfile.gettempdir(), env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0 or not cache.is_file():
            pytest.skip(f"could not load the model's tokenizer: {proc.stderr[-500:]}")
    return Tokenizer.from_file(str(cache))


@pytest.fixture(scope="session")
def encode(hf_tokenizer):
    return lambda text: hf_tokenizer.encode(text, add_special_tokens=False).ids
