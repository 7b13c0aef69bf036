"""A live server for tests: uvicorn in a background thread on a free loopback port, serving
one Engine; plus the marker for tests that need constrained decoding."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from tines.runtime.engine.engine import Engine
from tines.runtime.server.app import create_app


def grammar_available() -> bool:
    """Constrained decoding needs the engine's grammar bridge."""
    return importlib.util.find_spec("tines.runtime.engine.grammar_bridge") is not None


def structural_tags_available() -> bool:
    """Tool-call constraints (SamplingParams.structural_tag) also need the grammar to compile
    structural tags."""
    if not grammar_available():
        return False
    try:
        from tines.grammar import GrammarSpec
        from tines.runtime.sampling_params import SamplingParams

        tag = {"triggers": ["<t>"], "structures": [{"begin": "<t>", "schema": {}, "end": "</t>"}]}
        return GrammarSpec.from_sampling_params(SamplingParams(structural_tag=tag)) is not None
    except Exception:  # noqa: BLE001 (not there yet, whatever the shape of the failure)
        return False


needs_grammar = pytest.mark.skipif(not grammar_available(),
                                   reason="constrained decoding (runtime/grammar_bridge.py) is not there yet")
needs_tool_grammar = pytest.mark.skipif(not structural_tags_available(),
                                        reason="the grammar does not compile structural tags yet")


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:<port>
    engine: Engine
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 60), **kw)

    def openai(self, api_key: str = "unused", **kw: Any):
        import openai

        return openai.OpenAI(base_url=self.v1, api_key=api_key, max_retries=0,
                             timeout=kw.pop("timeout", 120), **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def wait_idle(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until nothing runs or waits; then the pool holds only cached KV."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.engine.stats()
            if s["running"] == 0 and s["waiting"] == 0:
                self.engine.call(lambda core: core.scheduler.check_idle())
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"engine not idle after {timeout}s: {s}")
            time.sleep(0.01)


def start_server(engine: Engine, **app_kw: Any) -> LiveServer:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(engine, **app_kw), log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"uvicorn-{port}")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    return LiveServer(f"http://127.0.0.1:{port}", engine, server, thread)


def start_serve_process(*flags: str, timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """`tines serve FLAGS` as its own process on a free port, once /health answers 200.
    Returns the process (stdout and stderr merged, as text) and its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tines.runtime.cli", "serve", "--port", str(port), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"tines serve exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"tines serve did not become healthy in {timeout} s")
        time.sleep(0.2)
