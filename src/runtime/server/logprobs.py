"""Token logprobs in the three shapes clients expect: OpenAI chat (`content` list with
`top_logprobs`), OpenAI legacy completions (parallel lists), and the native API (SGLang's
`[logprob, token_id, text]` triples).

Only sampled tokens have logprobs: text the grammar forced (jump-forward) was never sampled.
"""

from __future__ import annotations

from typing import Any

from ..outputs import TokenLogprob
from .protocol_out import ChoiceLogprobs, CompletionLogprobs, TokenLogprobOut, TopLogprob


def _top(token: str, logprob: float) -> TopLogprob:
    return TopLogprob(token=token, logprob=logprob, bytes=list(token.encode("utf-8")))


def chat_logprobs(lps: list[TokenLogprob] | None) -> ChoiceLogprobs | None:
    if lps is None:
        return None
    return ChoiceLogprobs(content=[
        TokenLogprobOut(token=lp.token, logprob=lp.logprob, bytes=list(lp.token.encode("utf-8")),
                        top_logprobs=[_top(text, v) for _, text, v in lp.top])
        for lp in lps])


def completion_logprobs(lps: list[TokenLogprob] | None, text_start: int = 0, num_top: int = 0,
                        prompt: list[tuple[str, TokenLogprob | None]] | None = None
                        ) -> CompletionLogprobs | None:
    """`text_start` is the character offset of the first generated token (the prompt's length
    with echo). `prompt` (with echo): each prompt token's text and logprob, listed first from
    offset 0; the first token has no logprob (nothing precedes it), as OpenAI answers."""
    if lps is None:
        return None
    out = CompletionLogprobs(top_logprobs=[] if num_top else None)

    def add(text: str, lp: TokenLogprob | None, offset: int) -> None:
        out.tokens.append(text)
        out.token_logprobs.append(lp.logprob if lp is not None else None)
        out.text_offset.append(offset)
        if num_top:
            out.top_logprobs.append({t: v for _, t, v in lp.top[:num_top]} if lp is not None else None)

    offset = 0
    for text, lp in prompt or []:
        add(text, lp, offset)
        offset += len(text)
    offset = text_start
    for lp in lps:
        add(lp.token, lp, offset)
        offset += len(lp.token)
    return out


def native_logprobs(lps: list[TokenLogprob] | None) -> dict[str, Any]:
    if lps is None:
        return {}
    return {
        "output_token_logprobs": [[lp.logprob, lp.token_id, lp.token] for lp in lps],
        "output_top_logprobs": [[[v, i, text] for i, text, v in lp.top] for lp in lps],
    }
