"""OpenAI custom tools: a tool whose input is text, optionally held to a grammar.

    tools=[{"type": "custom", "custom": {"name": "sql", "format": {"type": "grammar",
            "grammar": {"syntax": "lark" | "regex", "definition": "..."}}}}]

The chat template sees a custom tool as a function taking `{"input": string}` (`rendered`),
so the model calls it the way it calls functions. Two ways a completion carries a call:

- The whole completion is the input, when `tool_choice` names the tool (`{"type":
  "custom", "custom": {"name": ...}}`) or is "required" with it the only tool
  (`whole_input_tool`): decoded under its grammar (Lark → the `grammar` constraint, regex →
  `regex`), answered as `tool_calls: [{"type": "custom", "custom": {"name", "input"}}]` and
  streamed as deltas of `custom.input`.
- Among other tools ("auto", "required" with several): a call is written like a function
  call, `{"name": "sql", "arguments": {"input": "<the input as a JSON string>"}}` between the
  template's markers (`call_structure`); the grammar holds the *decoded* input (the
  structural tag's `json_string` body), and `tool_parser` answers it as a custom call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import APIError
from .protocol import CustomTool, NamedCustomToolChoice, ToolChoice
from .protocol_out import CustomCallOut, CustomToolCallOut, ToolCallDelta
from .tool_parser import new_call_id


@dataclass(frozen=True, slots=True)
class CustomInput:
    """The custom tool whose input the whole completion is, and the constraint on it."""

    name: str
    constraint: tuple[str, str] | None  # ("grammar" | "regex", text), None for free text


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


def check_formats(tools: list[Any]) -> None:
    """Raises APIError 400 for a custom tool whose grammar format has no grammar."""
    for t in tools:
        if isinstance(t, CustomTool) and t.custom.format.type == "grammar" \
                and t.custom.format.grammar is None:
            raise APIError(400, f"tools: custom tool {t.custom.name!r} has format type "
                           "'grammar' but no format.grammar", "tools")


def whole_input_tool(tools: list[Any], tool_choice: ToolChoice) -> CustomInput | None:
    """The custom tool whose input the whole completion is, if `tool_choice` asks for one."""
    customs = [t for t in tools if isinstance(t, CustomTool)]
    if isinstance(tool_choice, NamedCustomToolChoice):
        chosen = [t for t in customs if t.custom.name == tool_choice.custom.name]
        if not chosen:
            raise APIError(400, f"tool_choice.custom.name: {tool_choice.custom.name!r} is not "
                           f"one of the custom tools", "tool_choice.custom.name")
    elif tool_choice == "required" and len(tools) == 1 and customs:
        chosen = customs
    else:
        return None
    tool = chosen[0].custom
    g = tool.format.grammar if tool.format.type == "grammar" else None
    constraint = None if g is None else ("grammar" if g.syntax == "lark" else "regex", g.definition)
    return CustomInput(tool.name, constraint)


def call_structure(tool: CustomTool, markers: tuple[str, str]) -> dict[str, Any]:
    """The structural tag's structure for a call of this custom tool among other tools."""
    opening, closing = markers
    name = json.dumps(tool.custom.name, ensure_ascii=False)
    head = f'{opening}\n{{"name": {name}, "arguments": {{"input": '
    g = tool.custom.format.grammar if tool.custom.format.type == "grammar" else None
    if g is None:
        return {"begin": head, "schema": {"type": "string"}, "end": f"}}}}\n{closing}"}
    return {"begin": head + '"', "grammar": {"syntax": g.syntax, "definition": g.definition},
            "json_string": True, "end": f'"}}}}\n{closing}'}


def custom_call(tool: CustomInput, text: str) -> CustomToolCallOut:
    """The whole completion as the chosen tool's call."""
    return CustomToolCallOut(id=new_call_id(), custom=CustomCallOut(name=tool.name, input=text))


def first_delta(tool: CustomInput) -> ToolCallDelta:
    """The stream's opening of the call: its id, type and name, with empty input."""
    return ToolCallDelta(index=0, id=new_call_id(), type="custom",
                         custom=CustomCallOut(name=tool.name, input=""))


def input_delta(text: str, index: int = 0) -> ToolCallDelta:
    return ToolCallDelta(index=index, custom=CustomCallOut(input=text))
