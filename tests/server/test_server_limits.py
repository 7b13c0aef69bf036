"""Issue 19, the HTTP side: limits (body size, n, batch), request ids, auth before the body,
400s that name the field, the OpenAPI document's error responses and the memory in /metrics.
Every check goes through a live server on the tiny model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.server.engine_pause import paused, wait_until
from tests.server.live_server import start_server
from tines.runtime.server.app import create_app
from tines.runtime.server.limits import Limits

SHORT = {"max_new_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def limited(tiny_server_engine):
    live = start_server(tiny_server_engine, limits=Limits(max_body=4096, max_n=4, max_batch=8))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def keyed(tiny_server_engine):
    live = start_server(tiny_server_engine, api_key="s3cret")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def http(tiny_server):
    with tiny_server.client() as c:
        yield c


def error_of(r, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    if param is not None:
        assert err["param"] == param, err
    return err


# --- body size -----------------------------------------------------------------------------
def test_body_over_max_body_is_413_naming_the_flag(limited):
    with limited.client() as c:
        r = c.post("/generate", json={"text": "x" * 5000, "sampling_params": SHORT})
    err = error_of(r, 413)
    assert "--max-body" in err["message"] and err["code"] == "body_too_large"


def test_streamed_body_without_length_over_max_body_is_413(limited):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    with limited.client() as c:
        r = c.post("/generate", content=chunks(), headers={"Content-Type": "application/json"})
    assert "--max-body" in error_of(r, 413)["message"]


def test_health_answers_while_a_large_body_is_tokenized(tiny_server):
    """The big request is tokenized on a worker thread: /health, sent after it, is answered
    before it (an order, not a duration)."""
    order: list[str] = []
    big = {"text": "word " * 1_400_000, "sampling_params": SHORT}  # ~7 MB, under the 8 MiB default

    def send_big() -> None:
        with tiny_server.client(timeout=300) as c:
            c.post("/generate", json=big)
        order.append("big")

    t = threading.Thread(target=send_big)
    t.start()
    time.sleep(0.5)  # pacing only: let the big body reach the server first
    with tiny_server.client() as c:
        assert c.get("/health").status_code == 200
    order.append("health")
    t.join(timeout=300)
    assert order == ["health", "big"]


# --- n and batch caps ----------------------------------------------------------------------
def test_native_n_over_max_n_is_400_naming_the_limit(limited):
    with limited.client() as c:
        r = c.post("/generate", json={"text": "x", "sampling_params": {**SHORT, "n": 5}})
    assert "--max-n" in error_of(r, 400, "sampling_params.n")["message"]


def test_completions_n_over_max_n_is_400(limited):
    with limited.client() as c:
        model = c.get("/v1/models").json()["data"][0]["id"]
        r = c.post("/v1/completions", json={"model": model, "prompt": "x", "n": 5, "max_tokens": 1})
    assert "--max-n" in error_of(r, 400, "n")["message"]


def test_completions_best_of_over_max_n_is_400(limited):
    with limited.client() as c:
        model = c.get("/v1/models").json()["data"][0]["id"]
        r = c.post("/v1/completions", json={"model": model, "prompt": "x", "best_of": 9, "max_tokens": 1})
    error_of(r, 400, "best_of")


def test_prompt_list_over_max_batch_is_400(limited):
    with limited.client() as c:
        r = c.post("/generate", json={"text": ["a"] * 9, "sampling_params": SHORT})
    assert "--max-batch" in error_of(r, 400, "text")["message"]


def test_prompts_times_n_over_max_batch_is_400(limited):
    with limited.client() as c:
        model = c.get("/v1/models").json()["data"][0]["id"]
        r = c.post("/v1/completions", json={"model": model, "prompt": ["a", "b", "c"], "n": 3,
                                            "max_tokens": 1})
    assert "9 completions" in error_of(r, 400, "prompt")["message"]


def test_score_choices_over_max_batch_is_400(limited):
    with limited.client() as c:
        r = c.post("/score", json={"text": "x", "choices": [str(i) for i in range(9)]})
    error_of(r, 400, "choices")


# --- request ids ---------------------------------------------------------------------------
def groups_of(live) -> dict:
    """The ids the live server's dispatcher holds as running."""
    return live.server.config.app.state.tines.dispatcher.groups


def test_duplicate_live_rid_is_409(tiny_server, http):
    with ThreadPoolExecutor(1) as pool:
        with paused(tiny_server.engine):
            first = pool.submit(http.post, "/generate",
                                json={"text": "x", "rid": "dup-1", "sampling_params": SHORT})
            wait_until(lambda: "dup-1" in groups_of(tiny_server))
            with tiny_server.client() as c:
                r = c.post("/generate", json={"text": "y", "rid": "dup-1", "sampling_params": SHORT})
            assert error_of(r, 409, "rid")["code"] == "duplicate_request_id"
        assert first.result().status_code == 200  # the first one is unharmed


def test_client_id_like_a_batch_member_does_not_collide(tiny_server):
    """A batch under rid `grp` and a request with rid `grp-0`, live together, both complete."""
    batch = {"text": ["a", "b"], "rid": "grp", "sampling_params": SHORT}
    single = {"text": "c", "rid": "grp-0", "sampling_params": SHORT}
    with ThreadPoolExecutor(2) as pool, tiny_server.client() as c:
        with paused(tiny_server.engine):
            grp = pool.submit(c.post, "/generate", json=batch)
            wait_until(lambda: len(groups_of(tiny_server).get("grp", ())) == 2)
            grp0 = pool.submit(c.post, "/generate", json=single)
            wait_until(lambda: groups_of(tiny_server).get("grp-0"))
        assert grp0.result().status_code == 200 and grp0.result().json()["meta_info"]["id"] == "grp-0"
        items = grp.result().json()
    assert [item["meta_info"]["completion_tokens"] for item in items] == [2, 2]


