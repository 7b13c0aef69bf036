"""IncrementalDetokenizer: streamed pieces add up to the full decode, never half a character."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tines.runtime.tokenizer.detokenizer import IncrementalDetokenizer
from tines.runtime.tokenizer.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def byte_level(default_metadata: dict[str, Any]) -> Tokenizer:
    return Tokenizer.from_gguf_metadata(default_metadata)


@pytest.fixture(scope="module")
def sentencepiece(spm_gguf_path: Path) -> Tokenizer:
    return Tokenizer.from_file(spm_gguf_path)


@pytest.fixture(scope="module")
def long_text(corpus: list[str]) -> str:
    return "".join(t for t in corpus if "\ufffd" not in t)


def _stream(detok: IncrementalDetokenizer, ids: list[int], step: int = 1) -> list[str]:
    pieces = [detok.push(ids[i:i + step]) for i in range(0, len(ids), step)]
    return [*pieces, detok.flush()]


@pytest.mark.parametrize("kind", ["byte_level", "sentencepiece"])
@pytest.mark.parametrize("step", [1, 3])
def test_stream_equals_full_decode(request: pytest.FixtureRequest, kind: str, step: int, long_text: str) -> None:
    tok: Tokenizer = request.getfixturevalue(kind)
    ids = tok.encode(long_text, add_special_tokens=False)
    assert len(ids) > 3000
    for skip in (False, True):
        detok = IncrementalDetokenizer(tok, skip_special_tokens=skip)
        pieces = _stream(detok, ids, step)
        full = tok.decode(ids, skip_special_tokens=skip)
        assert "".join(pieces) == full == detok.text
        assert not any("\ufffd" in p for p in pieces)
        assert detok.num_tokens == len(ids)
        assert len(detok._ids) < 200  # the window stays small: O(1) work per token


def test_multibyte_characters_are_held_back(byte_level: Tokenizer) -> None:
    ids = byte_level.encode("👨‍👩‍👧", add_special_tokens=False)  # many byte tokens
    detok = IncrementalDetokenizer(byte_level)
    pieces = [detok.push([i]) for i in ids]
    assert "" in pieces  # some tokens end mid-character
    assert "".join(pieces) == "👨‍👩‍👧" and detok.flush() == ""


def test_incomplete_character_released_by_flush(byte_level: Tokenizer) -> None:
    ids = byte_level.encode("é", add_special_tokens=False)
    snow = byte_level.encode("☃", add_special_tokens=False)
    assert len(snow) > 1
    detok = IncrementalDetokenizer(byte_level)
    assert detok.push(ids + snow[:1]) == "é"
    assert detok.flush() == "\ufffd" and detok.text == "é\ufffd"


def test_prompt_context_keeps_spacing(byte_level: Tokenizer, sentencepiece: Tokenizer) -> None:
    for tok in (byte_level, sentencepiece):
        prompt = tok.encode("the quick brown", add_special_tokens=False)
        gen = tok.encode("the quick brown fox jumps", add_special_tokens=False)[len(prompt):]
        detok = IncrementalDetokenizer(tok, prompt_ids_tail=prompt)
        text = "".join(_stream(detok, gen))
        assert text == " fox jumps", tok.kind


def test_special_tokens_skipped_or_kept(byte_level: Tokenizer) -> None:
    ids = byte_level.encode("Hi<|im_end|>", add_special_tokens=False)
    assert "".join(_stream(IncrementalDetokenizer(byte_level, skip_special_tokens=True), ids)) == "Hi"
    assert "".join(_stream(IncrementalDetokenizer(byte_level, skip_special_tokens=False), ids)) == "Hi<|im_end|>"
    assert IncrementalDetokenizer(byte_level).push([]) == ""


def test_invalid_utf8_is_released_after_a_bound(byte_level: Tokenizer) -> None:
    lead = byte_level.encode("☃", add_special_tokens=False)[0]  # a lone lead byte, never completed
    detok = IncrementalDetokenizer(byte_level)
    pieces = [detok.push([lead]) for _ in range(40)]
    assert "\ufffd" in "".join(pieces)  # released before the end, not held forever
    assert detok.text + detok.flush() == byte_level.decode([lead] * 40)


@pytest.mark.parametrize("step", [1, 2])
def test_sentencepiece_space_after_skipped_special_token(sentencepiece: Tokenizer, step: int) -> None:
    ids = sentencepiece.encode("the fox<|end|> the dog<|end|><|end|> hello", add_special_tokens=False)
    detok = IncrementalDetokenizer(sentencepiece, skip_special_tokens=True)
    assert "".join(_stream(detok, ids, step)) == sentencepiece.decode(ids, skip_special_tokens=True)
