"""The shapes of OpenAI's legacy completions API, both ways: a request body from
SamplingParams, and RequestOutputs / StreamDeltas / select rows from the answers.

Completions give token texts but no token ids, so TokenLogprobs built here have
`token_id == -1` and completions have empty `token_ids`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tines.http import RemoteOutput
from tines.runtime.outputs import Completion, StreamDelta, TokenLogprob
from tines.runtime.sampling_params import SamplingParams

# SamplingParams field -> (extension field of vLLM / SGLang / tines servers, value that is
# the default and so is not sent)
_EXTENSIONS = {
    "top_k": ("top_k", -1), "min_p": ("min_p", 0.0),
    "repetition_penalty": ("repetition_penalty", 1.0), "min_new_tokens": ("min_tokens", 0),
    "ignore_eos": ("ignore_eos", False), "stop_token_ids": ("stop_token_ids", []),
    "skip_special_tokens": ("skip_special_tokens", True), "regex": ("regex", None),
    "choices": ("choices", None), "close_on_budget": ("close_on_budget", True),
}
_INEXPRESSIBLE = {"structural_tag": None, "json_whitespace": None, "json_extra_keys": False,
                  "prompt_logprobs": False}
# Not sent, on purpose: token_healing (a quality hint these servers lack; the text is sent whole).


def completion_body(model: str, text: str, params: SamplingParams,
                    stream: bool = False) -> dict[str, Any]:
    """The /v1/completions request for `text` under `params`. ValueError names a field the
    API cannot carry."""
    for name, default in _INEXPRESSIBLE.items():
        if getattr(params, name) != default:
            raise ValueError(f"{name}: cannot be sent to an OpenAI-compatible server's "
                             f"/v1/completions (use RemoteBackend with a tines server)")
    body: dict[str, Any] = {"model": model, "prompt": text, "max_tokens": params.max_new_tokens,
                            "temperature": params.temperature, "top_p": params.top_p,
                            "n": params.n}
    optional = {"stop": params.stop or None, "seed": params.seed,
                "frequency_penalty": params.frequency_penalty or None,
                "presence_penalty": params.presence_penalty or None}
    body.update({k: v for k, v in optional.items() if v is not None})
    if params.logprobs or params.top_logprobs:
        body["logprobs"] = params.top_logprobs
    for name, (field, default) in _EXTENSIONS.items():
        value = getattr(params, name)
        if value != default:
            body[field] = value
    grammar = params.grammar if params.grammar is not None else params.ebnf
    if grammar is not None:  # vLLM's extra body (its grammar backends read Lark and EBNF)
        body["structured_outputs"] = {"grammar": grammar}
    if params.json_schema is not None:
        schema = params.json_schema
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "strict": True,
            "schema": json.loads(schema) if isinstance(schema, str) else schema}}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _logprobs(lp: dict[str, Any] | None) -> list[TokenLogprob] | None:
    if not lp or lp.get("tokens") is None:
        return None
    tops = lp.get("top_logprobs") or [None] * len(lp["tokens"])
    return [TokenLogprob(-1, token, float(value if value is not None else 0.0),
                         [(-1, t, float(v)) for t, v in (top or {}).items()])
            for token, value, top in zip(lp["tokens"], lp["token_logprobs"], tops)]


def _usage(body: dict[str, Any]) -> tuple[int, int]:
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return int(usage.get("prompt_tokens") or 0), int(details.get("cached_tokens") or 0)


def parse_completion(body: dict[str, Any]) -> RemoteOutput:
    prompt, cached = _usage(body)
    outputs = [Completion(int(c.get("index", i)), c.get("text") or "", [],
                          c.get("finish_reason") or "stop", None, _logprobs(c.get("logprobs")))
               for i, c in enumerate(body.get("choices") or [])]
    outputs.sort(key=lambda c: c.index)
    return RemoteOutput(str(body.get("id", "")), [], outputs, cached, prompt_tokens=prompt)


class StreamCollector:
    """Completion chunks -> StreamDeltas, and the RequestOutput of the closing delta."""

    def __init__(self, n: int) -> None:
        self.request_id = ""
        self.texts = {i: "" for i in range(n)}
        self.finish: dict[int, str] = {}
        self.logprobs: dict[int, list[TokenLogprob]] = {}
        self.usage: dict[str, Any] = {}

    def push(self, chunk: dict[str, Any]) -> Iterator[StreamDelta]:
        self.request_id = str(chunk.get("id") or self.request_id)
        if chunk.get("usage"):
            self.usage = chunk
        for choice in chunk.get("choices") or []:
            index, text = int(choice.get("index", 0)), choice.get("text") or ""
            finish = choice.get("finish_reason")
            self.texts[index] = self.texts.get(index, "") + text
            if finish is not None:
                self.finish[index] = finish
            lps = _logprobs(choice.get("logprobs"))
            if lps is not None:
                self.logprobs.setdefault(index, []).extend(lps)
            if text or finish is not None:
                yield StreamDelta(self.request_id, index, text, [], finish_reason=finish)

    def final(self) -> StreamDelta:
        prompt, cached = _usage(self.usage)
        outputs = [Completion(i, text, [], self.finish.get(i, "stop"), None, self.logprobs.get(i))
                   for i, text in sorted(self.texts.items())]
        output = RemoteOutput(self.request_id, [], outputs, cached, prompt_tokens=prompt)
        return StreamDelta(self.request_id, -1, "", [], output=output)


def echo_rows(body: dict[str, Any], prefix: str,
              choices: list[str]) -> tuple[list[list[TokenLogprob]], int]:
    """(per choice, the logprobs of the echoed tokens that cover its text; the number of
    tokens of `prefix`), from a completion of the prompts `prefix + choice` with `echo` and
    `logprobs`. A token straddling the boundary counts as the choice's (the model saw it
    so). LookupError when the answer holds no logprobs for the prompt tokens."""
    by_index = {int(c.get("index", i)): c for i, c in enumerate(body.get("choices") or [])}
    rows, prefix_tokens = [], 0
    for i, choice in enumerate(choices):
        lp = (by_index.get(i) or {}).get("logprobs") or {}
        tokens, values, offsets = lp.get("tokens"), lp.get("token_logprobs"), lp.get("text_offset")
        if not tokens or values is None or offsets is None or offsets[0] > 0:
            raise LookupError("no logprobs for the echoed prompt")
        start, end = len(prefix), len(prefix) + len(choice)
        ends = offsets[1:] + [offsets[-1] + len(tokens[-1])]
        picked = [j for j in range(len(tokens)) if offsets[j] < end and ends[j] > start]
        if not picked:
            raise LookupError(f"no echoed token covers the choice {choice!r}")
        rows.append([TokenLogprob(-1, tokens[j], float(values[j] or 0.0)) for j in picked])
        if i == 0:
            prefix_tokens = picked[0]
    return rows, prefix_tokens
