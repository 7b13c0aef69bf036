"""Tool calling for chat templates: finding a template's tool-call markers, and the fallback used
when a model's template does not render tools.

The fallback is Hermes-style, the format Qwen2.5 and NousResearch's Hermes models use:

- the tool list goes into the system message (appended to it, or to the template's default
  system prompt when the conversation has none), one JSON schema per line inside `<tools>`;
- an assistant message's `tool_calls` become text in its content, one block per call:
  `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`;
- `tool` messages become a `user` message (consecutive ones merged), each result wrapped in
  `<tool_response>\n...\n</tool_response>`.

The rewritten conversation then goes through the model's own template, so every model can call
tools; the server parses `<tool_call>` blocks out of the generated text.
"""

from __future__ import annotations

import json
from typing import Any

FALLBACK_TOOL_CALL_MARKERS = ("<tool_call>", "</tool_call>")

# (opening, closing) pairs that templates write around a tool call, most common first.
KNOWN_TOOL_CALL_MARKERS = (
    ("<tool_call>", "</tool_call>"),  # Hermes, Qwen2/2.5/3, SmolLM3
    ("<|tool_call_start|>", "<|tool_call_end|>"),  # LFM2
    ("<|tool▁call▁begin|>", "<|tool▁call▁end|>"),  # DeepSeek V3 / R1
    ("<start_function_call>", "<end_function_call>"),  # FunctionGemma
    ("<function_call>", "</function_call>"),
    ("<|python_tag|>", "<|eom_id|>"),  # Llama 3.1 built-in tools
)

_TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def find_tool_call_markers(source: str) -> tuple[str, str] | None:
    """The first known (opening, closing) pair that both occur in a template's source."""
    for opening, closing in KNOWN_TOOL_CALL_MARKERS:
        if opening in source and closing in source:
            return opening, closing
    return None


def tools_system_section(tools: list[dict[str, Any]]) -> str:
    """The fallback's system-prompt text describing `tools` (OpenAI-style tool dicts)."""
    lines = "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
    return _TOOLS_HEADER + lines + _TOOLS_FOOTER


def format_tool_call(call: dict[str, Any]) -> str:
    """One `<tool_call>` block. Accepts OpenAI's shape ({"function": {"name", "arguments"}}) or
    the flat one; `arguments` may be a dict or a JSON string (parsed, so it is an object)."""
    fn = call.get("function", call)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ValueError(f"a tool call needs a function name: {call!r}")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(f"tool call {fn['name']!r}: arguments are not valid JSON: {args!r}") from None
    body = json.dumps({"name": fn["name"], "arguments": args}, ensure_ascii=False)
    return f"{FALLBACK_TOOL_CALL_MARKERS[0]}\n{body}\n{FALLBACK_TOOL_CALL_MARKERS[1]}"


def apply_fallback(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                   default_system_prompt: str | None) -> list[dict[str, Any]]:
    """The conversation rewritten for a template without tool support (see the module doc).
    Messages without tools, tool calls or tool results come back unchanged (as copies)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        msg = dict(msg)
        if msg.get("role") == "assistant" and msg.get("tool_calls"):
            blocks = [format_tool_call(c) for c in msg.pop("tool_calls")]
            text = _text_of(msg.get("content"))
            msg["content"] = "\n".join(([text] if text else []) + blocks)
        elif msg.get("role") == "tool":
            result = f"<tool_response>\n{_text_of(msg.get('content'))}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + result
                continue
            msg = {"role": "user", "content": result, "_tool_results": True}
        else:
            msg.pop("tool_calls", None)
        out.append(msg)
    for msg in out:
        msg.pop("_tool_results", None)
    if tools:
        section = tools_system_section(tools)
        if out and out[0].get("role") == "system":
            base = _text_of(out[0].get("content"))
            out[0] = {**out[0], "content": f"{base}\n\n{section}" if base else section}
        else:
            intro = f"{default_system_prompt}\n\n" if default_system_prompt else ""
            out.insert(0, {"role": "system", "content": intro + section})
    return out


def _text_of(content: Any) -> str:
    """A message's content as text: strings as they are, OpenAI content parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return json.dumps(content, ensure_ascii=False)
