"""Splitting generated text into message content and tool calls, incrementally.

The same parser serves whole outputs (`feed(text)` then `finish()`) and streams (`feed` per
delta): text that could still be the start of an opening marker is held back; everything
from an opening marker to its closing marker is held until it is complete, then parsed. A block
that does not parse as `{"name": <a known tool>, "arguments": {...}}` is given back as content,
never dropped. Whitespace just before a call is not reported (so an answer made only of calls
has `content: null`); whole and streamed parsing give the same content.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .protocol_out import FunctionCallOut, ToolCallOut

Event = str | ToolCallOut  # a piece of content, or one complete call


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
            j = self._buf.find(self.closing, len(self.opening))
            if j < 0:
                return events
            end = j + len(self.closing)
            self._block(self._buf[:end], self._buf[len(self.opening):j], events)
            self._buf, self._in_call = self._buf[end:], False

    def finish(self) -> list[Event]:
        """The output ended: an unclosed call is parsed as it stands (the closing marker may
        be an end-of-turn token that is not in the text); anything else is content."""
        events: list[Event] = []
        if self._in_call:
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

    def _block(self, raw: str, body: str, events: list[Event]) -> None:
        call = self._parse(body)
        if call is None:
            self._content(raw, events)
            return
        self._pending_space = ""
        if self.max_calls is None or len(self.calls) < self.max_calls:
            self.calls.append(call)
            events.append(call)

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
