"""OpenAI custom tools: a tool whose input is text, optionally held to a grammar.

    tools=[{"type": "custom", "custom": {"name": "sql", "format": {"type": "grammar",
            "grammar": {"syntax": "lark" | "regex", "definition": "..."}}}}]

A custom tool is called when `tool_choice` names it (`{"type": "custom", "custom":
{"name": ...}}`) or is "required" with it the only tool. Then the whole completion is the
tool's input: decoded under its grammar (Lark → the `grammar` constraint, regex → `regex`),
answered as `tool_calls: [{"type": "custom", "custom": {"name", "input"}}]` and streamed as
deltas of `custom.input`. Custom tools otherwise ("auto", "none") are only rendered into the
prompt: choosing between text and a custom call is not offered (a 400 for "auto").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import APIError
from .protocol import CustomTool, NamedCustomToolChoice, ToolChoice
from .protocol_out import CustomCallOut, CustomToolCallOut, ToolCallDelta, new_id
from .tool_calls import ToolPlan


@dataclass(frozen=True, slots=True)
class CustomCallPlan:
    """The custom tool whose input the completion is, and the constraint on that input."""

    name: str
    constraint: tuple[str, str] | None  # ("grammar" | "regex", text), None for free text
    tool_plan: ToolPlan


def rendered(tool: Any) -> dict[str, Any]:
    """A tool as the chat template sees it: custom tools as a function taking the text."""
    if not isinstance(tool, CustomTool):
        return tool.model_dump(exclude_none=True)
    c = tool.custom
    description = c.description or ""
    if c.format.type == "grammar" and c.format.grammar is not None:
        description += (f"\nInput: text in this {c.format.grammar.syntax} grammar:\n"
                        f"{c.format.grammar.definition}")
    return {"type": "function", "function": {"name": c.name, "description": description.strip(),
                                             "parameters": {"type": "object", "properties": {
                                                 "input": {"type": "string"}}}}}


def plan_custom(tools: list[Any] | None, tool_choice: ToolChoice | None) -> CustomCallPlan | None:
    """None when no custom tool is involved (function tools go to `plan_tools`); raises
    APIError 400 for a combination this server cannot honour."""
    customs = [t for t in tools or [] if isinstance(t, CustomTool)]
    if not customs:
        if isinstance(tool_choice, NamedCustomToolChoice):
            raise APIError(400, "tool_choice.custom.name: no custom tools were given",
                           "tool_choice.custom.name")
        return None
    names = [t.custom.name if isinstance(t, CustomTool) else t.function.name for t in tools]
    if len(set(names)) != len(names):
        raise APIError(400, "tools: tool names must be unique", "tools")
    render = [rendered(t) for t in tools]
    if tool_choice == "none":
        return CustomCallPlan("", None, ToolPlan(render_tools=render, choice="none"))
    if isinstance(tool_choice, NamedCustomToolChoice):
        chosen = [t for t in customs if t.custom.name == tool_choice.custom.name]
        if not chosen:
            raise APIError(400, f"tool_choice.custom.name: {tool_choice.custom.name!r} is not "
                           f"one of the custom tools", "tool_choice.custom.name")
    elif tool_choice == "required" and len(tools) == 1:
        chosen = customs
    else:
        raise APIError(400, "tool_choice: with custom tools, name the custom tool to call "
                       "({\"type\": \"custom\", \"custom\": {\"name\": ...}}), or use "
                       "'required' with it as the only tool, or 'none'", "tool_choice")
    tool = chosen[0].custom
    constraint = None
    if tool.format.type == "grammar":
        if tool.format.grammar is None:
            raise APIError(400, "tools: a custom tool with format type 'grammar' needs "
                           "format.grammar", "tools")
        g = tool.format.grammar
        constraint = ("grammar" if g.syntax == "lark" else "regex", g.definition)
    return CustomCallPlan(tool.name, constraint, ToolPlan(render_tools=render, choice="named"))


def custom_call(plan: CustomCallPlan, text: str) -> CustomToolCallOut:
    """The whole completion as the chosen tool's call."""
    return CustomToolCallOut(id=new_id("call"), custom=CustomCallOut(name=plan.name, input=text))


def first_delta(plan: CustomCallPlan) -> ToolCallDelta:
    """The stream's opening of the call: its id, type and name, with empty input."""
    return ToolCallDelta(index=0, id=new_id("call"), type="custom",
                         custom=CustomCallOut(name=plan.name, input=""))


def input_delta(text: str) -> ToolCallDelta:
    return ToolCallDelta(index=0, custom=CustomCallOut(input=text))
