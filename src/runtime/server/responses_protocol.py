"""The request body of `POST /v1/responses` (OpenAI's Responses API) and its translation into
a chat-completions request, which the chat route runs.

Supported: `input` as a string or a list of items (messages with text content,
`function_call` / `custom_tool_call` items and their `..._output` items), `instructions` (a
leading system message), `max_output_tokens`, `temperature`, `top_p`, `stream`, `text.format`
(text, json_object, json_schema with `strict`), function and custom `tools` (a custom tool's
input free text or held to a Lark or regex grammar), `tool_choice`, `parallel_tool_calls`, plus the
chat extensions tines takes (`top_k`, `seed`, `logit_bias`, ...). Unknown fields are 400s;
`previous_response_id` and built-in tools are refused (nothing is stored). `text.format`
is dropped when `tool_choice` forces a call (there is no text output then); with
`tool_choice: "auto"` the two cannot be combined (one output constraint per request: 400).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import APIError
from .protocol import StrictBody


class FunctionTool(StrictBody):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomTextFormat(StrictBody):
    type: Literal["text"]


class CustomGrammarFormat(StrictBody):
    type: Literal["grammar"]
    syntax: Literal["lark", "regex"]
    definition: str = Field(min_length=1)


class CustomTool(StrictBody):
    """A tool whose input is text (the Responses API's flat shape of a custom tool)."""

    type: Literal["custom"]
    name: str
    description: str | None = None
    format: CustomTextFormat | CustomGrammarFormat = Field(
        default_factory=lambda: CustomTextFormat(type="text"))

    def for_chat(self) -> dict[str, Any]:
        fmt: dict[str, Any] = {"type": "text"}
        if isinstance(self.format, CustomGrammarFormat):
            fmt = {"type": "grammar", "grammar": {"syntax": self.format.syntax,
                                                  "definition": self.format.definition}}
        return {"type": "custom", "custom": {"name": self.name, "description": self.description,
                                             "format": fmt}}


class TextFormat(StrictBody):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `verbosity` changes nothing here
    format: TextFormat = Field(default_factory=TextFormat)


class ResponsesRequest(StrictBody):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    text: TextConfig | None = None
    tools: list[FunctionTool | CustomTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    # accepted and ignored: nothing is stored, there is no reasoning to configure
    store: bool | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    reasoning: dict[str, Any] | None = None
    truncation: str | None = None
    include: list[str] | None = None
    service_tier: str | None = None
    # chat extensions, passed through
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    logit_bias: dict[str, float] | None = None
    stop: str | list[str] | None = None


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where}: must be a string or a list of text parts", where)
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text") \
                or not isinstance(part.get("text"), str):
            raise APIError(400, f"{where}[{j}]: only text parts are supported", f"{where}[{j}]")
        texts.append(part["text"])
    return "".join(texts)


def input_messages(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The chat messages `instructions` and `input` stand for; consecutive call items
    become one assistant message with several tool calls."""
    messages: list[dict[str, Any]] = []
    if body.instructions:
        messages.append({"role": "system", "content": body.instructions})
    if isinstance(body.input, str):
        return messages + [{"role": "user", "content": body.input}]
    for i, item in enumerate(body.input):
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise APIError(400, f"input[{i}].role: must be user, system, developer or assistant",
                               f"input[{i}].role")
            messages.append({"role": role, "content": _text_of(item.get("content"), f"input[{i}].content")})
        elif kind in ("function_call", "custom_tool_call"):
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "{}")}} \
                if kind == "function_call" else {"id": item.get("call_id"), "type": "custom",
                                                 "custom": {"name": item.get("name"),
                                                            "input": item.get("input", "")}}
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and last.get("tool_calls") and not last.get("content"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output if isinstance(output, str) else json.dumps(output)})
        else:
            raise APIError(400, f"input[{i}].type: {kind!r} items are not supported", f"input[{i}].type")
    return messages


def chat_request(body: ResponsesRequest, model: str) -> dict[str, Any]:
    """The chat-completions body that runs `body` (always with usage in the stream)."""
    if body.previous_response_id is not None:
        raise APIError(400, "previous_response_id: this server stores no responses; send the "
                       "conversation in `input`", "previous_response_id")
    chat: dict[str, Any] = {"model": model, "messages": input_messages(body), "stream": body.stream,
                            "parallel_tool_calls": body.parallel_tool_calls}
    if body.stream:
        chat["stream_options"] = {"include_usage": True}
    if body.max_output_tokens is not None:
        chat["max_completion_tokens"] = body.max_output_tokens
    for name in ("temperature", "top_p", "top_k", "min_p", "seed", "logit_bias", "stop"):
        if getattr(body, name) is not None:
            chat[name] = getattr(body, name)
    fmt = body.text.format if body.text else None
    if body.tools and (body.tool_choice == "required" or isinstance(body.tool_choice, dict)):
        fmt = None  # the output is a call, so there is no text to format (instructor sends both)
    if fmt is not None and fmt.type == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {
            "name": fmt.name, "schema": fmt.schema_, "strict": fmt.strict}}
    if body.tools:
        chat["tools"] = [t.for_chat() if isinstance(t, CustomTool) else
                         {"type": "function", "function": t.model_dump(exclude={"type"}, exclude_none=True)}
                         for t in body.tools]
    choice = body.tool_choice
    if isinstance(choice, dict):
        if choice.get("type") not in ("function", "custom") or not isinstance(choice.get("name"), str):
            raise APIError(400, "tool_choice: give none, auto, required, "
                           '{"type": "function", "name": ...} or {"type": "custom", "name": ...}',
                           "tool_choice")
        choice = {"type": choice["type"], choice["type"]: {"name": choice["name"]}}
    if choice is not None:
        chat["tool_choice"] = choice
    return chat
