"""The HTTP server: `create_app(engine)` builds the FastAPI app around one engine; `serve(args)`
is `tines serve` (load the model, listen, shut down cleanly on SIGTERM / SIGINT).

Shutdown: the listening socket closes first (no new requests), running requests get
`--shutdown-timeout` seconds to finish, those still running are then aborted (their responses
end with finish_reason "abort"), the engine stops and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from . import admin, native, native_prefill, openai_chat, openai_completions, openai_responses
from .args import check_serve_args, engine_options
from .errors import install_error_handlers
from .limits import Limits
from .openapi_doc import install_openapi
from .state import ServerState

if TYPE_CHECKING:
    from ..engine.engine import Engine

log = logging.getLogger("tines.server")


def create_app(engine: Engine, *, model_name: str | None = None, api_key: str | None = None,
               limits: Limits | None = None, shutdown_engine: bool = False) -> FastAPI:
    """An app serving `engine`. The engine outlives the app unless `shutdown_engine`. With
    `api_key` every route but /health and /openapi.json needs it; ValueError for an empty
    key."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if shutdown_engine:
            engine.shutdown()

    app = FastAPI(title="tines", lifespan=lifespan, docs_url=None, redoc_url=None)
    state = app.state.tines = ServerState.build(engine, model_name, api_key, limits)
    install_error_handlers(app, lambda status: state.metrics.errors.labels(str(status)).inc())
    for module in (admin, native, native_prefill, openai_completions, openai_chat, openai_responses):
        app.include_router(module.router)
    app.include_router(admin.public)
    install_openapi(app)
    return app


class _Server(uvicorn.Server):
    """uvicorn's Server with two changes. After `grace` seconds of shutdown it aborts the
    requests still running, so their responses end properly (finish_reason "abort") instead
    of being cancelled mid-write. And it does not re-raise the signal it caught (uvicorn does,
    which would end the process with 143 instead of 0)."""

    def __init__(self, config: uvicorn.Config, grace: float, abort_all: Callable[[], int]):
        super().__init__(config)
        self.grace, self.abort_all = grace, abort_all

    async def shutdown(self, sockets: list | None = None) -> None:
        async def expire() -> None:
            await asyncio.sleep(self.grace)
            if n := self.abort_all():
                log.info("shutdown: aborted %d running request(s) after %.1fs", n, self.grace)

        timer = asyncio.ensure_future(expire())
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        sigs = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, self.handle_exit) for s in sigs}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def serve(args: argparse.Namespace) -> int:
    """`tines serve`: returns the process exit code (0 after a graceful shutdown)."""
    from ..engine.engine import Engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limits = check_serve_args(args)  # bad flags fail before the model loads
    if args.api_key is None:
        log.warning("no --api-key: every route, /flush_cache and /abort included, is open to "
                    "anyone who can reach %s:%d", args.host, args.port)
    if len(args.models) > 1:
        return _serve_models(args, limits)
    t0 = time.perf_counter()
    engine = Engine(**engine_options(args))
    app = create_app(engine, model_name=args.served_model_name,
                     api_key=args.api_key, limits=limits, shutdown_engine=True)
    st: ServerState = app.state.tines
    log.info("loaded %s in %.1fs: context %d tokens, KV pool %d tokens; serving %r on http://%s:%d",
             engine.model_path, time.perf_counter() - t0, engine.max_model_len, engine.pool.num_slots,
             st.model_name, args.host, args.port)
    # uvicorn's own timeout is the backstop: aborted requests end within a step or two
    config = uvicorn.Config(app, host=args.host, port=args.port, access_log=False, log_level="info",
                            timeout_graceful_shutdown=args.shutdown_timeout + 10,
                            timeout_keep_alive=5, lifespan="on")
    server = _Server(config, args.shutdown_timeout, st.dispatcher.abort_all)
    threading.Thread(target=_exit_when_engine_dies, args=(engine, server), daemon=True,
                     name="tines-engine-watch").start()
    try:
        server.run()
    except SystemExit as e:  # uvicorn exits 1 when it cannot bind
        engine.shutdown()
        return int(e.code or 1)
    engine.shutdown()
    if engine.fatal_error is not None:
        log.error("stopped: %s", engine.fatal_error)
        return 1
    return 0 if server.started else 1


def _exit_when_engine_dies(engine: Engine, server: uvicorn.Server) -> None:
    """A fatal engine error (a tensor-parallel rank died) takes the server down."""
    while not server.should_exit:
        if engine.fatal_error is not None:
            server.should_exit = True
            return
        time.sleep(0.5)


def _serve_models(args: argparse.Namespace, limits: Limits) -> int:
    """`tines serve --model A --model B ...`: each model loaded on first use (model_set.py)."""
    from ..engine.engine import Engine
    from .model_set import ModelSet, ModelSetApp, served_name

    def make_app(name: str, model: str | None) -> tuple[Engine, FastAPI]:
        options = {**engine_options(args), "model": model}
        if model != args.models[0]:  # --lora adapters belong to the first model
            options["lora_adapters"] = ()
        engine = Engine(**options)
        return engine, create_app(engine, model_name=name, api_key=args.api_key, limits=limits)

    models = ModelSet({served_name(m): m for m in args.models}, make_app, args.max_loaded_models)
    app = ModelSetApp(models, args.api_key, limits.max_body)
    log.info("serving %s (at most %d loaded at once) on http://%s:%d", sorted(models.models),
             args.max_loaded_models, args.host, args.port)
    config = uvicorn.Config(app, host=args.host, port=args.port, access_log=False, log_level="info",
                            timeout_graceful_shutdown=args.shutdown_timeout + 10,
                            timeout_keep_alive=5, lifespan="on")
    server = _Server(config, args.shutdown_timeout, lambda: sum(
        e.app.state.tines.dispatcher.abort_all() for e in list(models.loaded.values())))
    try:
        server.run()
    except SystemExit as e:
        models.shutdown()
        return int(e.code or 1)
    return 0 if server.started else 1
