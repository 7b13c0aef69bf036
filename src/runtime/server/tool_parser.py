"""Splitting generated text into message content and tool calls, incrementally.

The same parser serves whole outputs (`feed(text)` then `finish()`) and streams (`feed` per
delta): text that could still be the start of an opening marker is held back. Inside a call,
once `{"name": <a known tool>, "arguments": {` has arrived the call is announced (`CallStart`)
and its arguments are given out as they arrive (`ArgsDelta`, OpenAI's streamed shape), up to
the end of the arguments object; any other block is held until its closing marker, then
parsed, and one that does not parse as `{"name": <a known tool>, "arguments": {...}}` is given
back as content, never dropped. A call cut by the end of the output once its name is whole
stays a call (its arguments as far as they got, maybe none), so a `max_tokens` cut never shows
the template's markup as content. A function's arguments are the text the model wrote, streamed
or not, so the deltas add up to the whole output's `arguments`. Whitespace just before a call is not
reported (so an answer made only of calls has `content: null`); whole and streamed parsing
give the same content and calls.

A call of a custom tool (`custom_names`, see `custom_tools.py`) has arguments `{"input": "..."}`:
it is answered as a custom call, its input given out decoded as it arrives (`InputDelta`;
an escape is held until it is whole).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, NamedTuple

from .protocol_out import CustomCallOut, CustomToolCallOut, FunctionCallOut, ToolCallOut

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"(?:arguments|parameters)"\s*:\s*(?=\{)')
_INPUT_HEAD = re.compile(r'\{\s*"input"\s*:\s*"')
_NAME_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")')  # a call cut after its name
_ARGS_KEY = re.compile(r'\s*,\s*"(?:arguments|parameters)"\s*:\s*')
# one whole unit of a JSON string's contents: plain text, a surrogate pair, an escape
_STRING_UNIT = re.compile(r'[^"\\]+|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[0-9a-fA-F]{4}'
                          r'|\\u[0-9a-fA-F]{4}|\\[^u]')


class CallStart(NamedTuple):
    """A call begins: its position among the calls, id, name and type ("function": its
    arguments follow as `ArgsDelta`s; "custom": its input as `InputDelta`s)."""

    index: int
    id: str
    name: str
    type: str = "function"


class ArgsDelta(NamedTuple):
    """The next piece of call `index`'s arguments (a JSON object's text, in pieces)."""

    index: int
    text: str


class InputDelta(NamedTuple):
    """The next piece of custom call `index`'s input (decoded text)."""

    index: int
    text: str


