"""Splitting generated text into message content and tool calls, incrementally.

The same parser serves whole outputs (`feed(text)` then `finish()`) and streams (`feed` per
delta): text that could still be the start of an opening marker is held back. Inside a call,
once `{"name": <a known tool>, "arguments": {` has arrived the call is announced (`CallStart`)
and its arguments are given out as they arrive (`ArgsDelta`, OpenAI's streamed shape), up to
the end of the arguments object; any other block is held until its closing marker, then
parsed, and one that does not parse as `{"name": <a known tool>, "arguments": {...}}` is given
back as content, never dropped. A call cut by the end of the output after its arguments began
stays a call (its arguments as far as they got). Whitespace just before a call is not
reported (so an answer made only of calls has `content: null`); whole and streamed parsing
give the same content and calls.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, NamedTuple

from .protocol_out import FunctionCallOut, ToolCallOut

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"(?:arguments|parameters)"\s*:\s*(?=\{)')


class CallStart(NamedTuple):
    """A call begins: its position among the calls, id and name (arguments follow)."""

    index: int
    id: str
    name: str


class ArgsDelta(NamedTuple):
    """The next piece of call `index`'s arguments (a JSON object's text, in pieces)."""

    index: int
    text: str


Event = str | CallStart | ArgsDelta  # a piece of content, or part of a call


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ToolCallParser:
    def __init__(self, markers: tuple[str, str], names: frozenset[str], max_calls: int | None = None):
        self.opening, self.closing = markers
        self.names, self.max_calls = names, max_calls
        self.calls: list[ToolCallOut] = []
        self._buf = ""
        self._in_call = False
        self._pending_space = ""
        self._live: _LiveCall | None = None  # the call whose arguments are being given out

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

    def _block(self, raw: str, body: str, events: list[Event]) -> None:
        call = self._parse(body)
        if call is None:
            self._content(raw, events)
            return
        self._pending_space = ""
        if self._room():
            self.calls.append(call)
            events += [CallStart(len(self.calls) - 1, call.id, call.function.name),
                       ArgsDelta(len(self.calls) - 1, call.function.arguments)]

    def _try_start(self, events: list[Event]) -> None:
        """Announce the call once its name and the start of its arguments object are in."""
        m = _HEAD.match(self._buf, len(self.opening))
        if m is None:
            return
        name = json.loads(m.group(1))
        if self.names and name not in self.names:
            return  # held to the closing marker, then given back as content
        self._pending_space = ""
        self._live = _LiveCall(None, m.end())
        if self._room():
            self.calls.append(ToolCallOut(id=new_call_id(), function=FunctionCallOut(name=name, arguments="")))
            self._live.index = len(self.calls) - 1
            events.append(CallStart(self._live.index, self.calls[-1].id, name))

    def _live_args(self, events: list[Event]) -> None:
        live = self._live
        piece = live.scan(self._buf)
        if piece and live.index is not None:
            self.calls[live.index].function.arguments += piece
            events.append(ArgsDelta(live.index, piece))

    def _end_live(self) -> None:
        """The live call ended (closing marker, or the output ended): its arguments in the
        canonical form whole outputs get, when they parse."""
        live, self._live = self._live, None
        if live.index is None:
            return
        fn = self.calls[live.index].function
        try:
            args = json.loads(fn.arguments)
        except json.JSONDecodeError:
            return  # cut: keep the arguments as far as they got
        fn.arguments = json.dumps(args, ensure_ascii=False)

    def _parse(self, body: str) -> ToolCallOut | None:
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
        if not isinstance(args, dict) or (self.names and data["name"] not in self.names):
            return None
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


def split_tool_calls(text: str, markers: tuple[str, str], names: frozenset[str],
                     max_calls: int | None = None) -> tuple[str | None, list[ToolCallOut]]:
    """(content or None when there is none, calls) of a whole output."""
    parser = ToolCallParser(markers, names, max_calls)
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
