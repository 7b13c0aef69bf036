"""`POST /v1/responses` (OpenAI's Responses API), run by the chat-completions route.

The request is translated into a chat request (`responses_protocol`), the chat route runs it,
and its answer is translated back: content becomes a `message` output item with one
`output_text` part, each tool call a `function_call` item (a custom tool's call a
`custom_tool_call` item with its `input`). A completion cut by the budget is
`status: "incomplete"` with `incomplete_details.reason: "max_output_tokens"`.

Stream: `response.created`, `response.in_progress`; per item `response.output_item.added`,
then for a message `response.content_part.added`, `response.output_text.delta`...,
`response.output_text.done`, `response.content_part.done`, for a call
`response.function_call_arguments.delta`..., `response.function_call_arguments.done` (for a
custom call `response.custom_tool_call_input.delta`..., `...input.done`); then
`response.output_item.done`; and last `response.completed` (or `response.incomplete`) with
the whole response. Each event is sent as `event: <type>` plus its JSON `data`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from .guard import GuardedRoute
from .openai_chat import chat_completions
from .protocol import ChatCompletionRequest
from .responses_protocol import ResponsesRequest, chat_request
from .sse import error_event, sse_response
from .state import require_api_key, state_of

router = APIRouter(route_class=GuardedRoute, dependencies=[Depends(require_api_key)])


@router.post("/v1/responses")
async def responses(body: ResponsesRequest, request: Request) -> Response:
    st = state_of(request)
    st.check_model(body.model)
    try:
        chat = ChatCompletionRequest.model_validate(chat_request(body, body.model))
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from None
    answer = await chat_completions(chat, request)
    shell = _Shell(body, st.model_name)
    if body.stream:
        return sse_response(_stream(answer.body_iterator, shell),
                            {"X-Request-Id": answer.headers.get("X-Request-Id", "")},
                            getattr(answer, "on_close", None))
    if answer.status_code != 200:
        return answer
    return JSONResponse(shell.from_chat(json.loads(answer.body)), headers={
        "X-Request-Id": answer.headers.get("X-Request-Id", "")})


class _Shell:
    """The response object's fixed fields, and its output built from chat answers."""

    def __init__(self, body: ResponsesRequest, model: str):
        self.id, self.created = f"resp_{uuid.uuid4().hex}", int(time.time())
        self.body, self.model = body, model

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None,
                 finish: str | None = None) -> dict[str, Any]:
        b = self.body
        fmt = b.text.format.model_dump(by_alias=True, exclude_none=True) if b.text else {"type": "text"}
        incomplete = status == "incomplete"
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "model": self.model, "output": output, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": b.instructions, "max_output_tokens": b.max_output_tokens,
            "temperature": b.temperature, "top_p": b.top_p,
            "parallel_tool_calls": b.parallel_tool_calls, "tool_choice": b.tool_choice or "auto",
            "tools": [t.model_dump(exclude_none=True) for t in b.tools or []],
            "text": {"format": fmt}, "metadata": b.metadata or {}, "usage": usage,
        }

    def from_chat(self, chat: dict[str, Any]) -> dict[str, Any]:
        choice = chat["choices"][0]
        msg, output = choice["message"], []
        if msg.get("content"):
            output.append(_message_item(f"msg_{uuid.uuid4().hex}", msg["content"], "completed"))
        for call in msg.get("tool_calls") or []:
            if call["type"] == "custom":
                output.append(_custom_call_item(call["id"], call["custom"]["name"],
                                                call["custom"]["input"]))
            else:
                output.append(_call_item(call["id"], call["function"]["name"],
                                         call["function"]["arguments"], "completed"))
        status = "incomplete" if choice["finish_reason"] == "length" else "completed"
        return self.response(status, output, _usage(chat.get("usage")))


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def _call_item(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{call_id.removeprefix('call_')}", "call_id": call_id,
            "name": name, "arguments": arguments, "status": status}


def _custom_call_item(call_id: str, name: str, text: str) -> dict[str, Any]:
    return {"type": "custom_tool_call", "id": f"ctc_{call_id.removeprefix('call_')}",
            "call_id": call_id, "name": name, "input": text}


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {"input_tokens": usage["prompt_tokens"], "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": usage["total_tokens"]}


