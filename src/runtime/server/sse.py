"""Server-sent events: framing, the streaming response, and merging concurrent streams.

Each event is one `data: <json>` line and a blank line; a stream ends with `data: [DONE]`.
An error after the response has started (status 200 already sent) goes out as an event
`data: {"error": {...}}`, which the OpenAI client raises as an APIError.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from .errors import APIError, error_body

T = TypeVar("T")
log = logging.getLogger("tines.server")

DONE = "data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(data: BaseModel | dict[str, Any]) -> str:
    if isinstance(data, BaseModel):
        return f"data: {data.model_dump_json()}\n\n"
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def error_event(e: Exception) -> str:
    """The event that ends a stream which failed after its 200 went out: the APIError's own
    body, or a 500 body naming the engine's error (a request failed alone, or the engine
    stopped). Every stream handler sends it (then `[DONE]`) for any exception, so no stream
    ever ends silently."""
    if isinstance(e, APIError):
        return event(e.body())
    log.warning("stream failed: %s: %s", type(e).__name__, e)
    return event(error_body(500, str(e) or type(e).__name__))


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that always closes its iterator, then calls `on_close`, however it
    ends. When the client goes away Starlette cancels the sending; the iterator may be
    suspended at a `yield` then (or not started at all, when its `finally` never runs), and
    would otherwise only be finalized whenever it is garbage collected."""

    def __init__(self, *args: Any, on_close: Callable[[], None] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            if self.on_close is not None:
                self.on_close()


def sse_response(events: AsyncIterator[str], headers: dict[str, str] | None = None,
                 on_close: Callable[[], None] | None = None) -> StreamingResponse:
    """A 200 `text/event-stream` response; `on_close` releases what the stream holds (ours
    abort their engine requests if they still run)."""
    return EventStreamResponse(events, media_type="text/event-stream",
                               headers={**HEADERS, **(headers or {})}, on_close=on_close)


async def merge(streams: list[AsyncIterator[T]]) -> AsyncIterator[T]:
    """Items of several async iterators as they come. An error in one ends the merge with that
    error; leaving early (or being cancelled) closes every stream, which runs their `finally`."""
    if len(streams) == 1:
        async for item in streams[0]:
            yield item
        return
    queue: asyncio.Queue = asyncio.Queue()
    end = object()

    async def pump(stream: AsyncIterator[T]) -> None:
        try:
            async for item in stream:
                await queue.put((item, None))
            await queue.put((end, None))
        except Exception as e:
            await queue.put((end, e))
        finally:  # cancelled between items: finalize the stream now, not at garbage collection
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        remaining = len(tasks)
        while remaining:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is end:
                remaining -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
