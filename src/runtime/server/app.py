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

from . import admin, native, native_prefill, openai_chat, openai_completions
from .errors import install_error_handlers
from .state import ServerState

if TYPE_CHECKING:
    from ..engine.engine import Engine

log = logging.getLogger("tines.server")


def create_app(engine: Engine, *, model_name: str | None = None, api_key: str | None = None,
               shutdown_engine: bool = False) -> FastAPI:
    """An app serving `engine`. The engine outlives the app unless `shutdown_engine`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if shutdown_engine:
            engine.shutdown()

    app = FastAPI(title="tines", lifespan=lifespan, docs_url=None, redoc_url=None)
    state = app.state.tines = ServerState.build(engine, model_name, api_key)
    install_error_handlers(app, lambda status: state.metrics.errors.labels(str(status)).inc())
    for module in (admin, native, native_prefill, openai_completions, openai_chat):
        app.include_router(module.router)
    app.include_router(admin.public)
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
    t0 = time.perf_counter()
    engine = Engine(args.model, weights=args.weights, compile=args.compile, kv_tokens=args.kv_tokens,
                    max_running=args.max_running, schedule_policy=args.schedule_policy,
                    disable_radix_cache=args.disable_radix_cache,
                    chunked_prefill_size=args.chunked_prefill_size, max_queue=args.max_queue)
    app = create_app(engine, model_name=args.served_model_name,
                     api_key=args.api_key, shutdown_engine=True)
    st: ServerState = app.state.tines
    log.info("loaded %s in %.1fs: context %d tokens, KV pool %d tokens; serving %r on http://%s:%d",
             engine.model_path, time.perf_counter() - t0, engine.max_model_len, engine.pool.num_slots,
             st.model_name, args.host, args.port)
    # uvicorn's own timeout is the backstop: aborted requests end within a step or two
    config = uvicorn.Config(app, host=args.host, port=args.port, access_log=False, log_level="info",
                            timeout_graceful_shutdown=args.shutdown_timeout + 10,
                            timeout_keep_alive=5, lifespan="on")
    server = _Server(config, args.shutdown_timeout, st.dispatcher.abort_all)
    try:
        server.run()
    except SystemExit as e:  # uvicorn exits 1 when it cannot bind
        engine.shutdown()
        return int(e.code or 1)
    engine.shutdown()
    return 0 if server.started else 1
