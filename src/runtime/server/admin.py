"""Operating the server: `GET /health`, `GET /model_info`, `POST /flush_cache`,
`POST /abort/{id}`, `POST /load_lora_adapter` / `/unload_lora_adapter` (vLLM's and SGLang's
names), `GET /metrics` (Prometheus text format), and SGLang's names for them:
`GET /get_model_info`, `GET /get_server_info` (= `/server_info`), `GET /health_generate`
(generates one token, so it fails when the engine cannot generate).

`/health` needs no API key (load balancers probe it); it answers 503 once the engine thread
has stopped. `/model_info` carries what a remote frontend needs to render chats the way the
model's template does (role markers, default system prompt, tool-call markers).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..sampling_params import SamplingParams
from .errors import APIError
from .guard import GuardedRoute
from .metrics import CONTENT_TYPE
from .state import require_api_key, state_of

public = APIRouter()
router = APIRouter(route_class=GuardedRoute, dependencies=[Depends(require_api_key)])


@public.get("/health")
async def health(request: Request) -> Response:
    engine = state_of(request).engine
    if not engine.is_alive():
        return JSONResponse({"status": "engine stopped"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/model_info")
@router.get("/get_model_info")
async def model_info(request: Request) -> dict[str, Any]:
    st = state_of(request)
    e, tpl, tok = st.engine, st.engine.chat_template, st.engine.tokenizer
    roles: dict[str, Any] = {}
    for role in ("system", "user", "assistant"):
        try:
            roles[role] = list(tpl.role_markers(role))
        except ValueError:
            roles[role] = None
    try:
        generation_prompt = tpl.generation_prompt
    except ValueError:
        generation_prompt = None
    markers = tpl.effective_tool_call_markers
    return {
        "model_path": str(e.model_path),
        "tokenizer_path": str(e.model_path),
        "served_model_name": st.model_name,
        "is_generation": True,
        "max_model_len": e.max_model_len,
        "vocab_size": e.model_config.vocab_size,
        "kv_slots_total": e.pool.num_slots,
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "eos_token_ids": sorted(tok.eos_token_ids),
        "chat_template": {
            "role_markers": roles,
            "default_system_prompt": tpl.default_system_prompt,
            "generation_prompt": generation_prompt,
            "supports_tools": tpl.supports_tools,
            "tool_call_markers": list(markers) if markers else None,
        },
    }


@router.get("/get_server_info")
@router.get("/server_info")
async def server_info(request: Request) -> dict[str, Any]:
    """SGLang's server-info answer: the model, its limits and the engine's live figures."""
    st = state_of(request)
    e = st.engine
    return {"model_path": str(e.model_path), "served_model_name": st.model_name,
            "context_length": e.max_model_len, "max_total_num_tokens": e.pool.num_slots,
            "version": _version(), "internal_states": [e.stats()]}


@router.get("/health_generate")
async def health_generate(request: Request) -> Response:
    """503 unless the engine generates one token from the start-of-document token."""
    e = state_of(request).engine
    tok = e.tokenizer
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    try:
        await asyncio.wait_for(e.agenerate([start], SamplingParams(max_new_tokens=1)), 60)
    except Exception as exc:  # noqa: BLE001 (any failure is "unhealthy")
        return JSONResponse({"status": f"cannot generate: {exc}"}, status_code=503)
    return JSONResponse({"status": "ok"})


def _version() -> str:
    try:
        return importlib.metadata.version("tines")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@router.post("/flush_cache")
async def flush_cache(request: Request) -> dict[str, Any]:
    """Drop the radix cache; 409 while requests are running (their KV is in use)."""
    flushed = await asyncio.to_thread(state_of(request).engine.flush_cache)
    if not flushed:
        raise APIError(409, "the cache was not flushed: requests are running", code="cache_in_use")
    return {"flushed": True}


class LoadLoraRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lora_name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._\-]+$")
    lora_path: str


class UnloadLoraRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lora_name: str


@router.post("/load_lora_adapter")
async def load_lora_adapter(body: LoadLoraRequest, request: Request) -> dict[str, Any]:
    """Load a PEFT adapter folder on the server's machine (vLLM's and SGLang's route name);
    requests then pick it by name (`lora_path` / `sampling_params.lora`, or "MODEL:NAME")."""
    engine = state_of(request).engine
    if body.lora_name in engine.lora_adapters:
        raise APIError(409, f"lora_name: an adapter named {body.lora_name!r} is already loaded",
                       "lora_name", "lora_exists")
    try:
        await asyncio.to_thread(engine.load_lora, body.lora_name, body.lora_path)
    except (ValueError, OSError) as e:
        raise APIError(400, f"lora_path: {e}", "lora_path") from None
    return {"loaded": body.lora_name, "adapters": engine.lora_adapters}


@router.post("/unload_lora_adapter")
async def unload_lora_adapter(body: UnloadLoraRequest, request: Request) -> dict[str, Any]:
    engine = state_of(request).engine
    if body.lora_name not in engine.lora_adapters:
        raise APIError(404, f"lora_name: no adapter {body.lora_name!r} is loaded", "lora_name",
                       "lora_not_found")
    try:
        await asyncio.to_thread(engine.unload_lora, body.lora_name)
    except ValueError as e:
        raise APIError(409, str(e), "lora_name", "lora_in_use") from None
    return {"unloaded": body.lora_name, "adapters": engine.lora_adapters}


@router.post("/abort/{request_id}")
async def abort(request_id: str, request: Request) -> dict[str, Any]:
    """Abort a running request by the id its response carried (`id`, header X-Request-Id)."""
    if not state_of(request).dispatcher.abort(request_id):
        raise APIError(404, f"request_id: no running request {request_id!r}", "request_id",
                       "request_not_found")
    return {"aborted": request_id}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(state_of(request).metrics.render(), media_type=CONTENT_TYPE)
