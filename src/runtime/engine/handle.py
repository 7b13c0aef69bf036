"""RequestHandle: how a caller on another thread or an asyncio loop receives a request's events.

The engine thread pushes StreamDelta objects (the last one carries the RequestOutput) or an
exception; the caller iterates them synchronously or with `async for`, or waits for the result.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator

from ..outputs import RequestOutput, StreamDelta


class RequestError(RuntimeError):
    """A request failed inside the engine (its message names the cause)."""


class EngineFatalError(RuntimeError):
    """The engine cannot go on (e.g. a tensor-parallel rank died): every request fails with
    this error and the engine thread stops."""


class RequestHandle:
    def __init__(self, request_id: str, loop: asyncio.AbstractEventLoop | None = None):
        self.request_id = request_id
        self._loop = loop
        self._queue: asyncio.Queue | queue.SimpleQueue = asyncio.Queue() if loop else queue.SimpleQueue()
        self._done = False

    def push(self, item: StreamDelta | BaseException) -> None:
        """Called on the engine thread."""
        if self._loop is None:
            self._queue.put(item)
        else:
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
            except RuntimeError:  # the caller's loop has closed: nobody is listening
                pass

    def __iter__(self) -> Iterator[StreamDelta]:
        if self._loop is not None:
            raise TypeError("this handle belongs to an asyncio loop: use `async for`")
        while not self._done:
            yield self._check(self._queue.get())

    async def __aiter__(self) -> AsyncIterator[StreamDelta]:
        if self._loop is None:
            raise TypeError("this handle is synchronous: use `for`")
        while not self._done:
            yield self._check(await self._queue.get())

    def result(self) -> RequestOutput:
        last = None
        for last in self:
            pass
        return last.output

    async def aresult(self) -> RequestOutput:
        last = None
        async for last in self:
            pass
        return last.output

    def _check(self, item: StreamDelta | BaseException) -> StreamDelta:
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item.output is not None:
            self._done = True
        return item
