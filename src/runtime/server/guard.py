"""The route class of every guarded route: the API key, then the body size, then the JSON,
before FastAPI validates anything.

Order matters. The key is checked first, so a caller without it learns nothing about what the
server accepts (a malformed body from it gets 401, not 400). The body is read against
`--max-body` (Content-Length first, then the bytes as they stream in), so an oversized body
is refused with 413 before it is held in memory. The JSON is parsed on a worker thread, so
the event loop (and /health) keeps answering while a large body is decoded, and it is checked
there too: no value nested deeper than `max_json_depth`, no non-finite number (Python's
parser accepts `Infinity`, `NaN` and `1e999`), no string with a lone surrogate (the tokenizer
and the JSON encoder both fail on those). FastAPI then reuses the parsed body (Starlette's
`Request` caches it in `_body` / `_json`).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from .errors import APIError
from .state import check_api_key, state_of

_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class GuardedRoute(APIRoute):
    """An APIRoute that checks the API key and reads, bounds and parses the body first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            st = state_of(request)
            check_api_key(request)
            if request.method in _METHODS_WITH_BODY:
                body = await read_body(request, st.limits.max_body)
                request._body = body
                if body:
                    request._json = await asyncio.to_thread(parse_body, body,
                                                            st.limits.max_json_depth)
            return await handler(request)

        return guarded


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise APIError(400, "Content-Length: not a non-negative integer")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> APIError:
    return APIError(413, f"the request body ({size} bytes or more) is over this server's limit of "
                    f"{limit} bytes (--max-body)", code="body_too_large")


def parse_body(body: bytes, max_depth: int) -> Any:
    """The JSON value of `body`; 400 for invalid JSON, nesting deeper than `max_depth`, a
    non-finite number or a lone surrogate, naming where it is."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise APIError(400, f"the request body nests deeper than this server's limit of "
                       f"{max_depth} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON: {e}") from None
    check_value(value, max_depth)
    return value


def check_value(root: Any, max_depth: int) -> None:
    """400 naming the first place in `root` that nests too deeply, holds a non-finite float
    or a string that is not valid Unicode. Iterative: it must not recurse on what it guards."""
    stack: list[tuple[str, Any, int]] = [("", root, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= max_depth:
                where = path or "the request body"
                raise APIError(400, f"{where}: nests deeper than this server's limit of "
                               f"{max_depth} levels", path or None)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and not _valid_text(key):
                    raise APIError(400, f"{path or 'the request body'}: a key is not valid "
                                   "Unicode (lone surrogate)", path or None)
                stack.append((_join(path, key), item, depth + 1))
        elif isinstance(value, float) and not math.isfinite(value):
            raise APIError(400, f"{path}: must be a finite number, got {value}", path or None)
        elif isinstance(value, str) and not _valid_text(value):
            raise APIError(400, f"{path}: not valid Unicode text (a lone surrogate)", path or None)


def _valid_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _join(path: str, key: str | int) -> str:
    """`messages` + 0 -> `messages[0]`; `messages[0]` + "content" -> `messages[0].content`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = key[:64]
    return f"{path}.{key}" if path else key
