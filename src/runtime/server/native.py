"""The native API (SGLang's shapes): `POST /generate` and `POST /score`.

`/generate` takes `text` or `input_ids` (one prompt or a list), `sampling_params` with the
exact field names of `SamplingParams` (constraints `regex` / `json_schema` / `choices` /
`structural_tag` included), `stream`, `return_logprob`, `top_logprobs_num` and an optional
`rid`. It answers one object per completion, `{"text", "output_ids", "index", "meta_info"}`,
or a list of them when there are several prompts or `n > 1`. Streamed events carry the
cumulative `text` so far, the new `delta`, the completion's `index` and the `prompt_index`;
the last event of each completion has its `finish_reason`, `output_ids` and full `meta_info`.
`/score` and `/warm` (prefill-only requests) are in `native_prefill`; the SGLang fields
beyond SamplingParams (`max_new_tokens: 0`, `stop_regex`, `logprob_start_len`, ...) and
SGLang's `meta_info` shapes are in `native_sglang`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields, replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..outputs import Completion as EngineCompletion
from ..outputs import RequestOutput
from ..sampling_params import SamplingParams
from .dispatch import Job, results, until_disconnected
from .errors import APIError, bad_value
from .guard import GuardedRoute
from .limits import check_client_id
from .logprobs import native_logprobs
from .native_sglang import (SGLANG_FIELDS, NativeExtras, cut_at_stop_regex, finish_reason,
                            input_logprobs, split_extras)
from .protocol_out import new_id
from .sse import DONE, error_event, event, merge, sse_response
from .state import ServerState, require_api_key, state_of

router = APIRouter(route_class=GuardedRoute, dependencies=[Depends(require_api_key)])
log = logging.getLogger("tines.server")
_PARAMS = TypeAdapter(SamplingParams)
_FIELDS = frozenset(f.name for f in fields(SamplingParams))


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | list[str] | None = None
    input_ids: list[int] | list[list[int]] | None = None
    # validated strictly by parse_sampling_params; documented with SamplingParams' fields
    sampling_params: dict[str, Any] = Field(default_factory=dict, json_schema_extra={
        "properties": {**_PARAMS.json_schema()["properties"], **SGLANG_FIELDS},
        "additionalProperties": False})
    stream: bool = False
    return_logprob: bool = False
    top_logprobs_num: int | None = None
    logprob_start_len: int | None = None  # -1 or unset: output tokens only (see native_sglang)
    return_text_in_logprobs: bool = False  # token texts are always returned
    rid: str | None = Field(default=None, json_schema_extra={  # checked by check_client_id
        "pattern": "^[A-Za-z0-9._:\\-]{1,256}$"})
    model: str | None = None  # this server's model (404 otherwise); a model set routes on it
    lora_path: str | None = None  # SGLang's name: a loaded LoRA adapter, by name


def parse_sampling_params(data: dict[str, Any], return_logprob: bool = False,
                          top_logprobs: int = 0) -> SamplingParams:
    """SamplingParams from JSON; 400 naming `sampling_params.<field>` for an unknown field, a
    value of the wrong type or out of range."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise APIError(400, f"sampling_params: unknown field(s) {', '.join(unknown)}",
                       f"sampling_params.{unknown[0]}")
    data = dict(data)
    if isinstance(data.get("stop"), str):
        data["stop"] = [data["stop"]]
    if return_logprob:
        data.setdefault("logprobs", True)
    if top_logprobs:
        data.setdefault("top_logprobs", top_logprobs)
    try:  # strict: "5" is not a number of tokens (JSON round trip: strict dataclass from a dict)
        return _PARAMS.validate_json(json.dumps(data), strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        if first["type"] == "value_error":
            msg = first["msg"].removeprefix("Value error, ")
            raise bad_value(ValueError(msg), prefix="sampling_params.",
                            default_param="sampling_params") from None
        field = f"sampling_params.{first['loc'][0]}" if first["loc"] else "sampling_params"
        raise APIError(400, f"{field}: {first['msg']} (got {first.get('input')!r:.80})", field) from None


def _num_prompts(req: GenerateRequest) -> tuple[int, str]:
    """(how many prompts, the field they are in); 400 unless exactly one field is given and
    a list of prompts is not empty."""
    if (req.text is None) == (req.input_ids is None):
        raise APIError(400, "text: give exactly one of `text` and `input_ids`", "text")
    field = "text" if req.text is not None else "input_ids"
    value = req.text if req.text is not None else req.input_ids
    if isinstance(value, list) and not value:
        raise APIError(400, f"{field}: empty (give a prompt, or a non-empty list of prompts)", field)
    if isinstance(value, str) or isinstance(value[0], int):
        return 1, field
    return len(value), field


def _prompts(st: ServerState, req: GenerateRequest) -> list[list[int]]:
    """Token ids of every prompt (tokenizing: call it off the event loop)."""
    if req.text is not None:
        texts = [req.text] if isinstance(req.text, str) else req.text
        return [st.dispatcher.encode(t, "text" if len(texts) == 1 else f"text[{i}]")
                for i, t in enumerate(texts)]
    ids = req.input_ids
    batch = [ids] if isinstance(ids[0], int) else ids
    return [st.dispatcher.encode(list(x), "input_ids" if len(batch) == 1 else f"input_ids[{i}]")
            for i, x in enumerate(batch)]


@router.post("/generate")
async def generate(body: GenerateRequest, request: Request) -> Response:
    arrival = time.perf_counter()
    st = state_of(request)
    lora = st.check_model(body.model) if body.model is not None else None
    rid = check_client_id(body.rid) if body.rid is not None else new_id("gen")
    data, extras = split_extras(body.sampling_params)
    base = parse_sampling_params(data, body.return_logprob, body.top_logprobs_num or 0)
    if body.lora_path is not None or lora is not None:
        base = replace(base, lora=body.lora_path or lora)
    if extras.stop_regex and body.stream:
        raise APIError(400, "sampling_params.stop_regex: not supported with stream",
                       "sampling_params.stop_regex")
    st.limits.check_n(base.n, "sampling_params.n")
    num_prompts, field = _num_prompts(body)
    st.limits.check_batch(num_prompts, base.n, field)
    prompts = await asyncio.to_thread(_prompts, st, body)
    params = [st.dispatcher.fit(base, base.max_new_tokens, len(ids)) for ids in prompts]
    starts = [_logprob_start(body, extras, len(ids)) for ids in prompts]
    blame = base.constraint[0] if base.constraint else None
    jobs = await st.dispatcher.start_all(
        prompts, params, group=rid, endpoint="generate", id_param="rid",
        rename={k: f"sampling_params.{k}" for k in _FIELDS},
        constraint_param=f"sampling_params.{blame}" if blame else None, arrival=arrival,
        prefill_only=extras.prefill_only, logprob_starts=[None if s is None else max(1, s) for s in starts])
    # `sampling_params.logprobs` asks for them too (the engine computes them either way)
    shape = _Shape(st, body.return_logprob or base.logprobs, extras, starts)
    single = len(prompts) == 1 and base.n == 1
    if body.stream:
        return sse_response(_stream(jobs, arrival, shape), {"X-Request-Id": rid},
                            lambda: [job.close() for job in jobs])
    try:
        outs = await until_disconnected(request, _results(jobs))
    finally:
        for job in jobs:
            job.close()
    if outs is None:
        return Response(status_code=499)
    items = [_item(o, c, arrival, shape, p) for p, o in enumerate(outs) for c in o.outputs]
    return JSONResponse(items[0] if single else items, headers={"X-Request-Id": rid})


async def _results(jobs: list[Job]) -> list[RequestOutput]:
    try:
        return await results(jobs)
    except RuntimeError as e:  # the engine failed this request (RequestError) or stopped
        raise APIError(500, str(e)) from None


def _logprob_start(body: GenerateRequest, extras: NativeExtras, num_prompt: int) -> int | None:
    """First prompt position whose logprob is answered (None: none). 400 for a bad value."""
    start = body.logprob_start_len
    if start is not None and start < -1:
        raise APIError(400, "logprob_start_len: must be -1 or a prompt position", "logprob_start_len")
    if not body.return_logprob:
        return None
    if start is None or start == -1:
        return 0 if extras.prefill_only else None
    return start if start < num_prompt else None


@dataclass(slots=True)
class _Shape:
    """How a request's completions are answered: logprobs asked for, SGLang extras, and each
    prompt's first logprob position."""

    st: ServerState
    return_logprob: bool
    extras: NativeExtras
    starts: list[int | None]

    def meta(self, out: RequestOutput, c: EngineCompletion | None, arrival: float,
             prompt_index: int) -> dict[str, Any]:
        meta: dict[str, Any] = {"id": out.request_id, "prompt_tokens": out.num_prompt_tokens,
                                "cached_tokens": out.num_cached_tokens}
        if c is None:
            return meta
        meta["completion_tokens"] = len(c.token_ids)
        meta["finish_reason"] = {"type": "length", "length": 0} if self.extras.prefill_only \
            else finish_reason(c, len(c.token_ids))
        meta["e2e_latency"] = round(time.perf_counter() - arrival, 6)
        if self.return_logprob:
            meta.update({"output_token_logprobs": [], "output_top_logprobs": [],
                         "input_token_logprobs": [], "input_top_logprobs": []})
            meta.update(native_logprobs(c.logprobs))
            start = self.starts[prompt_index]
            if start is not None:
                meta.update(input_logprobs(out, start, self.st.engine.tokenizer.decode))
        return meta


def _item(out: RequestOutput, c: EngineCompletion, arrival: float, shape: _Shape,
          prompt_index: int) -> dict[str, Any]:
    c = cut_at_stop_regex(c, shape.extras.stop_regex, shape.st.engine.tokenizer.decode)
    return {"text": c.text, "output_ids": c.token_ids, "index": c.index,
            "meta_info": shape.meta(out, c, arrival, prompt_index)}


async def _stream(jobs: list[Job], arrival: float, shape: _Shape) -> AsyncIterator[str]:
    async def one(p: int, job: Job) -> AsyncIterator[str]:
        texts: dict[int, str] = {}
        async for d in job.events():
            if d.output is not None:
                for c in d.output.outputs:
                    item = _item(d.output, c, arrival, shape, p)
                    item["delta"] = c.text[len(texts.get(c.index, "")):]
                    yield event({**item, "prompt_index": p})
            elif d.text:
                texts[d.index] = texts.get(d.index, "") + d.text
                yield event({"text": texts[d.index], "delta": d.text, "index": d.index,
                             "prompt_index": p, "meta_info": {"id": job.request_id,
                                                              "finish_reason": None}})

    try:
        async for piece in merge([one(p, job) for p, job in enumerate(jobs)]):
            yield piece
    except Exception as e:  # noqa: BLE001 (any failure ends the stream with an error event)
        yield error_event(e)
    finally:
        for job in jobs:
            job.close()
    yield DONE
