"""The shapes of the tines server's native API (SGLang's, plus /score), both ways: the
`sampling_params` of a /generate request, and RequestOutputs / StreamDeltas / ScoreResults
from the answers.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tines.backend import ScoreResult
from tines.http import RemoteOutput
from tines.runtime.outputs import Completion, StreamDelta, TokenLogprob
from tines.runtime.sampling_params import SamplingParams

_DEFAULTS = asdict(SamplingParams())


def wire_params(params: SamplingParams) -> dict[str, Any]:
    """`sampling_params` for /generate: the fields that differ from their defaults (so a
    server that predates a field only hears of it when a program uses it)."""
    data = asdict(params)
    out = {k: v for k, v in data.items() if v != _DEFAULTS[k]}
    out["max_new_tokens"] = params.max_new_tokens
    return out


def _logprobs(meta: dict[str, Any]) -> list[TokenLogprob] | None:
    rows = meta.get("output_token_logprobs")
    if rows is None:
        return None
    tops = meta.get("output_top_logprobs") or [[] for _ in rows]
    return [TokenLogprob(int(tid), text or "", float(lp),
                         [(int(i), t or "", float(v)) for v, i, t in top])
            for (lp, tid, text), top in zip(rows, tops)]


def _completion(item: dict[str, Any]) -> Completion:
    meta = item.get("meta_info") or {}
    finish = meta.get("finish_reason") or {}
    return Completion(int(item.get("index", 0)), item.get("text", ""),
                      list(item.get("output_ids") or []), finish.get("type") or "stop",
                      finish.get("matched"), _logprobs(meta))


def parse_generate(body: dict[str, Any] | list[dict[str, Any]]) -> RemoteOutput:
    """A /generate answer (one completion object, or a list for n > 1) as a RequestOutput."""
    items = body if isinstance(body, list) else [body]
    meta = items[0].get("meta_info") or {}
    outputs = sorted((_completion(item) for item in items), key=lambda c: c.index)
    return RemoteOutput(str(meta.get("id", "")), [], outputs, int(meta.get("cached_tokens", 0)),
                        prompt_tokens=int(meta.get("prompt_tokens", 0)))


class StreamCollector:
    """Turns /generate's SSE events into StreamDeltas, and the final events of every
    completion into the RequestOutput of the closing delta (index -1, as the engine's)."""

    def __init__(self) -> None:
        self.finals: dict[int, dict[str, Any]] = {}
        self.request_id = ""

    def push(self, event: dict[str, Any]) -> list[StreamDelta]:
        meta = event.get("meta_info") or {}
        self.request_id = str(meta.get("id", self.request_id))
        index = int(event.get("index", 0))
        finish = (meta.get("finish_reason") or {}).get("type")
        if finish is not None:
            self.finals[index] = event
        delta = event.get("delta", "")
        if not delta and finish is None:
            return []
        return [StreamDelta(self.request_id, index, delta, [], finish_reason=finish)]

    def final(self) -> StreamDelta:
        if not self.finals:
            raise RuntimeError("the server's stream ended before its final event")
        output = parse_generate(list(self.finals.values()))
        return StreamDelta(output.request_id, -1, "", [], output=output)


def _score_rows(listing: list[dict[str, Any]]) -> list[list[TokenLogprob]]:
    return [[TokenLogprob(int(i), t, float(lp))
             for i, t, lp in zip(row["token_ids"], row.get("tokens") or [""] * len(row["token_ids"]),
                                 row["logprobs"])]
            for row in listing]


def parse_score(body: dict[str, Any]) -> ScoreResult:
    """A /score answer as a ScoreResult. `meta_info.prompt_tokens` counts the text and the
    first choice; the result counts the text alone, as the in-process backend does."""
    rows = _score_rows(body["choices"])
    uncond = body.get("unconditional")
    meta = body.get("meta_info") or {}
    return ScoreResult(rows, _score_rows(uncond) if uncond is not None else None,
                       num_prompt_tokens=int(meta.get("prompt_tokens", 0)) - len(rows[0]),
                       num_cached_tokens=int(meta.get("cached_tokens", 0)))
