"""The Ray Serve application: `Ingress` -> `EngineServer` replicas, routed by prefix.

`build_app(...)` returns the bound application; `serve_replicas(args)` is `tines serve
--replicas N` (starts or joins a Ray cluster, runs the app behind Ray Serve's HTTP proxy and
blocks until SIGINT / SIGTERM).

Failure handling: a replica that dies is replaced by Ray Serve's controller. A request that
was on it is sent again to another replica when nothing of its answer has reached the client
yet, which holds for every non-streamed request (the ingress reads the whole answer before it
responds) and for a stream that had not started. A stream cut after its first event ends with
an SSE error event.
"""

# No `from __future__ import annotations` here: FastAPI reads the ingress route's parameter
# annotations at runtime through Ray Serve's class wrapper, which does not resolve strings.
import argparse
import json
import logging
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.config import RequestRouterConfig
from ray.serve.handle import DeploymentHandle

from ..server.args import engine_options
from .asgi_call import call_asgi
from .routed_request import RoutedRequest
from .routers import PrefixAwareRouter, RoundRobinRouter, prefix_router_options

log = logging.getLogger("ray.serve")  # the logger Ray Serve writes to each replica's log
REPLICA_HEADER = b"x-tines-replica"
ROUTERS = {"prefix": PrefixAwareRouter, "round_robin": RoundRobinRouter}
_REPLICA_GONE = (RayActorError, ActorUnavailableError)


class EngineServer:
    """One replica: an Engine and the app `tines serve` runs around it."""

    def __init__(self, engine_options: dict[str, Any], model_name: str | None,
                 api_key: str | None):
        from ..engine.engine import Engine
        from ..server.app import create_app

        self.engine = Engine(**engine_options)
        self.app = create_app(self.engine, model_name=model_name, api_key=api_key,
                              shutdown_engine=True)
        self.name = serve.get_replica_context().replica_id.unique_id.encode()

    async def handle(self, req: RoutedRequest) -> AsyncIterator[dict[str, Any]]:
        async for message in call_asgi(self.app, req):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (REPLICA_HEADER, self.name)]}
            yield message

    def stats(self) -> dict[str, Any]:
        return self.engine.stats()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()


async def _body_of(messages: Any) -> AsyncIterator[bytes]:
    try:
        async for message in messages:
            if body := message.get("body"):
                yield body
    except _REPLICA_GONE:
        error = {"error": {"message": "the engine replica serving this stream was lost",
                           "type": "server_error", "code": "replica_lost"}}
        yield f"data: {json.dumps(error)}\n\n".encode()


def _is_event_stream(start: dict[str, Any]) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
               for k, v in start.get("headers", []))


def _headers(start: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])
            if k.lower() != b"content-length"}


def _error(status: int, message: str, code: str) -> Response:
    body = {"error": {"message": message, "type": "server_error", "code": code}}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


ingress_api = FastAPI(title="tines (replicas)", docs_url=None, redoc_url=None, openapi_url=None)


@serve.ingress(ingress_api)
class Ingress:
    """Forwards every request, unchanged, to the replica the router picks."""

    def __init__(self, engines: DeploymentHandle, retries: int = 2):
        self.engines, self.retries = engines, retries

    @ingress_api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def forward(self, path: str, request: Request) -> Response:
        routed = RoutedRequest.of(request.method, request.url.path,
                                  request.url.query.encode(), list(request.headers.raw),
                                  await request.body())
        for attempt in range(self.retries + 1):
            messages = self.engines.options(stream=True).handle.remote(routed)
            try:
                start = await messages.__anext__()
                if _is_event_stream(start):
                    return StreamingResponse(_body_of(messages), status_code=start["status"],
                                             headers=_headers(start))
                body = b"".join([m.get("body", b"") async for m in messages])
                return Response(body, status_code=start["status"], headers=_headers(start))
            except _REPLICA_GONE as e:
                log.warning("tines: replica lost during a request (try %d of %d): %s",
                            attempt + 1, self.retries + 1, type(e).__name__)
        return _error(503, "no engine replica could answer; try again", "replica_unavailable")


def build_app(engine_options: dict[str, Any], *, replicas: int = 2, router: str = "prefix",
              router_options: dict[str, Any] | None = None, model_name: str | None = None,
              api_key: str | None = None, max_ongoing_requests: int = 256,
              cpus_per_replica: float = 1.0) -> serve.Application:
    """The application: `replicas` engines built from `engine_options` (Engine's keyword
    arguments), routed by `router` ("prefix" or "round_robin"). The prefix router's index
    holds as many prompt characters per replica as one engine's KV pool holds tokens x 4
    (`router_options` may set `capacity_blocks` itself)."""
    if router not in ROUTERS:
        raise ValueError(f"router: {router!r} is not one of {sorted(ROUTERS)}")
    if router == "prefix":
        router_options = prefix_router_options(engine_options, router_options)
    engines = serve.deployment(EngineServer).options(
        name="engine", num_replicas=replicas, max_ongoing_requests=max_ongoing_requests,
        ray_actor_options={"num_cpus": cpus_per_replica},
        request_router_config=RequestRouterConfig(
            request_router_class=ROUTERS[router], request_router_kwargs=router_options or {}),
    ).bind(engine_options, model_name, api_key)
    return serve.deployment(Ingress).options(
        name="ingress", max_ongoing_requests=max_ongoing_requests * replicas,
        ray_actor_options={"num_cpus": 0}).bind(engines)


def app_builder(args: dict[str, Any]) -> serve.Application:
    """For `serve run` and KubeRay's RayService (`import_path:
    tines.runtime.replicas.app:app_builder`): `args` holds `engine` (Engine keyword arguments)
    and any of build_app's keyword arguments."""
    args = dict(args)
    for name in ("replicas", "max_ongoing_requests"):  # `serve run` passes strings
        if name in args:
            args[name] = int(args[name])
    return build_app(args.pop("engine", {}), **args)


def serve_replicas(args: argparse.Namespace) -> int:
    """`tines serve --replicas N`: on the Ray cluster at `--ray-address` (a local one when
    unset), until SIGINT / SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ray.init(address=args.ray_address, ignore_reinit_error=True)
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(build_app(engine_options(args), replicas=args.replicas, router=args.router,
                        model_name=args.served_model_name, api_key=args.api_key),
              name="tines", route_prefix="/")
    log.info("serving %d replica(s) on http://%s:%d (router: %s)", args.replicas, args.host,
             args.port, args.router)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    return 0
