"""SGLang's native-protocol details on `/generate`: the request fields SGLang's frontend
(`sgl.RuntimeEndpoint`) sends beyond tines' SamplingParams, and the `meta_info` shapes it reads.

- `sampling_params` values that are `null` mean "unset" (SGLang sends every field).
- `max_new_tokens: 0` is a prefill-only request: the prompt is computed (into the radix cache)
  and nothing is generated (`cache_prefix`, `select`'s prefix warm-up).
- `spaces_between_special_tokens` is accepted and has no effect (tines decodes special tokens
  without inserted spaces).
- `stop_regex` (a pattern or a list): the text is cut before the first match, and
  `finish_reason` is `{"type": "stop", "matched": <the matched text>}`. It is applied to the
  finished text, so the request still runs to its other stop conditions; not with `stream`.
- `logprob_start_len` (with `return_logprob`): `input_token_logprobs` lists the prompt tokens
  from that position on, `[logprob, token_id, text]`, the first prompt token with logprob
  `null` (nothing precedes it). Unset or -1: only output tokens, except on a prefill-only
  request, where it is 0 (every prompt token: what `select`'s unconditional scoring reads).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..outputs import Completion, RequestOutput, TokenLogprob
from .errors import APIError


# the extra `sampling_params` fields, as the OpenAPI document lists them
SGLANG_FIELDS: dict[str, Any] = {
    "stop_regex": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "spaces_between_special_tokens": {"type": "boolean"},
}


@dataclass(slots=True)
class NativeExtras:
    """What a /generate request asks for beyond SamplingParams."""

    prefill_only: bool = False
    stop_regex: list[re.Pattern[str]] = field(default_factory=list)


def split_extras(data: dict[str, Any]) -> tuple[dict[str, Any], NativeExtras]:
    """`sampling_params` without SGLang's extra fields and nulls, and those extras. 400
    naming the field for a value of the wrong type or a pattern that does not compile."""
    data = {k: v for k, v in data.items() if v is not None}
    extras = NativeExtras()
    spaces = data.pop("spaces_between_special_tokens", True)
    if not isinstance(spaces, bool):
        raise APIError(400, "sampling_params.spaces_between_special_tokens: must be a boolean",
                       "sampling_params.spaces_between_special_tokens")
    patterns = data.pop("stop_regex", [])
    patterns = [patterns] if isinstance(patterns, str) else patterns
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise APIError(400, "sampling_params.stop_regex: must be a pattern or a list of non-empty "
                       "patterns", "sampling_params.stop_regex")
    for p in patterns:
        try:
            extras.stop_regex.append(re.compile(p))
        except re.error as e:
            raise APIError(400, f"sampling_params.stop_regex: {p!r} does not compile ({e})",
                           "sampling_params.stop_regex") from None
    if data.get("max_new_tokens") == 0 and type(data["max_new_tokens"]) is int:
        extras.prefill_only = True
        data["max_new_tokens"] = 1
    return data, extras


def cut_at_stop_regex(c: Completion, patterns: list[re.Pattern[str]],
                      decode: Callable[[list[int]], str]) -> Completion:
    """`c` cut before the earliest match of any pattern, its token ids (and logprobs) cut to
    the longest run of tokens whose text fits in what is kept; `c` itself when none matches."""
    hits = [m for m in (p.search(c.text) for p in patterns) if m is not None]
    if not hits:
        return c
    first = min(hits, key=lambda m: m.start())
    kept = first.start()
    num_tokens = 0
    while num_tokens < len(c.token_ids) and len(decode(c.token_ids[:num_tokens + 1])) <= kept:
        num_tokens += 1
    return Completion(c.index, c.text[:kept], c.token_ids[:num_tokens], "stop", first.group(0),
                      c.logprobs[:num_tokens] if c.logprobs is not None else None)


def finish_reason(c: Completion, max_new_tokens: int) -> dict[str, Any]:
    """SGLang's shape: {"type": "stop", "matched": str | token id} | {"type": "length",
    "length": n} | {"type": "abort", "message": ...}."""
    if c.finish_reason == "length":
        return {"type": "length", "length": max_new_tokens}
    if c.finish_reason == "abort":
        return {"type": "abort", "message": "aborted"}
    return {"type": c.finish_reason, "matched": c.matched_stop}


def _row(lp: TokenLogprob | None, token_id: int, text: str | None) -> list[Any]:
    return [lp.logprob if lp is not None else None, token_id, text]


def input_logprobs(out: RequestOutput, start: int, decode: Callable[[list[int]], str]) -> dict[str, Any]:
    """`input_token_logprobs` / `input_top_logprobs` from prompt position `start` on, each
    token's text from `decode`."""
    lps = out.prompt_logprobs or [None] * len(out.prompt_token_ids)
    ids = out.prompt_token_ids[start:]
    rows = [_row(lps[start + i], t, decode([t])) for i, t in enumerate(ids)]
    tops = [[[v, i, s] for i, s, v in lps[start + k].top] if lps[start + k] is not None else None
            for k in range(len(ids))]
    return {"input_token_logprobs": rows, "input_top_logprobs": tops}
