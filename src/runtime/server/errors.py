"""Errors as OpenAI shapes them: `{"error": {"message", "type", "param", "code"}}`, on every route.

Bad input never reaches the engine as an exception it has to survive: request bodies are
validated by pydantic (-> 400 naming the field), sampling values by `SamplingParams` (its
ValueError names the field first, `"top_p: must be ..."`), constraints by the grammar compiler
at submit (a ValueError -> 400). Anything else is a bug and becomes a 500 without a traceback
in the body; the server keeps serving.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tines.server")

_FIELD = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z0-9_]+|\[\d+\])*")
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
          503: "server_overloaded"}


class APIError(Exception):
    """An error for the client: HTTP `status`, a message, and the request field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(status: int, message: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error"),
                      "param": param, "code": code}}


def bad_value(e: ValueError, rename: dict[str, str] | None = None, default_param: str | None = None,
              prefix: str = "") -> APIError:
    """A 400 from a ValueError. When its message starts `"field: ..."` (as SamplingParams and
    Engine.submit write them) the field becomes `param`, renamed through `rename` (engine names
    to the API's own) and prefixed; otherwise `default_param` is named."""
    message = str(e)
    head, sep, rest = message.partition(": ")
    if sep and _FIELD.fullmatch(head):
        param = prefix + (rename or {}).get(head, head)
        return APIError(400, f"{param}: {rest}", param)
    return APIError(400, message, default_param)


def _param_of(loc: tuple) -> str | None:
    """`("body", "messages", 0, "content", "str")` -> `"messages[0].content"`: list indexes
    in brackets; pydantic's union-member tags (`str`, `list[...]`, class names) dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "body" and part not in _TYPE_TAGS and part[:1].islower() and part.isidentifier():
            out += f".{part}" if out else part
    return out or None


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def _validation_error(exc: RequestValidationError) -> APIError:
    first = exc.errors()[0] if exc.errors() else {}
    kind = first.get("type", "")
    param = _param_of(first.get("loc", ()))
    loc = [param] if param else []
    if kind == "json_invalid":
        ctx = first.get("ctx") or {}
        return APIError(400, f"the request body is not valid JSON: {ctx.get('error', first.get('msg'))}")
    if kind == "extra_forbidden":
        return APIError(400, f"unknown field {param!r}", param)
    if kind == "missing":
        if param is None:
            return APIError(400, "the request body is required (a JSON object)")
        return APIError(400, f"{param}: field required", param)
    if not loc:
        return APIError(400, f"the request body must be a JSON object: {first.get('msg')}")
    got = first.get("input")
    shown = repr(got) if len(repr(got)) <= 80 else repr(got)[:77] + "..."
    return APIError(400, f"{param}: {first.get('msg')} (got {shown})", param)


def install_error_handlers(app: FastAPI, on_error: Callable[[int], None] = lambda status: None) -> None:
    """Every error response in OpenAI's shape; `on_error(status)` counts them."""

    def reply(exc: APIError) -> JSONResponse:
        on_error(exc.status)
        return exc.response()

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return reply(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return reply(_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        return reply(APIError(exc.status_code, message, headers=getattr(exc, "headers", None)))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return reply(APIError(500, f"internal error: {type(exc).__name__}: {exc}"))


@contextmanager
def engine_errors(param: str) -> Iterator[None]:
    """Engine refusals as API errors, for routes that call the engine directly (not through
    the dispatcher): 503 for a full queue, 400 otherwise (a prompt too long included, with
    code `context_length_exceeded`)."""
    from ..engine.admission import QueueFullError

    try:
        yield
    except QueueFullError as e:
        raise APIError(503, str(e), code="queue_full", headers={"Retry-After": "1"}) from None
    except ValueError as e:
        if "does not fit the context" in str(e):
            raise APIError(400, str(e), param, "context_length_exceeded") from None
        raise bad_value(e, default_param=param) from None
