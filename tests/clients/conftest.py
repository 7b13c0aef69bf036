"""A live `tines serve` app on the tiny random model for the client-library tests."""

from __future__ import annotations

import pytest

from tests.server.live_server import start_server
from tines.runtime.engine.engine import Engine


@pytest.fixture(scope="session")
def clients_server(tiny_model_dir):
    engine = Engine(str(tiny_model_dir), kv_tokens=8192, max_running=32, weights="fp32")
    live = start_server(engine)
    yield live
    live.stop()
    engine.shutdown()


@pytest.fixture(scope="session")
def model_name(clients_server) -> str:
    """The name the server serves its model under (what clients pass as `model`)."""
    import httpx

    return httpx.get(clients_server.v1 + "/models", timeout=30).json()["data"][0]["id"]
