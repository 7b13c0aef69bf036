"""OpenAI request fields -> the one `SamplingParams`.

The constraint comes from exactly one place: `response_format` (json_schema / json_object),
the `regex` or `choices` extensions, vLLM's `structured_outputs` (grammar / regex / choice /
json), or the tools (a structural tag, or a custom tool's grammar); asking for two is a 400.
`max_tokens` is validated here (a positive integer) and fitted to the prompt later
(`Dispatcher.fit`), once the prompt's length is known.
"""

from __future__ import annotations

from typing import Any

from ..sampling_params import SamplingParams
from .errors import APIError, bad_value
from .protocol import ChatCompletionRequest, CompletionRequest, ResponseFormat, StructuredOutputs
from ...grammar.json_closing import close_schema

# SamplingParams field -> the OpenAI request field a client wrote.
RENAME = {"max_new_tokens": "max_tokens", "min_new_tokens": "min_tokens",
          "top_logprobs": "top_logprobs", "json_schema": "response_format",
          "structural_tag": "tools"}

COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for the legacy completions API


def requested_max_tokens(req: ChatCompletionRequest | CompletionRequest) -> tuple[int | None, str]:
    """(max tokens asked for or None, the field it came from); 400 unless positive, or 0 for
    a completion that echoes its prompt (only the prompt's logprobs are wanted)."""
    value, field = req.max_tokens, "max_tokens"
    if isinstance(req, ChatCompletionRequest) and req.max_completion_tokens is not None:
        value, field = req.max_completion_tokens, "max_completion_tokens"
    if isinstance(req, CompletionRequest) and value is None:
        value = COMPLETIONS_DEFAULT_MAX_TOKENS
    echo_only = isinstance(req, CompletionRequest) and req.echo and value == 0
    if value is not None and value < 1 and not echo_only:
        raise APIError(400, f"{field}: must be a positive integer, got {value}"
                       + (" (0 only with echo)" if isinstance(req, CompletionRequest) else ""), field)
    return value, field


def response_format_schema(fmt: ResponseFormat | None) -> dict[str, Any] | bool | None:
    """The JSON schema a `response_format` asks for (None for plain text), its objects closed
    as `json_closing` says (every object, all properties required, under `strict`)."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None or fmt.json_schema.schema_ is None:
        raise APIError(400, "response_format.json_schema.schema: required when type is "
                       "'json_schema'", "response_format.json_schema.schema")
    return close_schema(fmt.json_schema.schema_, bool(fmt.json_schema.strict))


def structured_outputs_constraint(so: StructuredOutputs | None) -> tuple[str, Any] | None:
    """vLLM's `structured_outputs` as (SamplingParams field, value); one key at most."""
    if so is None:
        return None
    given = [(name, value) for name, value in (("grammar", so.grammar), ("regex", so.regex),
                                               ("choices", so.choice), ("json_schema", so.json_))
             if value is not None]
    if len(given) > 1:
        raise APIError(400, "structured_outputs: set one of grammar, regex, choice, json",
                       "structured_outputs")
    return given[0] if given else None


def build_params(req: ChatCompletionRequest | CompletionRequest, max_tokens: int | None,
                 structural_tag: dict[str, Any] | None = None,
                 tool_constraint: tuple[str, Any] | None = None) -> SamplingParams:
    """SamplingParams for a request. When `max_tokens` is None, max_new_tokens is a
    placeholder until `Dispatcher.fit` knows the room left after the prompt.
    `tool_constraint` is a custom tool's input constraint, ("grammar" | "regex", text)."""
    if req.stream_options is not None and not req.stream:
        raise APIError(400, "stream_options: only allowed when stream is true", "stream_options")
    if isinstance(req, CompletionRequest):
        if req.suffix:
            raise APIError(400, "suffix: not supported by this server", "suffix")
        if req.best_of is not None and req.best_of != req.n:
            raise APIError(400, "best_of: only best_of == n is supported", "best_of")
        logprobs, top = req.logprobs is not None, req.logprobs or 0
    else:
        if req.top_logprobs and not req.logprobs:
            raise APIError(400, "top_logprobs: needs logprobs set to true", "top_logprobs")
        logprobs, top = req.logprobs, req.top_logprobs or 0
    constraints = {
        "response_format": ("json_schema", response_format_schema(req.response_format)),
        "regex": ("regex", req.regex),
        "choices": ("choices", req.choices),
        "tools": ("structural_tag", structural_tag) if tool_constraint is None else tool_constraint,
        "structured_outputs": structured_outputs_constraint(req.structured_outputs) or (None, None),
    }
    given = {k: v for k, v in constraints.items() if v[1] is not None}
    if len(given) > 1:
        names = sorted(given)
        raise APIError(400, f"{names[-1]}: cannot be combined with {', '.join(names[:-1])} "
                       "(one output constraint per request)", names[-1])
    fields: dict[str, Any] = {
        "max_new_tokens": max_tokens or max(1, req.min_tokens or 0), "n": req.n, "stop": req.stop or [], "seed": req.seed,
        "logprobs": logprobs, "top_logprobs": top, "ignore_eos": req.ignore_eos,
        "stop_token_ids": req.stop_token_ids or [], "skip_special_tokens": req.skip_special_tokens,
        "min_new_tokens": req.min_tokens or 0, "token_healing": req.token_healing,
        "close_on_budget": req.close_on_budget, "logit_bias": _logit_bias(req.logit_bias),
    }
    for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty",
                 "frequency_penalty", "presence_penalty"):
        value = getattr(req, name)
        if value is not None:
            fields[name] = value
    for name, value in given.values():
        fields[name] = value
    try:
        return SamplingParams(**fields)
    except (ValueError, TypeError) as e:
        if isinstance(req, CompletionRequest) and str(e).startswith("top_logprobs"):
            raise APIError(400, f"logprobs: {str(e).partition(': ')[2]}", "logprobs") from None
        raise bad_value(e if isinstance(e, ValueError) else ValueError(str(e)), RENAME) from None


def _logit_bias(bias: dict[str, float] | None) -> dict[int, float]:
    """OpenAI's logit_bias (token ids as JSON keys, so strings) with integer keys; 400 for a
    key that is not a token id. The values are range-checked by SamplingParams."""
    out = {}
    for key, value in (bias or {}).items():
        if not key.isdigit():
            raise APIError(400, f"logit_bias: key {key!r} is not a token id", "logit_bias")
        out[int(key)] = value
    return out


def constraint_param(params: SamplingParams) -> str | None:
    """The request field to blame when the constraint fails to compile."""
    kind = params.constraint[0] if params.constraint else None
    return {"json_schema": "response_format", "structural_tag": "tools", "regex": "regex",
            "choices": "choices", "grammar": "grammar", "ebnf": "ebnf"}.get(kind) if kind else None
