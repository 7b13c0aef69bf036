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


def completion_logprobs(lps: list[TokenLogprob] | None, text_start: int = 0,
                        num_top: int = 0) -> CompletionLogprobs | None:
    """`text_start` is the character offset of the first token (the prompt's length with echo)."""
    if lps is None:
        return None
    out = CompletionLogprobs(top_logprobs=[] if num_top else None)
    offset = text_start
    for lp in lps:
        out.tokens.append(lp.token)
        out.token_logprobs.append(lp.logprob)
        out.text_offset.append(offset)
        offset += len(lp.token)
        if num_top:
            out.top_logprobs.append({text: v for _, text, v in lp.top[:num_top]})
    return out


def native_logprobs(lps: list[TokenLogprob] | None) -> dict[str, Any]:
    if lps is None:
        return {}
    return {
        "output_token_logprobs": [[lp.logprob, lp.token_id, lp.token] for lp in lps],
        "output_top_logprobs": [[[v, i, text] for i, text, v in lp.top] for lp in lps],
    }
