"""Scoring continuations of a prefix (what `select` runs on): token logprobs of each.

A continuation is tokenized together with its prefix (so the boundary merges as the model would
see it; only the prefix's last words are encoded again, `Tokenizer.encode_continued`); its
tokens are those after the longest common prefix with the prefix's own tokens.
Pure functions over token ids and a tokenizer: `Engine.score` runs the requests they describe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..outputs import RequestOutput

if TYPE_CHECKING:
    from ..tokenizer.tokenizer import Tokenizer

Prompt = str | Sequence[int]


@dataclass(slots=True)
class ContinuationScore:
    token_ids: list[int]
    logprobs: list[float]  # one per token of the continuation
    num_prompt_tokens: int
    num_cached_tokens: int

    @property
    def sum_logprob(self) -> float:
        return sum(self.logprobs)

    @property
    def mean_logprob(self) -> float:
        return self.sum_logprob / max(1, len(self.logprobs))


def continuation_requests(tok: Tokenizer, prefix: Prompt, prefix_ids: list[int],
                          continuations: Sequence[Prompt]) -> list[tuple[list[int], int]]:
    """For each continuation: (full token ids, index of its first token). `prefix_ids` is the
    prefix as the engine encodes a prompt ([] for an empty text)."""
    if not continuations:
        raise ValueError("continuations: at least one is needed")
    out = []
    for cont in continuations:
        if isinstance(prefix, str) and isinstance(cont, str):
            full = tok.encode_continued(prefix_ids, prefix, cont) if prefix else tok.encode(cont)
        else:
            cont_ids = tok.encode(cont, add_special_tokens=False) if isinstance(cont, str) else list(cont)
            full = prefix_ids + cont_ids
        start = common_prefix_len(prefix_ids, full)
        if start >= len(full):
            raise ValueError(f"continuation {cont!r} adds no tokens to the prefix")
        if start == 0:  # nothing to condition the first token on: give it a start token
            first = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            full, start = [first] + full, 1
        out.append((full, start))
    return out


def start_token(tokenizer: Tokenizer) -> int:
    """The model's start-of-document token: BOS, or EOS for a model without one."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def unconditional_requests(tokenizer: Tokenizer, scores: Sequence[ContinuationScore]
                           ) -> tuple[list[int], list[list[int]]]:
    """(prefix, continuations) that score each continuation's own token ids after only the
    start-of-document token (as SGLang feeds them as a new prompt): the rows line up token
    for token with the conditional scores, which `select`'s unconditional method subtracts."""
    return [start_token(tokenizer)], [list(s.token_ids) for s in scores]


def score_of(output: RequestOutput, start: int) -> ContinuationScore:
    lps = output.prompt_logprobs or []
    values = [lps[i].logprob for i in range(start, len(output.prompt_token_ids))]
    return ContinuationScore(output.prompt_token_ids[start:], values,
                             len(output.prompt_token_ids), output.num_cached_tokens)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens a and b share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
