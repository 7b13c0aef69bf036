"""Streaming reads of a running state: `text_iter` and `text_async_iter`.

A `_Cursor` remembers how much of a source (the branch's text, or one variable's raw text)
it has handed out. The text only grows, so each wake-up yields `source[offset:]`. A streamed
variable's source is its raw decoded text; any other variable yields `str(value)` once it is
set. Iteration ends when the source is final; then a failure of the program is raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tines.branch import Branch


class _Cursor:
    def __init__(self, branch: Branch, name: str | None) -> None:
        self.branch = branch
        self.name = name
        self.offset = 0
        self.final = False  # the last piece was handed out

    def _source(self) -> tuple[str | None, bool]:
        """(text so far or None if not started, whether it is final). Finality is read
        before the text: a source seen final is read complete."""
        branch, name = self.branch, self.name
        finished = branch.finished()
        frame = branch.frame
        if name is None:
            return frame.text, finished
        final = finished or branch.has(name)
        if name in frame.streaming:
            return frame.streaming[name], final
        if branch.has(name):
            return str(frame.variables[name]), True
        return None, finished

    def ready(self) -> bool:
        source, final = self._source()
        return final or (source is not None and len(source) > self.offset)

    def take(self) -> str:
        """The new piece (maybe empty); sets `final` when nothing more will come."""
        source, self.final = self._source()
        chunk = (source or "")[self.offset:]
        self.offset += len(chunk)
        return chunk

    def raise_failure(self) -> None:
        if (error := self.branch.error()) is not None:
            raise error


def iter_text(branch: Branch, name: str | None) -> Iterator[str]:
    cursor = _Cursor(branch, name)
    what = "the stream" if name is None else f"the stream of {name!r}"
    while not cursor.final:
        branch.block_until(cursor.ready, what, "use `async for ... in s.text_async_iter()`")
        if chunk := cursor.take():
            yield chunk
    cursor.raise_failure()


async def aiter_text(branch: Branch, name: str | None) -> AsyncIterator[str]:
    cursor = _Cursor(branch, name)
    while not cursor.final:
        await branch.await_until(cursor.ready)
        if chunk := cursor.take():
            yield chunk
    cursor.raise_failure()
