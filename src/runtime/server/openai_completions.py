"""`GET /v1/models` and `POST /v1/completions` (the legacy text API).

`prompt` may be a string, a list of strings, a list of token ids or a list of such lists; each
prompt runs `n` times and its choices are numbered `prompt_index * n + i`, as OpenAI does.
Prompts are submitted together, so they batch (and share cached prefixes) in the engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..outputs import RequestOutput, TokenLogprob
from .dispatch import Job, results, until_disconnected
from .errors import APIError, engine_errors
from .guard import GuardedRoute
from .logprobs import completion_logprobs
from .protocol import CompletionRequest
from .protocol_out import Completion, CompletionChoice, ModelCard, ModelList, Usage, new_id
from .sampling import RENAME, build_params, constraint_param, requested_max_tokens
from .sse import DONE, error_event, event, merge, sse_response
from .state import ServerState, require_api_key, state_of

router = APIRouter(route_class=GuardedRoute, dependencies=[Depends(require_api_key)])


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    """The model, then each loaded LoRA adapter as "MODEL:ADAPTER"."""
    st = state_of(request)
    return ModelList(data=[_card(st, None)] + [_card(st, a) for a in st.engine.lora_adapters])


@router.get("/v1/models/{model:path}")
async def get_model(model: str, request: Request) -> ModelCard:
    st = state_of(request)
    return _card(st, st.check_model(model))


def _card(st: ServerState, adapter: str | None) -> ModelCard:
    name = st.model_name if adapter is None else f"{st.model_name}:{adapter}"
    return ModelCard(id=name, root=str(st.engine.model_path), max_model_len=st.engine.max_model_len)


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request) -> Response:
    arrival = time.perf_counter()
    st = state_of(request)
    lora = st.check_model(body.model)
    st.limits.check_n(body.n)
    if body.best_of is not None:
        st.limits.check_n(body.best_of, "best_of")
    st.limits.check_batch(_num_prompts(body), body.n, "prompt")
    prompts = await asyncio.to_thread(_prompts, st, body)
    max_tokens, _ = requested_max_tokens(body)
    if max_tokens == 0:
        if lora is not None:
            raise APIError(400, "model: echo-only scoring runs on the base model", "model")
        return await _echo_only(st, body, prompts)
    base = replace(build_params(body, max_tokens), lora=lora)
    if body.echo and body.logprobs is not None:  # the echoed prompt comes with its logprobs
        base = replace(base, prompt_logprobs=True)
    params = [st.dispatcher.fit(base, max_tokens, len(ids)) for ids in prompts]
    rid = new_id("cmpl")
    jobs = await st.dispatcher.start_all(prompts, params, group=rid, endpoint="completions",
                                   rename=RENAME, constraint_param=constraint_param(base),
                                   arrival=arrival)
    texts = [_echo_text(st, body, ids) for ids in prompts]
    headers = {"X-Request-Id": rid}
    if body.stream:
        return sse_response(_stream(jobs, texts, rid, st, body), headers,
                            lambda: [job.close() for job in jobs])
    try:
        outs = await until_disconnected(request, _results(jobs))
    finally:
        for job in jobs:
            job.close()
    if outs is None:
        return Response(status_code=499)
    choices = []
    for p, (out, echo) in enumerate(zip(outs, texts)):
        for c in out.outputs:
            choices.append(CompletionChoice(
                index=p * body.n + c.index, text=echo + c.text, finish_reason=c.finish_reason,
                logprobs=completion_logprobs(c.logprobs, st.token_bytes, len(echo),
                                             body.logprobs or 0, _echoed_rows(st, body, out))))
    usage = Usage.of(sum(o.num_prompt_tokens for o in outs), sum(o.num_completion_tokens for o in outs),
                     sum(o.num_cached_tokens for o in outs))
    resp = Completion(id=rid, model=st.model_name, choices=choices, usage=usage)
    return JSONResponse(resp.model_dump(exclude_none=False), headers=headers)


async def _echo_only(st: ServerState, body: CompletionRequest, prompts: list[list[int]]) -> Response:
    """`max_tokens: 0` with echo: each prompt back with its tokens' logprobs, nothing
    generated (how evaluation harnesses score continuations). The prompts go to the engine
    as one scoring request, so a context shared by several continuations is computed once."""
    if body.stream:
        raise APIError(400, "max_tokens: 0 (echo only) needs stream false", "max_tokens")
    if body.n != 1:
        raise APIError(400, "n: must be 1 with max_tokens 0 (nothing is generated)", "n")
    with engine_errors("prompt"):
        rows = await st.engine.aprompt_logprobs(prompts, body.logprobs or 0)
    decode = st.engine.tokenizer.decode
    choices = []
    for p, (ids, lps) in enumerate(zip(prompts, rows)):
        echoed = [(t, decode([t], skip_special_tokens=False), lp) for t, lp in zip(ids, lps)]
        text = decode(ids, skip_special_tokens=False)
        logprobs = completion_logprobs([], st.token_bytes, len(text), body.logprobs or 0, echoed) \
            if body.logprobs is not None else None
        choices.append(CompletionChoice(index=p, text=text, finish_reason="length", logprobs=logprobs))
    resp = Completion(id=new_id("cmpl"), model=st.model_name, choices=choices,
                      usage=Usage.of(sum(map(len, prompts)), 0, 0))
    return JSONResponse(resp.model_dump(exclude_none=False))


def _num_prompts(body: CompletionRequest) -> int:
    p = body.prompt
    return 1 if isinstance(p, str) or (p and isinstance(p[0], int)) else len(p)


def _prompts(st: ServerState, body: CompletionRequest) -> list[list[int]]:
    """Token ids of every prompt (tokenizing: call it off the event loop)."""
    p = body.prompt
    if isinstance(p, str) or (p and isinstance(p[0], int)):
        return [st.dispatcher.encode(p, "prompt")]
    if not p:
        raise APIError(400, "prompt: empty (at least one token is needed)", "prompt")
    return [st.dispatcher.encode(x, f"prompt[{i}]") for i, x in enumerate(p)]


def _echo_text(st: ServerState, body: CompletionRequest, ids: list[int]) -> str:
    return st.engine.tokenizer.decode(ids, skip_special_tokens=False) if body.echo else ""


def _echoed_rows(st: ServerState, body: CompletionRequest, out: RequestOutput
                 ) -> list[tuple[int, str, TokenLogprob | None]] | None:
    """With echo and logprobs: each prompt token's id, text and logprob (None for the
    first)."""
    if not (body.echo and out.prompt_logprobs):
        return None
    decode = st.engine.tokenizer.decode
    return [(t, decode([t], skip_special_tokens=False), lp)
            for t, lp in zip(out.prompt_token_ids, out.prompt_logprobs)]


async def _results(jobs: list[Job]) -> list[RequestOutput]:
    try:
        return await results(jobs)
    except RuntimeError as e:  # the engine failed this request (RequestError) or stopped
        raise APIError(500, str(e)) from None


async def _stream(jobs: list[Job], echoes: list[str], rid: str, st: ServerState,
                  body: CompletionRequest) -> AsyncIterator[str]:
    model = st.model_name
    created = int(time.time())

    def chunk(index: int, text: str, finish: str | None = None, logprobs=None) -> str:
        choice = CompletionChoice(index=index, text=text, finish_reason=finish, logprobs=logprobs)
        return event(Completion(id=rid, created=created, model=model, choices=[choice]))

    async def one(p: int, job: Job) -> AsyncIterator[str]:
        # per choice: token logprobs not yet sent (they ride on its next chunk, as OpenAI's
        # do) and the characters sent so far (their text_offset)
        unsent: list[list[TokenLogprob]] = [[] for _ in range(body.n)]
        sent = [len(echoes[p])] * body.n

        def logprobs_of(i: int, echoed: list | None = None):
            if body.logprobs is None or not (unsent[i] or echoed):
                return None
            lps, unsent[i] = unsent[i], []
            return completion_logprobs(lps, st.token_bytes, sent[i], body.logprobs, echoed)

        for i in range(body.n if echoes[p] else 0):
            yield chunk(p * body.n + i, echoes[p])
        async for d in job.events():
            if d.index >= 0 and d.logprobs:
                unsent[d.index] += d.logprobs
            if d.index >= 0 and d.text:
                yield chunk(p * body.n + d.index, d.text, logprobs=logprobs_of(d.index))
                sent[d.index] += len(d.text)
        for c in job.output.outputs:
            yield chunk(p * body.n + c.index, "", c.finish_reason,
                        logprobs_of(c.index, _echoed_rows(st, body, job.output)))

    try:
        async for piece in merge([one(p, job) for p, job in enumerate(jobs)]):
            yield piece
        if body.stream_options and body.stream_options.include_usage:
            outs = [job.output for job in jobs]
            usage = Usage.of(sum(o.num_prompt_tokens for o in outs),
                             sum(o.num_completion_tokens for o in outs),
                             sum(o.num_cached_tokens for o in outs))
            yield event(Completion(id=rid, created=created, model=model, choices=[], usage=usage))
    except Exception as e:  # noqa: BLE001 (any failure ends the stream with an error event)
        yield error_event(e)
    finally:
        for job in jobs:
            job.close()
    yield DONE
