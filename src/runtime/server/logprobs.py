"""Token logprobs in the three shapes clients expect: OpenAI chat (`content` list with
`top_logprobs`), OpenAI legacy completions (parallel lists), and the native API (SGLang's
`[logprob, token_id, text]` triples).

Every output token has its entry: a sequence that reports logprobs samples the text its
grammar forces rather than jumping over it. `bytes` is the token's own bytes (`TokenBytes`),
so a character split over several tokens is rebuilt from them; legacy `text_offset` counts
characters by their first byte, so it never runs past the text or backwards.
"""

from __future__ import annotations

from typing import Any

from ...grammar.vocabulary import token_bytes_decoder
from ..outputs import TokenLogprob
from ..tokenizer.tokenizer import Tokenizer
from .protocol_out import ChoiceLogprobs, CompletionLogprobs, TokenLogprobOut, TopLogprob


class TokenBytes:
    """A token id's raw bytes, from the tokenizer's token strings (special tokens: their
    text), decoded once per id."""

    def __init__(self, tokenizer: Tokenizer):
        self._strings = tokenizer.token_strings()
        self._decode = token_bytes_decoder(tokenizer.kind)
        self._special = tokenizer.special_token_ids | set(tokenizer.eos_token_ids)
        self._known: dict[int, bytes] = {}

    def __call__(self, token_id: int, text: str) -> bytes:
        b = self._known.get(token_id)
        if b is None:
            plain = 0 <= token_id < len(self._strings) and token_id not in self._special
            b = self._decode(self._strings[token_id]) if plain else text.encode("utf-8")
            self._known[token_id] = b
        return b


def chat_logprobs(lps: list[TokenLogprob] | None, token_bytes: TokenBytes
                  ) -> ChoiceLogprobs | None:
    if lps is None:
        return None
    return ChoiceLogprobs(content=[
        TokenLogprobOut(token=lp.token, logprob=lp.logprob,
                        bytes=list(token_bytes(lp.token_id, lp.token)),
                        top_logprobs=[TopLogprob(token=text, logprob=v,
                                                 bytes=list(token_bytes(i, text)))
                                      for i, text, v in lp.top])
        for lp in lps])


def completion_logprobs(lps: list[TokenLogprob] | None, token_bytes: TokenBytes,
                        text_start: int = 0, num_top: int = 0,
                        prompt: list[tuple[int, str, TokenLogprob | None]] | None = None
                        ) -> CompletionLogprobs | None:
    """`text_start` is the character offset of the first generated token (the prompt's length
    with echo). `prompt` (with echo): each prompt token's id, text and logprob, listed first
    from offset 0; the first token has no logprob (nothing precedes it), as OpenAI answers.
    A token's `top_logprobs` always hold the token itself (so up to num_top + 1 entries)."""
    if lps is None:
        return None
    out = CompletionLogprobs(top_logprobs=[] if num_top else None)

    def add(token_id: int, text: str, lp: TokenLogprob | None, offset: int) -> int:
        out.tokens.append(text)
        out.token_logprobs.append(lp.logprob if lp is not None else None)
        out.text_offset.append(offset)
        if num_top:
            top = None
            if lp is not None:
                top = {t: v for _, t, v in lp.top[:num_top]}
                top.setdefault(text, lp.logprob)
            out.top_logprobs.append(top)
        return offset + sum(1 for b in token_bytes(token_id, text) if b & 0xC0 != 0x80)

    offset = 0
    for token_id, text, lp in prompt or []:
        offset = add(token_id, text, lp, offset)
    offset = text_start
    for lp in lps:
        offset = add(lp.token_id, lp.token, lp, offset)
    return out


def native_logprobs(lps: list[TokenLogprob] | None) -> dict[str, Any]:
    if lps is None:
        return {}
    return {
        "output_token_logprobs": [[lp.logprob, lp.token_id, lp.token] for lp in lps],
        "output_top_logprobs": [[[v, i, text] for i, text, v in lp.top] for lp in lps],
    }
