"""A schemathesis run over the server's own OpenAPI document, against a live server: no
response is a 5xx and every request is answered within a timeout. Bounded and repeatable:
a fixed number of examples per operation, derandomized (the same cases every run)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.server.live_server import start_server
from tines.runtime.engine.engine import Engine
from tines.runtime.server.limits import Limits

EXAMPLES_PER_OPERATION = 25
ANSWER_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def fuzzed(tiny_model_dir):
    """Its own engine: the run flushes the cache and aborts ids, which must not touch other
    tests' state. Tight limits keep the generated `n` and prompt lists cheap."""
    engine = Engine(str(tiny_model_dir), kv_tokens=4096, max_running=8, weights="fp32",
                    max_model_len=256)  # bounds every generated answer: no case runs long
    live = start_server(engine, limits=Limits(max_n=2, max_batch=4))
    yield live
    live.stop()
    engine.shutdown()


def test_schemathesis_finds_no_server_error_and_no_hang(fuzzed):
    schema = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /generate", "POST /v1/chat/completions",
                                                "POST /v1/completions", "POST /flush_cache"}
    with fuzzed.client() as c:
        model = c.get("/v1/models").json()["data"][0]["id"]
    failures: list[str] = []
    for op in operations:
        @seed(19)
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
                  database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case) -> None:
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = model  # past the 404, into the engine
            response = case.call(base_url=fuzzed.url, timeout=ANSWER_TIMEOUT_S)
            if response.status_code >= 500:
                failures.append(f"{op.label} -> {response.status_code}: {response.text[:300]}")

        run()
    assert not failures, "\n".join(failures)
    fuzzed.wait_idle(timeout=60)
