"""Streaming reads of a running state: `text_iter` and `text_async_iter`.

A `_Cursor` remembers how much of a source (the state's text, or one variable's raw text)
it has handed out. The text only grows, so each wake-up yields `source[offset:]`. A streamed
variable's source is its raw decoded text; any other variable yields `str(value)` once it is
set. Iteration ends when the source is final; then a failure of the program is raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tines.state import ProgramState


class _Cursor:
    def __init__(self, state: ProgramState, name: str | None) -> None:
        self.state = state
        self.name = name
        self.offset = 0

    def _source(self) -> tuple[str | None, bool]:
        """(text so far or None if not started, whether it is final). Finality is read
        before the text: a source seen final is read complete."""
        state, name = self.state, self.name
        finished = state._finished()
        frame = state._interp.frame
        if name is None:
            return frame.text, finished
        final = finished or state._has(name)
        if name in frame.streaming:
            return frame.streaming[name], final
        if state._has(name):
            return str(frame.variables[name]), True
        return None, finished

    def ready(self) -> bool:
        source, final = self._source()
        return final or (source is not None and len(source) > self.offset)

    def take(self) -> tuple[str, bool]:
        source, final = self._source()
        chunk = (source or "")[self.offset:]
        self.offset += len(chunk)
        return chunk, final


def _raise_failure(state: ProgramState) -> None:
    if (error := state.error()) is not None:
        raise error


def iter_text(state: ProgramState, name: str | None) -> Iterator[str]:
    cursor = _Cursor(state, name)
    what = "the stream" if name is None else f"the stream of {name!r}"
    while True:
        state._block_until(cursor.ready, what, "use `async for ... in s.text_async_iter()`")
        chunk, final = cursor.take()
        if chunk:
            yield chunk
        if final:
            break
    _raise_failure(state)


async def aiter_text(state: ProgramState, name: str | None) -> AsyncIterator[str]:
    cursor = _Cursor(state, name)
    while True:
        await state._changes.await_until(cursor.ready)
        chunk, final = cursor.take()
        if chunk:
            yield chunk
        if final:
            break
    _raise_failure(state)
