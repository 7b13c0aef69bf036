"""Several models behind one server, chosen by each request's `model` field, as Ollama does.

Each model gets its own Engine (so its own radix cache and KV budget) and its own copy of the
single-model app; `ModelSetApp` is a thin ASGI front that reads the request's `model`, loads
that model on first use and hands the request to its app unchanged (the body is replayed).
At most `max_loaded` engines are loaded: loading one more unloads the least recently used
model that has no request in flight (503 when every loaded model is busy).

`GET /v1/models` lists every configured model (loaded or not, with `"loaded"`); `/health`
answers for the front. A request without `model` goes to the first configured model.

Invariant (`check()`): at most `max_loaded` engines are loaded, and every in-flight count
belongs to a loaded model.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

log = logging.getLogger("tines.server")
Scope = dict[str, Any]


def served_name(model: str | None) -> str:
    """The id a client uses: a registry name as given, a path's file or folder stem."""
    from ..models.registry import DEFAULT_MODEL

    if model is None:
        return DEFAULT_MODEL
    return Path(model).stem if Path(model).exists() else model


@dataclass
class _Loaded:
    engine: Any
    app: Any
    in_flight: int = 0


@dataclass
class ModelSet:
    """The configured models (served name -> model path or registry name) and the loaded ones."""

    models: dict[str, str | None]
    make_app: Callable[[str, str | None], tuple[Any, Any]]  # (name, model) -> (engine, app)
    max_loaded: int = 2
    loaded: OrderedDict[str, _Loaded] = field(default_factory=OrderedDict)  # LRU first
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def acquire(self, name: str) -> _Loaded:
        """The loaded model `name`, counted in flight until `release`. KeyError when unknown;
        RuntimeError when it cannot be loaded without unloading a busy model."""
        if name not in self.models:
            raise KeyError(name)
        async with self._lock:
            entry = self.loaded.get(name)
            if entry is None:
                while len(self.loaded) >= self.max_loaded:
                    idle = next((n for n, e in self.loaded.items() if e.in_flight == 0), None)
                    if idle is None:
                        raise RuntimeError(f"every loaded model is busy (--max-loaded-models "
                                           f"{self.max_loaded}); try again")
                    gone = self.loaded.pop(idle)
                    log.info("unloading model %r (least recently used)", idle)
                    await asyncio.to_thread(gone.engine.shutdown)
                log.info("loading model %r", name)
                engine, app = await asyncio.to_thread(self.make_app, name, self.models[name])
                entry = self.loaded[name] = _Loaded(engine, app)
            self.loaded.move_to_end(name)
            entry.in_flight += 1
            return entry

    def release(self, entry: _Loaded) -> None:
        entry.in_flight -= 1

    def shutdown(self) -> None:
        for entry in self.loaded.values():
            entry.engine.shutdown()
        self.loaded.clear()

    def check(self) -> None:
        assert len(self.loaded) <= self.max_loaded, list(self.loaded)
        assert all(e.in_flight >= 0 for e in self.loaded.values())


class ModelSetApp:
    """The ASGI front: routes each HTTP request to its model's app."""

    def __init__(self, models: ModelSet, api_key: str | None = None, max_body: int = 8 << 20):
        self.models, self.api_key, self.max_body = models, api_key, max_body
        self.default = next(iter(models.models))

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/health":
            return await _json(send, 200, {"status": "ok"})
        if not self._authorized(scope) and path != "/openapi.json":
            # before the body is read and before any model is loaded or evicted for it
            return await _json(send, 401, _error("invalid or missing API key", "invalid_api_key"))
        if path == "/v1/models":
            return await _json(send, 200, {"object": "list", "data": [
                {"id": n, "object": "model", "owned_by": "tines", "loaded": n in self.models.loaded}
                for n in self.models.models]})
        body, more = await _read_body(receive, self.max_body)
        if more:
            return await _json(send, 413, _error(f"body larger than {self.max_body} bytes",
                                                 "body_too_large"))
        name, body = _take_model(body, keep=path.startswith("/v1/"))
        name = name or _query_model(scope) or self.default
        base = name.partition(":")[0]
        if name not in self.models.models and base in self.models.models:
            name = base  # "MODEL:ADAPTER": the model's app serves its LoRA adapter
        try:
            entry = await self.models.acquire(name)
        except KeyError:
            return await _json(send, 404, _error(
                f"model: {name!r} does not exist; this server serves "
                f"{sorted(self.models.models)}", "model_not_found", "model"))
        except RuntimeError as e:
            return await _json(send, 503, _error(str(e), "models_busy"))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await entry.app(scope, replay, send)
        finally:
            self.models.release(entry)

    def _authorized(self, scope: Scope) -> bool:
        if self.api_key is None:
            return True
        headers = dict(scope.get("headers", []))
        auth = headers.get(b"authorization", b"").decode("latin-1")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else \
            headers.get(b"x-api-key", b"").decode("latin-1")
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.models.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _take_model(body: bytes, keep: bool) -> tuple[str | None, bytes]:
    """The body's `model`, and the body to forward: unchanged for the OpenAI routes (where
    `model` is a field) and for a "MODEL:ADAPTER" (the model's app picks the adapter), without
    `model` for the native ones otherwise (routes such as /load_lora_adapter have no such
    field)."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return None, body  # the model's own app answers the malformed body
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, str):
        return None, body
    if not keep and ":" not in model:  # "MODEL:ADAPTER" stays: the model's app reads the adapter
        del data["model"]
        body = json.dumps(data).encode()
    return model, body


def _query_model(scope: Scope) -> str | None:
    """`?model=NAME` on a route without a body (`GET /model_info?model=...`)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("model")
    return values[0] if values else None


async def _read_body(receive: Callable, limit: int) -> tuple[bytes, bool]:
    """The whole body, or (what was read, True) once it passes `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return b"", True
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _error(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}


async def _json(send: Callable, status: int, data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
