"""TokenVocabulary: token id → exact output bytes."""

from __future__ import annotations

import pytest

from tines.grammar import TokenVocabulary
from tines.grammar.vocabulary import byte_level_token_bytes, sentencepiece_token_bytes


def test_byte_level_maps_gpt2_characters_back_to_bytes():
    assert byte_level_token_bytes("Ġhello") == b" hello"
    assert byte_level_token_bytes("Ċ") == b"\n"
    assert byte_level_token_bytes("Ã©") == "é".encode()


def test_byte_level_token_outside_the_table_is_its_utf8():
    assert byte_level_token_bytes("<|im_end|>") == b"<|im_end|>"


def test_sentencepiece_space_and_byte_fallback():
    assert sentencepiece_token_bytes("\u2581the") == b" the"
    assert sentencepiece_token_bytes("<0x0A>") == b"\n"
    assert sentencepiece_token_bytes("é") == "é".encode()


def test_special_tokens_are_none_and_eos_is_kept_separately():
    v = TokenVocabulary.from_token_strings(["<s>", "</s>", "a", "Ġb"], "byte_level",
                                           special_token_ids={0, 1}, eos_token_ids={1})
    assert v.token_bytes == (None, None, b"a", b" b")
    assert v.eos_token_ids == frozenset({1})


def test_vocab_size_pads_with_unusable_ids():
    v = TokenVocabulary([b"a", b"b"], eos_token_ids=[1], vocab_size=40)
    assert v.vocab_size == 40 and v.num_words == 2
    assert v.token_bytes[2:] == (None,) * 38


def test_fingerprint_is_stable_and_content_sensitive():
    a = TokenVocabulary([b"a", b"b"], [1])
    assert a.fingerprint == TokenVocabulary([b"a", b"b"], [1]).fingerprint
    assert a.fingerprint != TokenVocabulary([b"a", b"c"], [1]).fingerprint
    assert a.fingerprint != TokenVocabulary([b"a", b"b"], [0]).fingerprint


def test_single_byte_mask_lists_bytes_that_are_whole_tokens():
    v = TokenVocabulary([b"a", b"bc", b"d", None], [3])
    assert v.single_byte_mask == (1 << ord("a")) | (1 << ord("d"))


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError):
        TokenVocabulary([b"a"], eos_token_ids=[])
    with pytest.raises(ValueError):
        TokenVocabulary([b"a"], eos_token_ids=[5])
    with pytest.raises(ValueError):
        TokenVocabulary.from_token_strings(["a"], "wordpiece", set(), {0})


def test_real_vocabulary_from_gguf(real_vocab, gguf_metadata):
    assert real_vocab.vocab_size == 49152
    assert real_vocab.eos_token_ids == frozenset({2})
    assert all(real_vocab.token_bytes[i] is None for i in range(17))  # control tokens
    toks = gguf_metadata["tokenizer.ggml.tokens"]
    assert real_vocab.token_bytes[toks.index("Ġhello")] == b" hello"
    assert bin(real_vocab.single_byte_mask).count("1") == 235  # 21 bytes have no token