class _Events:
    """Numbered Responses stream events, and the output items open or done so far."""

    def __init__(self) -> None:
        self.seq = 0
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its item

    def send(self, kind: str, **data: Any) -> str:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def start(self, item: dict[str, Any]) -> list[str]:
        out = self.close()
        self.items.append(item)
        self.open = item
        out.append(self.send("response.output_item.added", output_index=len(self.items) - 1, item=item))
        if item["type"] == "message":
            out.append(self.send("response.content_part.added", item_id=item["id"],
                                 output_index=len(self.items) - 1, content_index=0,
                                 part={"type": "output_text", "text": "", "annotations": []}))
        return out

    def close(self) -> list[str]:
        item, self.open = self.open, None
        if item is None:
            return []
        index, out = self.items.index(item), []
        if item["type"] == "custom_tool_call":
            out.append(self.send("response.custom_tool_call_input.done", item_id=item["id"],
                                 output_index=index, input=item["input"]))
            out.append(self.send("response.output_item.done", output_index=index, item=item))
            return out
        item["status"] = "completed"
        if item["type"] == "message":
            part = item["content"][0]
            out.append(self.send("response.output_text.done", item_id=item["id"], output_index=index,
                                 content_index=0, text=part["text"], logprobs=[]))
            out.append(self.send("response.content_part.done", item_id=item["id"], output_index=index,
                                 content_index=0, part=part))
        else:
            out.append(self.send("response.function_call_arguments.done", item_id=item["id"],
                                 output_index=index, name=item["name"], arguments=item["arguments"]))
        out.append(self.send("response.output_item.done", output_index=index, item=item))
        return out

    def text(self, delta: str) -> list[str]:
        out = [] if self.open is not None and self.open["type"] == "message" else \
            self.start(_message_item(f"msg_{uuid.uuid4().hex}", "", "in_progress"))
        self.open["content"][0]["text"] += delta
        out.append(self.send("response.output_text.delta", item_id=self.open["id"],
                             output_index=len(self.items) - 1, content_index=0, delta=delta, logprobs=[]))
        return out

    def call(self, delta: dict[str, Any]) -> list[str]:
        fn = delta.get("function") or {}
        custom = delta.get("custom")
        out: list[str] = []
        if delta.get("id"):
            item = _custom_call_item(delta["id"], custom.get("name") or "", "") if custom else \
                _call_item(delta["id"], fn.get("name") or "", "", "in_progress")
            self.calls[delta["index"]] = item
            out += self.start(item)
        item = self.calls.get(delta["index"])
        if item is not None and custom and custom.get("input"):
            item["input"] += custom["input"]
            out.append(self.send("response.custom_tool_call_input.delta", item_id=item["id"],
                                 output_index=self.items.index(item), delta=custom["input"]))
        elif item is not None and fn.get("arguments"):
            item["arguments"] += fn["arguments"]
            out.append(self.send("response.function_call_arguments.delta", item_id=item["id"],
                                 output_index=self.items.index(item), delta=fn["arguments"]))
        return out


async def _stream(chat_events: AsyncIterator[str], shell: _Shell) -> AsyncIterator[str]:
    ev = _Events()
    status, usage = "completed", None
    try:
        yield ev.send("response.created", response=shell.response("in_progress", [], None))
        yield ev.send("response.in_progress", response=shell.response("in_progress", [], None))
        async for line in chat_events:
            data = line.removeprefix("data: ").strip()
            if data == "[DONE]":
                continue
            chunk = json.loads(data)
            if "error" in chunk:
                yield line
                return
            if chunk.get("usage"):
                usage = _usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    for piece in ev.text(delta["content"]):
                        yield piece
                for call in delta.get("tool_calls") or []:
                    for piece in ev.call(call):
                        yield piece
                if choice.get("finish_reason") == "length":
                    status = "incomplete"
        for piece in ev.close():
            yield piece
        kind = "response.completed" if status == "completed" else "response.incomplete"
        yield ev.send(kind, response=shell.response(status, ev.items, usage))
    except Exception as e:  # noqa: BLE001 (any failure ends the stream with an error event)
        yield error_event(e)
    finally:
        aclose = getattr(chat_events, "aclose", None)
        if aclose is not None:
            await aclose()
