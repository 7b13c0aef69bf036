"""A client that goes away mid-request gets its request aborted at once: the engine stops
within a step or two, its KV slots and cache locks are returned, and the server serves on."""

from __future__ import annotations

import json
import time

import httpx

LONG = 1500  # far more tokens than the test waits for


def wait_stopped(engine, timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while engine.stats()["running"] or engine.stats()["waiting"]:
        assert time.monotonic() - t0 < timeout, f"request still running: {engine.stats()}"
        time.sleep(0.002)
    return time.monotonic() - t0


def test_dropped_stream_is_aborted_and_its_slots_freed(tiny_server):
    engine = tiny_server.engine
    tiny_server.wait_idle()
    before = engine.stats()
    model = httpx.get(tiny_server.v1 + "/models").json()["data"][0]["id"]
    body = {"model": model, "messages": [{"role": "user", "content": "tell me everything"}],
            "max_tokens": LONG, "stream": True}
    with httpx.Client(base_url=tiny_server.url, timeout=30) as c:
        with c.stream("POST", "/v1/chat/completions", json={**body, "ignore_eos": True}) as r:
            assert r.status_code == 200
            seen = 0
            for line in r.iter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    seen += 1
                    if seen == 3:
                        break
            assert engine.stats()["running"] == 1
            steps_at_close = engine.stats()["steps"]
        # leaving the block closes the connection mid-stream
    wait_stopped(engine)
    after = engine.stats()
    assert after["num_aborted"] == before["num_aborted"] + 1
    # the engine heard of it at once: within a step (measured: 1), not the ~1,500 it would run
    assert after["steps"] - steps_at_close <= 3, after["steps"] - steps_at_close
    engine.call(lambda core: core.scheduler.check_idle())  # every slot free or cached
    assert after["kv_slots_used"] == after["kv_slots_cached"] and after["kv_slots_protected"] == 0
    assert httpx.post(tiny_server.url + "/generate", json={"text": "still here?",
                                                           "sampling_params": {"max_new_tokens": 2}}).status_code == 200


def test_openai_client_closing_a_stream_aborts_it(tiny_server):
    engine = tiny_server.engine
    tiny_server.wait_idle()
    before = engine.stats()["num_aborted"]
    client = tiny_server.openai()
    stream = client.completions.create(model=client.models.list().data[0].id, prompt="Once", max_tokens=LONG,
                                       stream=True, extra_body={"ignore_eos": True})
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    wait_stopped(engine)
    assert engine.stats()["num_aborted"] == before + 1
    tiny_server.wait_idle()


def test_client_timing_out_on_a_whole_answer_aborts_it(tiny_server):
    engine = tiny_server.engine
    tiny_server.wait_idle()
    before = engine.stats()["num_aborted"]
    try:
        httpx.post(tiny_server.url + "/generate", timeout=0.3, json={
            "text": "a long answer", "sampling_params": {"max_new_tokens": LONG, "ignore_eos": True}})
        raise AssertionError("the request should not have finished in 0.3 s")
    except httpx.ReadTimeout:
        pass
    waited = wait_stopped(engine)
    assert waited < 2.0 and engine.stats()["num_aborted"] == before + 1
    tiny_server.wait_idle()
