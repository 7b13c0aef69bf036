"""Live servers for the server tests, on the tiny random model (most tests) or on the default
model (the few that need coherent text or real tool use)."""

from __future__ import annotations

import pytest

from tests.server.live_server import start_server
from tines.runtime.engine.engine import Engine


@pytest.fixture(scope="session")
def tiny_server_engine(tiny_model_dir):
    engine = Engine(str(tiny_model_dir), kv_tokens=8192, max_running=32, weights="fp32")
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def tiny_server(tiny_server_engine):
    live = start_server(tiny_server_engine)
    yield live
    live.stop()


@pytest.fixture(scope="session")
def default_server(default_engine):
    live = start_server(default_engine)
    yield live
    live.stop()
