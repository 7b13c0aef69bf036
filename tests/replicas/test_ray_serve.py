"""Replicas on Ray Serve, started for real: a local Ray cluster in this process, two engine
replicas on the tiny model behind the Ray Serve HTTP proxy, the prefix-aware router."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from tines.runtime.engine.engine import Engine  # noqa: E402
from tines.runtime.replicas.app import REPLICA_HEADER, build_app  # noqa: E402
from tines.runtime.sampling_params import SamplingParams  # noqa: E402

REPLICA = REPLICA_HEADER.decode()
SYSTEM = ("You are a helpful assistant for a small bakery. You answer questions about bread, "
          "opening hours and prices in one short sentence, and you never invent prices. ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def engine_options(tiny_model_dir) -> dict:
    return dict(model=str(tiny_model_dir), weights="fp32", compile=False, kv_tokens=4096,
                max_running=16, num_threads=1)


@pytest.fixture(scope="module")
def cluster(engine_options):
    """Yields the base URL of the application."""
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(engine_options, replicas=2, cpus_per_replica=1, model_name="tiny"), name="tines",
              route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def reference(engine_options):
    """The same weights in one engine in this process: the answers replicas must give."""
    with Engine(**engine_options) as engine:
        yield engine


def _complete(base: str, prompt: str, max_tokens: int = 8) -> httpx.Response:
    r = httpx.post(f"{base}/v1/completions", timeout=120, json={
        "model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    assert r.status_code == 200, r.text
    return r


def test_answers_equal_a_single_engine(cluster, reference):
    prompt = SYSTEM + "When do you open?"
    expected = reference.generate(prompt, SamplingParams(temperature=0, max_new_tokens=8))
    r = _complete(cluster, prompt)
    assert r.json()["choices"][0]["text"] == expected.text


def test_openai_client_chat_through_the_proxy(cluster, reference):
    import openai

    client = openai.OpenAI(base_url=cluster + "/v1", api_key="unused", max_retries=0)
    out = client.chat.completions.create(model="tiny", max_tokens=6, temperature=0,
                                         messages=[{"role": "user", "content": "Hello!"}])
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage.completion_tokens >= 1


def test_streaming_passes_through(cluster, reference):
    prompt = SYSTEM + "Is there rye bread?"
    expected = reference.generate(prompt, SamplingParams(temperature=0, max_new_tokens=8))
    text = ""
    with httpx.stream("POST", f"{cluster}/v1/completions", timeout=120, json={
            "model": "tiny", "prompt": prompt, "max_tokens": 8, "temperature": 0,
            "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        import json
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                text += json.loads(line[6:])["choices"][0]["text"]
    assert text == expected.text


def test_requests_sharing_a_prefix_go_to_the_replica_that_caches_it(cluster):
    replicas, cached = set(), []
    for q in ["Do you sell baguettes?", "What does a croissant cost?", "Are you open Sunday?"]:
        r = _complete(cluster, SYSTEM * 2 + q)
        replicas.add(r.headers[REPLICA])
        cached.append(r.json()["usage"].get("prompt_tokens_details", {}) or {})
    assert len(replicas) == 1
    assert all(c.get("cached_tokens", 0) > 0 for c in cached[1:]), cached


def test_new_prefixes_spread_over_both_replicas(cluster):
    seen = set()
    for i in range(4):
        topic = f"Conversation {i}: " + "a completely different topic with its own words. " * 4
        seen.add(_complete(cluster, topic, max_tokens=2).headers[REPLICA])
    assert len(seen) == 2


def test_a_killed_replica_loses_no_request_and_is_replaced(cluster):
    """Eight long generations spread over both replicas; one replica is killed while they
    run. Every request still answers in full, none from the dead replica (its requests were
    sent again to the other), and Ray Serve starts a replacement."""
    results: list[httpx.Response | BaseException] = []

    def send(i: int) -> None:
        try:
            results.append(httpx.post(f"{cluster}/generate", timeout=300, json={
                "text": f"Request {i}: " + SYSTEM,
                "sampling_params": {"max_new_tokens": 600, "ignore_eos": True, "temperature": 0}}))
        except BaseException as e:  # noqa: BLE001 (collected and asserted on below)
            results.append(e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    victim = next(a for a in ray.util.list_named_actors(all_namespaces=True)
                  if "SERVE_REPLICA" in a["name"] and "engine" in a["name"])
    ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
    for t in threads:
        t.join(timeout=300)
    assert [r for r in results if not isinstance(r, httpx.Response)] == []
    assert [r.status_code for r in results] == [200] * 8
    assert all(r.json()["meta_info"]["completion_tokens"] == 600 for r in results)
    assert not any(victim["name"].endswith(r.headers[REPLICA]) for r in results)
    deadline = time.monotonic() + 120
    while True:
        status = serve.status().applications["tines"].deployments["engine"]
        if status.replica_states.get("RUNNING", 0) == 2 and status.status == "HEALTHY":
            break
        assert time.monotonic() < deadline, status
        time.sleep(1)
