"""Logprob shapes for text split inside a character: `bytes` carries each token's own bytes
and legacy `text_offset` counts whole characters (`server/logprobs.py`)."""

from __future__ import annotations

from tines.runtime.outputs import TokenLogprob
from tines.runtime.server.logprobs import TokenBytes, chat_logprobs, completion_logprobs


def test_split_characters_keep_their_own_bytes_and_whole_character_offsets(tiny_server_engine):
    tok = tiny_server_engine.tokenizer
    token_bytes = TokenBytes(tok)
    ids = [i for i in range(tok.vocab_size) if token_bytes(i, "") in (b"\xc3", b"\xa9")][:2]
    ids.sort(key=lambda i: token_bytes(i, "") != b"\xc3")  # lead byte first
    assert [token_bytes(i, "") for i in ids] == [b"\xc3", b"\xa9"]
    lps = [TokenLogprob(i, tok.decode([i]), -0.5) for i in ids]
    chat = chat_logprobs(lps, token_bytes)
    assert bytes(b for e in chat.content for b in e.bytes).decode() == "é"
    legacy = completion_logprobs(lps + lps, token_bytes, text_start=3, num_top=1)
    assert legacy.text_offset == [3, 4, 4, 5]  # "é" starts at 3, the next one at 4
    assert legacy.top_logprobs[0] == {lps[0].token: -0.5}  # the token itself is always there
