"""Run one HTTP request through an ASGI app in-process and yield the messages it sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from .routed_request import RoutedRequest


async def call_asgi(app: Any, req: RoutedRequest) -> AsyncIterator[dict[str, Any]]:
    """Yields `http.response.start`, then each `http.response.body` message, as the app sends
    them (so a streamed answer streams). Closing the iterator early is a client disconnect:
    the app hears `http.disconnect` and its task is cancelled, which aborts the engine
    request and returns its KV."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": req.method, "scheme": "http", "path": req.path,
        "raw_path": req.path.encode(), "query_string": req.query, "root_path": "",
        "headers": req.headers, "client": ("127.0.0.1", 0), "server": ("tines-replica", 80),
    }
    sent: asyncio.Queue = asyncio.Queue()
    gone = asyncio.Event()
    body_taken = False

    async def receive() -> dict[str, Any]:
        nonlocal body_taken
        if not body_taken:
            body_taken = True
            return {"type": "http.request", "body": req.body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    task = asyncio.ensure_future(app(scope, receive, sent.put))
    try:
        while True:
            message = asyncio.ensure_future(sent.get())
            await asyncio.wait({message, task}, return_when=asyncio.FIRST_COMPLETED)
            if not message.done():  # the app returned (or failed) with nothing more queued
                message.cancel()
                task.result()
                while not sent.empty():
                    yield sent.get_nowait()
                return
            yield message.result()
            if message.result()["type"] == "http.response.body" and \
                    not message.result().get("more_body", False):
                return
    finally:
        gone.set()
        if not task.done():
            task.cancel()
