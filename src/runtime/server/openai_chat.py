"""`POST /v1/chat/completions`: messages through the model's chat template, tools, streaming.

Stream shape (as OpenAI and vLLM send it): per choice a first chunk `{"role": "assistant",
"content": ""}`; content deltas; a tool call as a first delta carrying its index, id, type,
name and `arguments: ""` (a custom tool's: `custom.input: ""`), then deltas with argument
fragments (input text) as they are generated; per choice a last chunk with `finish_reason`
(and the choice's logprobs); with
`stream_options.include_usage` a final chunk with `choices: []` and `usage`; then `[DONE]`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..outputs import Completion as EngineCompletion
from ..outputs import RequestOutput, TokenLogprob
from .dispatch import Job, until_disconnected
from .errors import APIError
from .guard import GuardedRoute
from .logprobs import TokenBytes, chat_logprobs
from .protocol import ChatCompletionRequest
from .protocol_out import (AssistantMessage, ChatChoice, ChatChunkChoice, ChatCompletion,
                           ChatCompletionChunk, ChatDelta, CustomCallOut,
                           FunctionCallOut,
                           ToolCallDelta, Usage, new_id)
from .sampling import RENAME, build_params, constraint_param, requested_max_tokens
from .sse import DONE, error_event, event, sse_response
from .state import ServerState, require_api_key, state_of
from .custom_tools import CustomInput, custom_call, first_delta, input_delta
from .tool_calls import ToolPlan, messages_for_template, plan_tools
from .tool_parser import CallStart, Event, InputDelta, ToolCallParser, split_tool_calls

router = APIRouter(route_class=GuardedRoute, dependencies=[Depends(require_api_key)])


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    arrival = time.perf_counter()
    st = state_of(request)
    lora = st.check_model(body.model)
    st.limits.check_n(body.n)
    plan = plan_tools(body.tools, body.tool_choice, st.engine.chat_template.effective_tool_call_markers)
    custom = plan.input_of  # the whole completion is this custom tool's input
    ids = await asyncio.to_thread(lambda: st.dispatcher.encode(*_prompt(st, body, plan)))
    max_tokens, field = requested_max_tokens(body)
    params = st.dispatcher.fit(build_params(body, max_tokens, plan.grammar_tag(),
                                            custom.constraint if custom else None),
                               max_tokens, len(ids))
    params.lora = lora
    if plan.parse and _marker_is_special(st, plan.markers[0]):
        params.skip_special_tokens = False  # the markers must stay in the text to be parsed
    if plan.parse and not body.parallel_tool_calls:
        # at most one call: the answer ends where the first call closes (the parser takes a
        # call whose closing marker was cut as a stop string)
        params.stop = [*params.stop, plan.markers[1]]
    rid = new_id("chatcmpl")
    [job] = await st.dispatcher.start_all([ids], [params], group=rid, endpoint="chat",
                                          rename={**RENAME, "max_new_tokens": field},
                                          constraint_param="tools" if custom else constraint_param(params),
                                          arrival=arrival)
    headers = {"X-Request-Id": rid}
    if body.stream:
        return sse_response(_stream(job, rid, st, body, plan, custom), headers, job.close)
    try:
        out = await until_disconnected(request, _result(job))
    finally:
        job.close()  # a no-op once finished; aborts when the client left before it began
    if out is None:
        return Response(status_code=499)
    choices = [_choice(c, body, plan, st.token_bytes, custom) for c in out.outputs]
    usage = Usage.of(out.num_prompt_tokens, out.num_completion_tokens, out.num_cached_tokens)
    resp = ChatCompletion(id=rid, model=st.model_name, choices=choices, usage=usage)
    return JSONResponse(resp.model_dump(), headers=headers)


def _prompt(st: ServerState, body: ChatCompletionRequest, plan: ToolPlan) -> tuple[str, str, bool]:
    """(prompt text, the field to blame, whether the tokenizer should add BOS)."""
    messages = messages_for_template(body.messages)
    template = st.engine.chat_template
    cont = body.continue_final_message
    if cont and messages[-1]["role"] != "assistant":
        raise APIError(400, "continue_final_message: the last message must be the assistant's",
                       "continue_final_message")
    try:
        text = template.render(messages, tools=plan.render_tools,
                               add_generation_prompt=body.add_generation_prompt and not cont)
    except ValueError as e:
        raise APIError(400, f"messages: {e}", "messages") from None
    if cont:  # cut the end-of-turn the template wrote after the last message
        last = messages[-1].get("content") or ""
        text = text[:text.rfind(last) + len(last)] if last and last in text else text
    tok = st.engine.tokenizer
    starts_with_bos = bool(tok.bos_token) and text.startswith(tok.bos_token)
    return text, "messages", not (tok.add_bos_token and starts_with_bos)


def _marker_is_special(st: ServerState, marker: str) -> bool:
    tid = st.engine.tokenizer.token_to_id(marker)
    return tid is not None and tid in st.engine.tokenizer.special_token_ids


async def _result(job: Job) -> RequestOutput:
    try:
        return await job.result()
    except RuntimeError as e:  # the engine failed this request (RequestError) or stopped
        raise APIError(500, str(e)) from None


def _finish_reason(c: EngineCompletion, num_calls: int) -> str:
    return "tool_calls" if num_calls and c.finish_reason == "stop" else c.finish_reason


def _choice(c: EngineCompletion, body: ChatCompletionRequest, plan: ToolPlan,
            token_bytes: TokenBytes, custom: CustomInput | None = None) -> ChatChoice:
    content, calls = c.text, []
    if custom:
        content, calls = None, [custom_call(custom, c.text)]
    elif plan.parse:
        content, calls = split_tool_calls(c.text, plan.markers, plan.names,
                                          None if body.parallel_tool_calls else 1,
                                          plan.custom_names)
    msg = AssistantMessage(content=content, tool_calls=calls or None)
    return ChatChoice(index=c.index, message=msg, finish_reason=_finish_reason(c, len(calls)),
                      logprobs=chat_logprobs(c.logprobs, token_bytes) if body.logprobs else None)


async def _stream(job: Job, rid: str, st: ServerState, body: ChatCompletionRequest,
                  plan: ToolPlan, custom: CustomInput | None = None) -> AsyncIterator[str]:
    created, model = int(time.time()), st.model_name
    # each choice's token logprobs not yet sent: they ride on its next chunk, as OpenAI's do
    unsent: list[list[TokenLogprob]] = [[] for _ in range(body.n)]

    def chunk(index: int, delta: ChatDelta, finish: str | None = None) -> str:
        logprobs = None
        if body.logprobs and unsent[index]:
            logprobs, unsent[index] = chat_logprobs(unsent[index], st.token_bytes), []
        choice = ChatChunkChoice(index=index, delta=delta, finish_reason=finish, logprobs=logprobs)
        return event(ChatCompletionChunk(id=rid, created=created, model=model, choices=[choice]))

    def pieces(index: int, events: list[Event]) -> list[str]:
        out = []
        if custom:  # the whole completion is the call's input
            num_calls[index] = 1
            return [chunk(index, ChatDelta(tool_calls=[input_delta(ev)])) for ev in events]
        for ev in events:
            if isinstance(ev, str):
                out.append(chunk(index, ChatDelta(content=ev)))
                continue
            if isinstance(ev, CallStart):
                call = ToolCallDelta(index=ev.index, id=ev.id, type=ev.type, **(
                    {"custom": CustomCallOut(name=ev.name, input="")} if ev.type == "custom"
                    else {"function": FunctionCallOut(name=ev.name, arguments="")}))
                num_calls[index] += 1
            elif isinstance(ev, InputDelta):
                call = input_delta(ev.text, ev.index)
            else:
                call = ToolCallDelta(index=ev.index, function=FunctionCallOut(arguments=ev.text))
            out.append(chunk(index, ChatDelta(tool_calls=[call])))
        return out

    max_calls = None if body.parallel_tool_calls else 1
    parsers = [ToolCallParser(plan.markers, plan.names, max_calls, plan.custom_names)
               for _ in range(body.n)] \
        if plan.parse else None
    num_calls = [0] * body.n
    try:
        for i in range(body.n):
            yield chunk(i, ChatDelta(role="assistant", content=None if custom else ""))
            if custom:
                yield chunk(i, ChatDelta(tool_calls=[first_delta(custom)]))
                num_calls[i] = 1
        async for d in job.events():
            if d.index >= 0 and d.logprobs:
                unsent[d.index] += d.logprobs
            if d.index >= 0 and d.text:
                for piece in pieces(d.index, parsers[d.index].feed(d.text) if parsers else [d.text]):
                    yield piece
        out = job.output
        for c in out.outputs:
            if parsers:
                for piece in pieces(c.index, parsers[c.index].finish()):
                    yield piece
            yield chunk(c.index, ChatDelta(), _finish_reason(c, num_calls[c.index]))
        if body.stream_options and body.stream_options.include_usage:
            usage = Usage.of(out.num_prompt_tokens, out.num_completion_tokens, out.num_cached_tokens)
            yield event(ChatCompletionChunk(id=rid, created=created, model=model, choices=[], usage=usage))
    except Exception as e:  # noqa: BLE001 (any failure ends the stream with an error event)
        yield error_event(e)
    finally:
        job.close()
    yield DONE
