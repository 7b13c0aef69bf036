"""HTTP plumbing shared by the remote backends: one keep-alive JSON client, sync and async.

`JSONClient` holds one `httpx.Client` (thread-safe: fork branches and `run_batch` threads
share its connection pool) and one `httpx.AsyncClient` per event loop (an async client's
connections belong to the loop that opened them, and `arun` may be called from several
`asyncio.run`s). Error statuses become exceptions carrying the server's message:
`BadRequestError` (also a ValueError, as the in-process engine raises for bad input) for
400 / 413 / 422, `APIStatusError` for the rest. Server-sent events are parsed here too:
`data: {...}` lines until `data: [DONE]`; an event `{"error": {...}}` raises like a status.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tines.runtime.outputs import RequestOutput

_BAD_INPUT = (400, 413, 422)
_BAD_INPUT_TYPES = ("invalid_request_error",)


class APIStatusError(RuntimeError):
    """The server answered `status` with `message` (its own words)."""

    def __init__(self, status: int, message: str, url: str) -> None:
        super().__init__(f"{url}: HTTP {status}: {message}")
        self.status, self.message, self.url = status, message, url


class BadRequestError(APIStatusError, ValueError):
    """The server refused the request's content (a bad regex, a prompt too long, ...)."""


@dataclass(slots=True)
class RemoteOutput(RequestOutput):
    """A RequestOutput received over HTTP: the server reports how many prompt tokens it
    saw, not their ids, so `prompt_token_ids` is empty and `prompt_tokens` holds the count."""

    prompt_tokens: int = 0

    @property
    def num_prompt_tokens(self) -> int:
        return self.prompt_tokens


def error_of(status: int, body: Any, url: str) -> APIStatusError:
    """The exception for an error status (or an in-stream error event) with this body."""
    error = body.get("error") if isinstance(body, dict) else None
    message = str(error.get("message") or error) if isinstance(error, dict) else \
        str(error or body)[:500]
    return (BadRequestError if status in _BAD_INPUT else APIStatusError)(status, message, url)


class JSONClient:
    """JSON over HTTP to one server. `transport` replaces the network (tests)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 600.0,
                 transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Idle connections are dropped before a server's usual 5 s keep-alive timeout, so a
        # reused connection is never one the server is closing.
        self._kwargs: dict[str, Any] = dict(
            base_url=self.base_url, headers=self._headers, timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64,
                                keepalive_expiry=2.0))
        self._transport = transport
        self._client: httpx.Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = \
            weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # ---- clients -------------------------------------------------------------------------

    def _sync(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(transport=self._transport, **self._kwargs)
            return self._client

    def _async(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._aclients.get(loop)
            if client is None:
                client = httpx.AsyncClient(transport=self._transport, **self._kwargs)
                self._aclients[loop] = client
            return client

    def close(self) -> None:
        """Close the blocking client (async clients close with their event loops)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ---- requests ------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        return self._json(self._sync().get(path))

    async def aget(self, path: str) -> Any:
        return self._json(await self._async().get(path))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self._sync().post(path, json=body))

    async def apost(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(await self._async().post(path, json=body))

    def events(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The JSON events of a server-sent-event response, until `[DONE]`."""
        with self._sync().stream("POST", path, json=body) as response:
            if response.status_code >= 400:
                response.read()
                self._json(response)
            for line in response.iter_lines():
                event = self._event(line, str(response.url))
                if event is _DONE:
                    return
                if event is not None:
                    yield event

    async def aevents(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        async with self._async().stream("POST", path, json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                self._json(response)
            async for line in response.aiter_lines():
                event = self._event(line, str(response.url))
                if event is _DONE:
                    return
                if event is not None:
                    yield event

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise error_of(response.status_code, body, str(response.url))
        return body

    @staticmethod
    def _event(line: str, url: str) -> Any:
        if not line.startswith("data:"):
            return None  # blank separators, comments, `event:` / `id:` fields
        data = line[5:].strip()
        if data == "[DONE]":
            return _DONE
        event = json.loads(data)
        if isinstance(event, dict) and "error" in event:  # after the 200 status was sent
            error = event["error"] if isinstance(event["error"], dict) else {}
            raise error_of(400 if error.get("type") in _BAD_INPUT_TYPES else 500, event, url)
        return event


_DONE = object()
