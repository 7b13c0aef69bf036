"""Function calling: what `tools` + `tool_choice` mean for the prompt and the decoding.

A call is written the way the model's chat template writes one (its tool-call markers; the
Hermes-style fallback for templates without tools):

    <tool_call>\\n{"name": "get_weather", "arguments": {...}}\\n</tool_call>

- `none`: the model answers with a message; nothing constrains or parses calls. The tools
  are still rendered into the prompt (as vLLM does), so a conversation keeps one prompt
  prefix from turn to turn and stays in the radix cache.
- `required` / a named function: the grammar's structural tag in "required" mode makes the
  whole output one or more such calls (only the named function's), arguments held to the
  tool's JSON schema.
- `auto`: decoding is free until the model writes the opening marker; from there the call is
  held to the tools' schemas, then decoding is free again ("auto" mode).

Custom tools (`custom_tools.py`) take part the same way, their input held to their grammar;
a choice of one custom tool makes the whole completion its input instead (`input_of`).
Parsing the calls back out of the text is `tool_parser.ToolCallParser`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import custom_tools
from .custom_tools import CustomInput
from .errors import APIError
from .protocol import CustomTool, NamedCustomToolChoice, NamedToolChoice, Tool, ToolChoice
from ...grammar.json_closing import close_tag

EMPTY_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """`render_tools` go to the chat template; `structural_tag` into SamplingParams; when
    `parse` is set the output is split into content and calls to the functions in `names`
    and the custom tools in `custom_names`; `input_of`: the whole output is that custom
    tool's input."""

    render_tools: list[dict[str, Any]] | None = None
    structural_tag: dict[str, Any] | None = None
    parse: bool = False
    markers: tuple[str, str] | None = None
    names: frozenset[str] = frozenset()
    choice: str = "none"
    strict: tuple[bool, ...] = ()  # per structure: its tool's `function.strict`
    custom_names: frozenset[str] = frozenset()
    input_of: CustomInput | None = None

    def grammar_tag(self) -> dict[str, Any] | None:
        """The structural tag the grammar enforces: each tool's schema with its objects
        closed (`json_closing`: all of them, every property required, under strict)."""
        if self.structural_tag is None:
            return None
        return close_tag(self.structural_tag, self.strict)


def call_structure(tool: Tool, markers: tuple[str, str]) -> dict[str, Any]:
    """One structure of the structural tag: the opening text up to the arguments, the
    arguments' schema, and the closing text (the exact format the fallback renders)."""
    opening, closing = markers
    schema = tool.function.parameters if tool.function.parameters is not None else EMPTY_ARGUMENTS
    name = json.dumps(tool.function.name, ensure_ascii=False)
    return {"begin": f'{opening}\n{{"name": {name}, "arguments": ', "schema": schema,
            "end": f"}}\n{closing}"}


def plan_tools(tools: list[Tool | CustomTool] | None, tool_choice: ToolChoice | None,
               markers: tuple[str, str] | None) -> ToolPlan:
    """Raises APIError 400 for a tool_choice that cannot be honoured."""
    if not tools:
        if isinstance(tool_choice, NamedCustomToolChoice):
            raise APIError(400, "tool_choice.custom.name: no custom tools were given",
                           "tool_choice.custom.name")
        if tool_choice == "required" or isinstance(tool_choice, NamedToolChoice):
            raise APIError(400, "tool_choice: needs a non-empty `tools` list", "tool_choice")
        return ToolPlan()
    names = [_name(t) for t in tools]
    if len(set(names)) != len(names):
        raise APIError(400, "tools: tool names must be unique", "tools")
    custom_tools.check_formats(tools)
    choice = tool_choice or "auto"
    rendered = [custom_tools.rendered(t) for t in tools]
    if choice == "none":
        return ToolPlan(render_tools=rendered, choice="none")
    whole = custom_tools.whole_input_tool(tools, choice)
    if whole is not None:
        return ToolPlan(render_tools=rendered, choice="named", input_of=whole)
    selected = tools
    if isinstance(choice, NamedToolChoice):
        selected = [t for t in tools if not isinstance(t, CustomTool)
                    and t.function.name == choice.function.name]
        if not selected:
            raise APIError(400, f"tool_choice.function.name: {choice.function.name!r} is not "
                           f"one of the functions ({', '.join(_function_names(tools))})",
                           "tool_choice.function.name")
    if markers is None:
        raise APIError(400, "tools: this model's chat template writes tool calls in a format "
                       "this server cannot parse", "tools")
    functions = [t for t in selected if not isinstance(t, CustomTool)]
    for t in functions:
        params = t.function.parameters
        if params is not None and params.get("type", "object") != "object":
            raise APIError(400, f"tools: parameters of {t.function.name!r} must be a JSON "
                           "schema of type 'object'", "tools")
    mode = "auto" if choice == "auto" else "required"
    structures = [custom_tools.call_structure(t, markers) if isinstance(t, CustomTool)
                  else call_structure(t, markers) for t in selected]
    tag = {"triggers": [markers[0]], "structures": structures, "mode": mode}
    return ToolPlan(
        render_tools=rendered, structural_tag=tag, parse=True, markers=markers,
        names=frozenset(t.function.name for t in functions),
        choice="named" if isinstance(choice, NamedToolChoice) else choice,
        strict=tuple(False if isinstance(t, CustomTool) else bool(t.function.strict)
                     for t in selected),
        custom_names=frozenset(_name(t) for t in selected if isinstance(t, CustomTool)))


def _name(tool: Tool | CustomTool) -> str:
    return tool.custom.name if isinstance(tool, CustomTool) else tool.function.name


def _function_names(tools: list[Tool | CustomTool]) -> list[str]:
    return [t.function.name for t in tools if not isinstance(t, CustomTool)]


def messages_for_template(messages: list[Any]) -> list[dict[str, Any]]:
    """Request messages as the plain dicts the chat template reads: `developer` becomes
    `system`, text parts are joined, a call's arguments stay a JSON string (the template
    or its fallback parses them), a custom tool's call is a call with `{"input": ...}`."""
    out = []
    for i, m in enumerate(messages):
        msg = m.model_dump(exclude_none=True)
        if msg["role"] == "developer":
            msg["role"] = "system"
        content = msg.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise APIError(400, f"messages[{i}].content[{j}]: only text parts are "
                                   f"supported, got type {part.get('type')!r}",
                                   f"messages[{i}].content[{j}]")
            msg["content"] = "".join(p["text"] for p in content)
        for call in msg.get("tool_calls") or []:
            if call.get("type") == "custom":  # as `custom_tools.rendered` shows the tool
                c = call.pop("custom")
                call.update(type="function", function={"name": c["name"], "arguments": {
                    "input": c.get("input", "")}})
            args = call["function"].get("arguments")
            if isinstance(args, dict):
                call["function"]["arguments"] = json.dumps(args, ensure_ascii=False)
        if msg["role"] == "tool" and "content" not in msg:
            msg["content"] = ""
        if "content" not in msg and not (msg["role"] == "assistant" and msg.get("tool_calls")):
            raise APIError(400, f"messages[{i}].content: required for a {msg['role']} message"
                           + (" without tool_calls" if msg["role"] == "assistant" else ""),
                           f"messages[{i}].content")
        out.append(msg)
    return out