Event = str | CallStart | ArgsDelta | InputDelta  # a piece of content, or part of a call


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ToolCallParser:
    def __init__(self, markers: tuple[str, str], names: frozenset[str], max_calls: int | None = None,
                 custom_names: frozenset[str] = frozenset()):
        """`names`: the functions that may be called (both sets empty: any name)."""
        self.opening, self.closing = markers
        self.names, self.custom_names, self.max_calls = names, custom_names, max_calls
        self.calls: list[ToolCallOut | CustomToolCallOut] = []
        self._buf = ""
        self._in_call = False
        self._pending_space = ""
        self._live: _LiveCall | _LiveInput | None = None  # the call being given out

    def feed(self, text: str) -> list[Event]:
        self._buf += text
        events: list[Event] = []
        while True:
            if not self._in_call:
                i = self._buf.find(self.opening)
                if i < 0:
                    keep = _partial_suffix(self._buf, self.opening)
                    self._content(self._buf[:len(self._buf) - keep], events)
                    self._buf = self._buf[len(self._buf) - keep:]
                    return events
                self._content(self._buf[:i], events)
                self._buf, self._in_call = self._buf[i:], True
            if self._live is None:
                self._try_start(events)
            if self._live is not None:
                self._live_args(events)
            j = self._buf.find(self.closing, len(self.opening))
            if j < 0:
                return events
            end = j + len(self.closing)
            if self._live is not None:
                self._end_live()
            else:
                self._block(self._buf[:end], self._buf[len(self.opening):j], events)
            self._buf, self._in_call = self._buf[end:], False

    def finish(self) -> list[Event]:
        """The output ended: an unclosed call is parsed as it stands (the closing marker may
        be an end-of-turn token that is not in the text); anything else is content."""
        events: list[Event] = []
        if self._live is not None:
            self._end_live()
        elif self._in_call:
            if not self._cut_call(events):
                self._block(self._buf, self._buf[len(self.opening):], events)
        else:
            self._content(self._buf, events)
        if self._pending_space and not self.calls:  # plain text keeps its trailing whitespace
            events.append(self._pending_space)
        self._buf, self._in_call, self._pending_space = "", False, ""
        return events

    def _content(self, text: str, events: list[Event]) -> None:
        body = text.rstrip()
        if not body:
            self._pending_space += text
            return
        events.append(self._pending_space + body)
        self._pending_space = text[len(body):]  # dropped if a call comes next

    def _room(self) -> bool:
        return self.max_calls is None or len(self.calls) < self.max_calls

    def _known(self, name: str) -> bool:
        return name in self.names or name in self.custom_names or not (self.names or self.custom_names)

    def _block(self, raw: str, body: str, events: list[Event]) -> None:
        call = self._parse(body)
        if call is None:
            self._content(raw, events)
            return
        self._pending_space = ""
        if self._room():
            self.calls.append(call)
            i = len(self.calls) - 1
            if isinstance(call, CustomToolCallOut):
                events += [CallStart(i, call.id, call.custom.name, "custom"),
                           InputDelta(i, call.custom.input)]
            else:
                events += [CallStart(i, call.id, call.function.name),
                           ArgsDelta(i, call.function.arguments)]

    def _try_start(self, events: list[Event]) -> None:
        """Announce the call once its name and the start of its arguments object are in
        (for a custom tool: the start of its input string)."""
        m = _HEAD.match(self._buf, len(self.opening))
        if m is None:
            return
        name = json.loads(m.group(1))
        if not self._known(name):
            return  # held to the closing marker, then given back as content
        if name in self.custom_names:
            mi = _INPUT_HEAD.match(self._buf, m.end())
            if mi is None:
                return  # not (yet) `{"input": "`: parsed whole at the closing marker
            live: _LiveCall | _LiveInput = _LiveInput(None, mi.end())
            call: ToolCallOut | CustomToolCallOut = CustomToolCallOut(
                id=new_call_id(), custom=CustomCallOut(name=name, input=""))
        else:
            live = _LiveCall(None, m.end())
            call = ToolCallOut(id=new_call_id(), function=FunctionCallOut(name=name, arguments=""))
        self._pending_space = ""
        self._live = live
        if self._room():
            self.calls.append(call)
            live.index = len(self.calls) - 1
            events.append(CallStart(live.index, call.id, name,
                                    "custom" if isinstance(live, _LiveInput) else "function"))

    def _live_args(self, events: list[Event]) -> None:
        live = self._live
        piece = live.scan(self._buf)
        if not piece or live.index is None:
            return
        call = self.calls[live.index]
        if isinstance(call, CustomToolCallOut):
            call.custom.input += piece
            events.append(InputDelta(live.index, piece))
        else:
            call.function.arguments += piece
            events.append(ArgsDelta(live.index, piece))

    def _end_live(self) -> None:
        """The live call ended (closing marker, or the output ended)."""
        self._live = None

    def _cut_call(self, events: list[Event]) -> bool:
        """The output ended inside a call before its arguments began, but after its name:
        a call of that tool with what arrived of its arguments (or input). False when the
        name is not whole or not a tool's."""
        m = _NAME_HEAD.match(self._buf, len(self.opening))
        if m is None or not self._room():
            return False
        try:
            name = json.loads(m.group(1))
        except json.JSONDecodeError:
            return False
        if not isinstance(name, str) or not self._known(name) or self._parse(
                self._buf[len(self.opening):]) is not None:
            return False  # a whole block: `_block` answers it
        key = _ARGS_KEY.match(self._buf, m.end())
        args = self._buf[key.end():].rstrip() if key else ""
        self._pending_space = ""
        i = len(self.calls)
        if name in self.custom_names:
            self.calls.append(CustomToolCallOut(id=new_call_id(), custom=CustomCallOut(
                name=name, input="")))
            events.append(CallStart(i, self.calls[i].id, name, "custom"))
        else:
            self.calls.append(ToolCallOut(id=new_call_id(), function=FunctionCallOut(
                name=name, arguments=args)))
            events += [CallStart(i, self.calls[i].id, name), ArgsDelta(i, args)]
        return True

    def _parse(self, body: str) -> ToolCallOut | CustomToolCallOut | None:
        try:
            data: Any = json.loads(body.strip())
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return None
        args = data.get("arguments", data.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return None
        if not isinstance(args, dict) or not self._known(data["name"]):
            return None
        if data["name"] in self.custom_names:
            if not isinstance(args.get("input"), str):
                return None
            return CustomToolCallOut(id=new_call_id(), custom=CustomCallOut(
                name=data["name"], input=args["input"]))
        return ToolCallOut(id=new_call_id(), function=FunctionCallOut(
            name=data["name"], arguments=json.dumps(args, ensure_ascii=False)))


class _LiveCall:
    """Scans a call's arguments object as it arrives: where it ends (brace depth outside
    strings) and how much of it has been given out."""

    __slots__ = ("index", "pos", "depth", "in_string", "escape", "done")

    def __init__(self, index: int | None, pos: int):
        self.index, self.pos = index, pos  # pos: next unscanned offset in the parser's buffer
        self.depth, self.in_string, self.escape, self.done = 0, False, False, False

    def scan(self, buf: str) -> str:
        """The new part of the arguments in `buf` (up to the object's closing brace)."""
        start = self.pos
        while self.pos < len(buf) and not self.done:
            ch = buf[self.pos]
            self.pos += 1
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif ch == "\\":
                    self.escape = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch == "{" or ch == "[":
                self.depth += 1
            elif ch == "}" or ch == "]":
                self.depth -= 1
                self.done = self.depth == 0
        return buf[start:self.pos]


class _LiveInput:
    """Decodes a custom call's input (a JSON string's contents) as it arrives, up to its
    closing quote; an escape (or a surrogate pair's first half) waits until it is whole."""

    __slots__ = ("index", "pos", "done")

    def __init__(self, index: int | None, pos: int):
        self.index, self.pos, self.done = index, pos, False

    def scan(self, buf: str) -> str:
        out = []
        while not self.done and self.pos < len(buf):
            if buf[self.pos] == '"':
                self.pos, self.done = self.pos + 1, True
                break
            m = _STRING_UNIT.match(buf, self.pos)
            if m is None:
                break  # an escape cut short
            unit = m.group()
            if unit[:2] == "\\u" and len(unit) == 6 and 0xD800 <= int(unit[2:], 16) < 0xDC00 \
                    and m.end() + 6 > len(buf):
                break  # a high surrogate whose pair may still come
            self.pos = m.end()
            if unit[0] != "\\":
                out.append(unit)
                continue
            try:
                out.append(json.loads(f'"{unit}"'))
            except json.JSONDecodeError:
                out.append(unit)  # not an escape JSON knows: kept as written
        return "".join(out)


def split_tool_calls(text: str, markers: tuple[str, str], names: frozenset[str],
                     max_calls: int | None = None, custom_names: frozenset[str] = frozenset()
                     ) -> tuple[str | None, list[ToolCallOut | CustomToolCallOut]]:
    """(content or None when there is none, calls) of a whole output."""
    parser = ToolCallParser(markers, names, max_calls, custom_names)
    events = parser.feed(text) + parser.finish()
    if not parser.calls:
        return text, []
    content = "".join(e for e in events if isinstance(e, str))
    return (content if content.strip() else None), parser.calls


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest tail of `text` that is a proper prefix of `marker`."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0
