"""What every route of one app shares: the engine, the served model's names, the dispatcher,
the metrics, and the API key check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request

from .dispatch import Dispatcher
from .errors import APIError
from .limits import Limits
from .logprobs import TokenBytes
from .metrics import ServerMetrics

if TYPE_CHECKING:
    from ..engine.engine import Engine


@dataclass(slots=True)
class ServerState:
    engine: Engine
    model_name: str  # the id /v1/models lists
    aliases: frozenset[str]  # other names a request may use for the same model
    dispatcher: Dispatcher
    metrics: ServerMetrics
    token_bytes: TokenBytes
    api_key: str | None = None
    limits: Limits = Limits()

    @classmethod
    def build(cls, engine: Engine, model_name: str | None = None, api_key: str | None = None,
              limits: Limits | None = None) -> ServerState:
        """Raises ValueError for an empty API key (it would silently turn auth off)."""
        if api_key is not None and not api_key.strip():
            raise ValueError("--api-key: empty; give a non-empty key, or leave the flag out to "
                             "serve without authentication")
        path = Path(engine.model_path)
        name = model_name or _default_name(engine)
        aliases = frozenset({name, str(path), path.name, path.stem, engine.cfg.model or name})
        metrics = ServerMetrics(engine)
        return cls(engine, name, aliases, Dispatcher(engine, metrics), metrics,
                   TokenBytes(engine.tokenizer), api_key, limits or Limits())

    def check_model(self, name: str) -> str | None:
        """The LoRA adapter `name` picks: "MODEL:ADAPTER" or an adapter's own name (as vLLM
        lists them), None for the base model (by its id, path or file name); 404 otherwise."""
        base, _, adapter = name.rpartition(":") if ":" in name else (name, "", "")
        if base in self.aliases and adapter in self.engine.lora_adapters:
            return adapter
        if name in self.aliases:
            return None
        if name in self.engine.lora_adapters:
            return name
        served = [self.model_name, *(f"{self.model_name}:{a}" for a in self.engine.lora_adapters)]
        raise APIError(404, f"model: {name!r} does not exist; this server serves {served}",
                       "model", "model_not_found")


def state_of(request: Request) -> ServerState:
    return request.app.state.tines


async def require_api_key(request: Request) -> None:
    """A route dependency: with an API key set, `Authorization: Bearer <key>` (or `x-api-key`)
    must carry it."""
    check_api_key(request)


def check_api_key(request: Request) -> None:
    """401 unless the request carries the API key (when one is set)."""
    key = state_of(request).api_key
    if key is None:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise APIError(401, "invalid or missing API key (send `Authorization: Bearer <key>`)",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def _default_name(engine: Engine) -> str:
    """The default model's registry name, a named model's name, or a path's file stem."""
    from ..models.registry import DEFAULT_MODEL

    model = engine.cfg.model
    if model is None:
        return DEFAULT_MODEL
    return Path(model).stem if Path(model).exists() else model