@pytest.mark.parametrize("rid", ["a\r\nSet-Cookie: x=1", "x" * 257, "", "spaces are not ids"])
def test_bad_rid_is_400_and_never_echoed(http, rid):
    r = http.post("/generate", json={"text": "x", "rid": rid, "sampling_params": SHORT})
    err = error_of(r, 400, "rid")
    assert "x-request-id" not in r.headers and (not rid or rid not in err["message"])


# --- auth ----------------------------------------------------------------------------------
def test_malformed_body_with_a_bad_key_is_401(keyed):
    with keyed.client() as c:
        r = c.post("/generate", content=b"{not json", headers={"Content-Type": "application/json"})
    assert error_of(r, 401)["code"] == "invalid_api_key"


@pytest.mark.parametrize("path", ["/flush_cache", "/abort/anything", "/metrics", "/model_info"])
def test_admin_routes_need_the_key(keyed, path):
    with keyed.client() as c:
        r = c.post(path) if path != "/metrics" and path != "/model_info" else c.get(path)
    error_of(r, 401)


def test_health_and_openapi_need_no_key(keyed):
    with keyed.client() as c:
        assert c.get("/health").status_code == 200
        assert c.get("/openapi.json").status_code == 200


def test_empty_api_key_is_refused_by_the_app(tiny_server_engine):
    with pytest.raises(ValueError, match="--api-key"):
        create_app(tiny_server_engine, api_key="")


def test_empty_api_key_is_refused_by_the_cli():
    proc = subprocess.run([sys.executable, "-m", "tines.runtime.cli", "serve", "--api-key", ""],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--api-key" in proc.stderr



@pytest.mark.parametrize("flags, named", [(["--port", "99999"], "--port"),
                                          (["--replicas", "-1"], "--replicas"),
                                          (["--shutdown-timeout", "-1"], "--shutdown-timeout")])
def test_bad_serve_flags_are_refused_before_any_load(flags, named):
    proc = subprocess.run([sys.executable, "-m", "tines.runtime.cli", "serve", *flags],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and named in proc.stderr and "Traceback" not in proc.stderr


def test_a_port_in_use_is_refused_before_the_model_loads():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "tines.runtime.cli", "serve", "--port",
                               str(port), "--model", "/no/such/model.gguf"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"--port: cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_a_folder_that_is_not_a_model_is_a_message_not_a_traceback(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    for folder in (tmp_path.parent, tmp_path):
        proc = subprocess.run([sys.executable, "-m", "tines.runtime.cli", "generate", "hi",
                               "--model", str(folder)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "config.json" in proc.stderr


# --- values that are 400s ------------------------------------------------------------------
def test_max_new_tokens_as_a_string_is_400(http):
    r = http.post("/generate", json={"text": "x", "sampling_params": {"max_new_tokens": "5"}})
    error_of(r, 400, "sampling_params.max_new_tokens")


def test_lone_surrogate_text_is_400(http):
    r = http.post("/generate", content=b'{"text": "a\\ud800b"}', headers={"Content-Type": "application/json"})
    assert "surrogate" in error_of(r, 400, "text")["message"]


def test_deeply_nested_schema_is_400(http):
    schema: dict = {"type": "string"}
    for _ in range(900):
        schema = {"type": "array", "items": schema}
    body = json.dumps({"text": "x", "sampling_params": {"json_schema": schema}})
    r = http.post("/generate", content=body, headers={"Content-Type": "application/json"})
    assert "nests deeper" in error_of(r, 400)["message"]


def test_empty_text_list_is_400(http):
    error_of(http.post("/generate", json={"text": [], "sampling_params": SHORT}), 400, "text")


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_non_finite_temperature_is_400_naming_it(http, literal):
    body = '{"text": "x", "sampling_params": {"temperature": %s}}' % literal
    r = http.post("/generate", content=body, headers={"Content-Type": "application/json"})
    assert "finite" in error_of(r, 400, "sampling_params.temperature")["message"]


def test_non_finite_value_on_v1_is_400_naming_it(http):
    model = http.get("/v1/models").json()["data"][0]["id"]
    body = '{"model": "%s", "prompt": "x", "repetition_penalty": Infinity}' % model
    r = http.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
    error_of(r, 400, "repetition_penalty")


def test_missing_body_message_names_no_none(http):
    r = http.post("/generate")
    assert "None" not in error_of(r, 400)["message"]


# --- the OpenAPI document and /metrics -----------------------------------------------------
def test_openapi_documents_the_errors_really_sent(http):
    doc = http.get("/openapi.json").json()
    generate = doc["paths"]["/generate"]["post"]["responses"]
    assert {"400", "401", "409", "413", "503"} <= set(generate) and "422" not in generate
    assert all("422" not in op["responses"] for ops in doc["paths"].values() for op in ops.values())
    assert generate["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_metrics_report_kv_pool_and_process_memory(http):
    text = http.get("/metrics").text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith(("tines:kv_pool_bytes", "tines:process_resident_memory_bytes"))}
    assert values["tines:kv_pool_bytes"] > 0 and values["tines:process_resident_memory_bytes"] > 0
