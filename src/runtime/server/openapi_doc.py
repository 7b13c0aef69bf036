"""The OpenAPI document as the server really answers: FastAPI documents a 422 for every route
with parameters, which this server never sends (every validation failure is a 400 in
OpenAI's error shape). Each operation instead lists the error statuses it can send, all with
the one `ErrorResponse` body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
    }},
}
_REASONS = {400: "A bad value, naming the field (`error.param`), or a prompt that does not fit "
                 "the context (`code`: `context_length_exceeded`).",
            401: "A missing or wrong API key (only when the server has one).",
            404: "No such model or running request.",
            409: "The id is already in use by a running request.",
            413: "The body is over --max-body.",
            503: "The queue is full (--max-queue); retry after `Retry-After` seconds."}
_PUBLIC = frozenset({"/health"})
# operation -> the statuses beyond 400 / 401 / 413 it sends
_EXTRA = {"/generate": (409, 503), "/v1/completions": (404, 503),
          "/v1/chat/completions": (404, 503), "/score": (503,), "/warm": (503,),
          "/v1/models/{model}": (404,), "/abort/{request_id}": (404,), "/flush_cache": (409,)}


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (served at /openapi.json) document the error responses."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = document_errors(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with FastAPI's 422 replaced by the error statuses each operation sends."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ErrorResponse"] = _ERROR_SCHEMA
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            statuses = set(_EXTRA.get(path, ()))
            if path not in _PUBLIC:
                statuses |= {400, 401}
            if method in ("post", "put", "patch"):
                statuses.add(413)
            for status in sorted(statuses):
                responses[str(status)] = {"description": _REASONS[status], **ref}
    return doc
