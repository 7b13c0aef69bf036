"""Tokenizer against transformers' tokenizer for the same files: ids and text must agree."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tines.runtime.tokenizer.tokenizer import Tokenizer


def _mismatches(ours: Tokenizer, theirs: Any, texts: list[str]) -> list[str]:
    """Every disagreement on encode (with/without special tokens) and decode (with/without
    skipping special tokens), as readable lines."""
    bad = []
    for text in texts:
        for add in (True, False):
            a, b = ours.encode(text, add_special_tokens=add), theirs.encode(text, add_special_tokens=add)
            if a != b:
                bad.append(f"encode({text!r}, add_special_tokens={add}): {a} != {b}")
        ids = theirs.encode(text)
        for skip in (False, True):
            a, b = ours.decode(ids, skip_special_tokens=skip), theirs.decode(ids, skip_special_tokens=skip)
            if a != b:
                bad.append(f"decode({ids}, skip={skip}) of {text!r}: {a!r} != {b!r}")
    return bad


@pytest.fixture(scope="module")
def tok(default_metadata: dict[str, Any]) -> Tokenizer:
    return Tokenizer.from_gguf_metadata(default_metadata, reference="transformers")


def test_default_gguf_matches_transformers(tok: Tokenizer, hf_default_tokenizer: Any,
                                           corpus: list[str]) -> None:
    assert len(corpus) >= 200
    assert _mismatches(tok, hf_default_tokenizer, corpus) == []
    assert tok.encode_batch(corpus) == [hf_default_tokenizer.encode(t) for t in corpus]


def test_default_gguf_vocabulary(tok: Tokenizer, hf_default_tokenizer: Any, default_gguf_path: Path,
                                 default_metadata: dict[str, Any]) -> None:
    assert Tokenizer.from_file(default_gguf_path, metadata=default_metadata).encode("a b") == tok.encode("a b")
    assert Tokenizer.from_file(default_gguf_path, metadata=default_metadata).encode("x  12") == [104, 256, 33, 34]
    assert tok.kind == "byte_level"
    assert tok.vocab_size == 49152 == len(hf_default_tokenizer)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)
    assert not tok.add_bos_token and not tok.add_eos_token
    assert tok.eos_token_ids == {0, 2}  # <|im_end|> and <|endoftext|>
    assert tok.special_token_ids == set(range(17))
    strings = tok.token_strings()
    assert strings == hf_default_tokenizer.convert_ids_to_tokens(list(range(49152)))
    assert tok.id_to_token(2) == "<|im_end|>" and tok.convert_ids_to_tokens([28120, 905]) == ["hello", "Ġworld"]
    assert tok.encode("<|im_start|>user\nhi<|im_end|>")[:1] == [1]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.id_to_token(49152)
    with pytest.raises(ValueError, match="str"):
        tok.encode(b"bytes")  # type: ignore[arg-type]


def test_hf_folder_matches_transformers(hf_default_tokenizer: Any, corpus: list[str],
                                        tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    hf_default_tokenizer.save_pretrained(tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 0]}))
    tok = Tokenizer.from_hf_folder(tmp_path)
    assert tok.kind == "byte_level"
    assert _mismatches(tok, hf_default_tokenizer, corpus) == []
    assert _mismatches(tok, transformers.AutoTokenizer.from_pretrained(tmp_path), corpus[:60]) == []
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)
    assert tok.eos_token_ids == {0, 2}
    assert Tokenizer.from_file(tmp_path).encode("hi <|im_end|>") == tok.encode("hi <|im_end|>")


def test_hf_folder_keeps_tokenizer_json_post_processor(hf_default_tokenizer: Any, corpus: list[str],
                                                      tmp_path: Path) -> None:
    # Llama-3 style: tokenizer.json's own TemplateProcessing adds BOS; the config has no flag.
    transformers = pytest.importorskip("transformers")
    hf_default_tokenizer.save_pretrained(tmp_path)
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    spec["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                       {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0],
                                                                   "tokens": ["<|endoftext|>"]}}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    ours = Tokenizer.from_hf_folder(tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert ours.encode("hi") == theirs.encode("hi") == [0, *ours.encode("hi", add_special_tokens=False)]
    assert _mismatches(ours, theirs, corpus[:60]) == []


def test_sentencepiece_hf_folder_matches_transformers(spm_gguf_path: Path, corpus: list[str],
                                                      tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoTokenizer.from_pretrained(str(spm_gguf_path.parent), gguf_file=spm_gguf_path.name)
    theirs.save_pretrained(tmp_path)
    ours = Tokenizer.from_hf_folder(tmp_path)
    assert ours.kind == "sentencepiece" and ours.add_bos_token and ours.bos_token == "<s>"
    assert _mismatches(ours, theirs, corpus) == []


def test_hf_folder_add_bos_flag_rebuilds_post_processor(hf_default_tokenizer: Any, tmp_path: Path) -> None:
    hf_default_tokenizer.save_pretrained(tmp_path)
    config_path = tmp_path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["add_bos_token"] = True
    config_path.write_text(json.dumps(config))
    tok = Tokenizer.from_hf_folder(tmp_path)
    assert tok.add_bos_token and tok.encode("hi") == [1, *tok.encode("hi", add_special_tokens=False)]


def test_sentencepiece_gguf_matches_transformers(spm_gguf_path: Path, corpus: list[str]) -> None:
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoTokenizer.from_pretrained(str(spm_gguf_path.parent), gguf_file=spm_gguf_path.name)
    ours = Tokenizer.from_file(spm_gguf_path)
    assert ours.kind == "sentencepiece" and ours.add_bos_token
    assert _mismatches(ours, theirs, corpus) == []
    assert ours.token_strings() == theirs.convert_ids_to_tokens(list(range(len(theirs))))
    # byte fallback really happens: a character outside the learned pieces becomes <0xNN> tokens
    assert ours.convert_ids_to_tokens(ours.encode("☃", add_special_tokens=False))[-3:] == ["<0xE2>", "<0x98>", "<0x83>"]
    assert ours.encode("<s>x<tool>")[:2] == [1, 1] and ours.token_to_id("<tool>") in ours.encode("<s>x<tool>")
    assert 260 not in ours.special_token_ids and {0, 1, 2, 259} <= ours.special_token_ids


def test_sentencepiece_without_space_prefix(tmp_path: Path, spm_gguf_writer: Any) -> None:
    # transformers ignores add_space_prefix=False for llama GGUFs; llama.cpp (and we) honour it.
    write_spm_gguf = spm_gguf_writer
    with_prefix, without = tmp_path / "a.gguf", tmp_path / "b.gguf"
    write_spm_gguf(with_prefix)
    write_spm_gguf(without, add_space_prefix=False)
    a, b = Tokenizer.from_file(with_prefix), Tokenizer.from_file(without)
    assert a.convert_ids_to_tokens(a.encode("the fox", add_special_tokens=False))[0].startswith("▁")
    ids = b.encode("the fox", add_special_tokens=False)
    assert not b.convert_ids_to_tokens(ids)[0].startswith("▁")
    assert b.decode(b.encode(" the fox", add_special_tokens=False)) == " the fox"


def test_bad_metadata_raises_value_error() -> None:
    with pytest.raises(ValueError, match="tokenizer.ggml.tokens"):
        Tokenizer.from_gguf_metadata({"tokenizer.ggml.model": "gpt2"})
    with pytest.raises(ValueError, match="merges"):
        Tokenizer.from_gguf_metadata({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"]})
    with pytest.raises(ValueError, match="does not exist"):
        Tokenizer.from_file("/nonexistent/model.gguf")
    with pytest.raises(ValueError, match="tokenizer.json"):
        Tokenizer.from_hf_folder(Path(__file__).parent)
    with pytest.raises(ValueError, match="'bert'"):
        Tokenizer.from_gguf_metadata({"tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": ["a"]})
    with pytest.raises(ValueError, match="scores"):
        Tokenizer.from_gguf_metadata({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a", "b"]})


@pytest.mark.parametrize("pre", ["llama-bpe", "qwen2"])
def test_other_pre_tokenizers_match_transformers(default_metadata: dict[str, Any], corpus: list[str],
                                                 tokenizer_gguf_writer: Any, tmp_path: Path, pre: str) -> None:
    # The default model's vocabulary, split the way Llama 3 / Qwen2 split text.
    transformers = pytest.importorskip("transformers")
    tokenizer_gguf_writer(tmp_path / "t.gguf", default_metadata, pre=pre, add_bos_token=True)
    theirs = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="t.gguf")
    ours = Tokenizer.from_gguf_metadata({**default_metadata, "tokenizer.ggml.pre": pre,
                                         "tokenizer.ggml.add_bos_token": True}, reference="transformers")
    assert ours.add_bos_token
    assert _mismatches(ours, theirs, corpus) == []


@pytest.mark.parametrize("pre", ["llama-bpe", "qwen2"])
def test_pre_tokenizer_regex_by_name(default_metadata: dict[str, Any], pre: str) -> None:
    # The split regex is chosen by tokenizer.ggml.pre: llama3's keeps up to 3 digits together,
    # qwen2's splits every digit, GPT-2's (smollm) keeps the run in one piece.
    tok = Tokenizer.from_gguf_metadata({**default_metadata, "tokenizer.ggml.pre": pre})
    pieces = tok.backend.pre_tokenizer.pre_tokenize_str("abc 12345")
    words = [p for p, _ in pieces]
    assert words == (["abc", "Ġ", "123", "45"] if pre == "llama-bpe" else ["abc", "Ġ", "1", "2", "3", "4", "5"])


def test_llama_cpp_reference_splits_digits_first(default_metadata: dict[str, Any]) -> None:
    # llama.cpp (and SmolLM2's own tokenizer.json) isolate digits before GPT-2's regex;
    # transformers' GGUF loader does not, which changes ids for whitespace before digits.
    hf_style = Tokenizer.from_gguf_metadata(default_metadata, reference="transformers")
    cpp_style = Tokenizer.from_gguf_metadata(default_metadata)  # the default
    assert hf_style.convert_ids_to_tokens(hf_style.encode("x  12")) == ["x", "Ġ", "Ġ", "1", "2"]
    assert cpp_style.convert_ids_to_tokens(cpp_style.encode("x  12")) == ["x", "ĠĠ", "1", "2"]
    assert cpp_style.encode("hello world") == hf_style.encode("hello world")
    with pytest.raises(ValueError, match="reference"):
        Tokenizer.from_gguf_metadata(default_metadata, reference="vllm")


def _splits(corpus: list[str]) -> list[tuple[str, str]]:
    """Texts cut in two at many places: mid-word, before and after spaces, runs of
    whitespace, digits, punctuation and special tokens."""
    rng = random.Random(0)
    texts = corpus + ["<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n Sure:   ok",
                      "numbers 12345 and 3.14159 and   spaced    words\n\n\nend"]
    cuts = []
    for text in texts:
        for _ in range(12):
            i = rng.randint(0, len(text))
            cuts.append((text[:i], text[i:]))
    return cuts


def test_encode_continued_equals_encoding_the_whole_text(tok: Tokenizer, corpus: list[str]) -> None:
    for text, more in _splits(corpus):
        assert tok.encode_continued(tok.encode(text), text, more) == tok.encode(text + more), \
            (text, more)


def test_sentencepiece_encode_continued_equals_encoding_the_whole_text(spm_gguf_path: Path,
                                                                         corpus: list[str]) -> None:
    spm = Tokenizer.from_file(spm_gguf_path)
    for text, more in _splits(corpus)[:60]:
        assert spm.encode_continued(spm.encode(text), text, more) == spm.encode(text + more)
